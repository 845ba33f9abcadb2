// The socket keeper of udp-io.c's upstream queries: a thread that makes their fresh sockets ahead
// of need and closes the used ones, so that the event loop's thread only connects and sends.
#ifndef MXSENTRY_SOCKET_KEEPER_H
#define MXSENTRY_SOCKET_KEEPER_H

typedef struct keeper keeper_t;

/**
 * Starts a keeper whose sockets go into the epoll set `epfd` (EPOLLIN | EPOLLET, data.fd = the
 * socket). NULL with errno set when its thread cannot start: the caller then makes and closes
 * its sockets itself.
 */
keeper_t *keeper_start(int epfd);

/**
 * A fresh UDP socket of `family` (4 or 6): never connected, bound or used before, non-blocking,
 * close-on-exec, already in the epoll set. -1 when none is ready (the caller makes its own).
 */
int keeper_take(keeper_t *k, int family);

/** Hands over a socket to close (a taken one, or one the caller made and put in the set). */
void keeper_give(keeper_t *k, int fd);

/** Sockets the keeper holds (ready ones and ones waiting to be closed), for leak checks. */
int keeper_held(keeper_t *k);

/** Stops the thread and closes every socket it holds; `k` is freed. */
void keeper_stop(keeper_t *k);

#endif
