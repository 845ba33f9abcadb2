// The socket keeper of udp-io.c's upstream queries: a thread that makes their fresh sockets ahead
// of need, connects them and sends the queries, and closes the used ones, so that the event
// loop's thread only reads the answers.
#ifndef MXSENTRY_SOCKET_KEEPER_H
#define MXSENTRY_SOCKET_KEEPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct keeper keeper_t;

/** Largest query keeper_submit takes (a DNS query with one question and an OPT record is under 300). */
#define KEEPER_QUERY_MAX 512

/** A submitted query whose connect(2) or send(2) failed. */
typedef struct {
  int fd;
  uint64_t seq;
  int err;
  const char *syscall; /* "connect" or "send" */
} keeper_failure_t;

/**
 * Starts a keeper whose sockets go into the epoll set `epfd` (EPOLLIN | EPOLLET, data.fd = the
 * socket); `notify(arg)` is called on its thread when failures are waiting (keeper_failures).
 * It keeps at most 128 ready sockets per family, and a 32nd of the descriptor limit when that is
 * less. NULL with errno set when its thread cannot start, or the limit is too low to keep even 4:
 * the caller then does all of it itself.
 */
keeper_t *keeper_start(int epfd, void (*notify)(void *arg), void *arg);

/**
 * Connects a taken socket to `peer` (which gives it its random port) and sends `len` bytes, on
 * the keeper's thread, soon. `seq` comes back with a failure. False when `len` is too large.
 */
bool keeper_submit(keeper_t *k, int fd, uint64_t seq, const struct sockaddr_storage *peer, socklen_t peer_len, const void *bytes, size_t len);

/** Takes up to `max` failures of submitted queries; returns how many. */
int keeper_failures(keeper_t *k, keeper_failure_t *out, int max);

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
