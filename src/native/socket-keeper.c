// The socket keeper (socket-keeper.h): one thread per epoll set of upstream queries.
//
// Why: every upstream query gets a socket of its own (a random port per query, RFC 5452), and
// making one (socket(2), its epoll_ctl) and closing it cost the kernel more than connecting it and
// sending: under perf, 15% of the event loop thread's time on the cold path, against 4% for
// connect(2). Here a thread keeps up to SPARES fresh sockets per address family ready in the
// epoll set and closes used ones in batches. A ready socket is only created: it gets its random
// port when the query connects it, so taking it from the pool is the same as making it then.
// The sockets are never read or written here.
#define _GNU_SOURCE
#include "socket-keeper.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/** Ready sockets kept per family, and the level below which the thread is woken to make more. */
#define SPARES 128
#define LOW_WATER 64
/** Used sockets that wake the thread; fewer are closed after at most LINGER_MS. */
#define CLOSE_BATCH 64
#define LINGER_MS 20

struct keeper {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int epfd;
  int spares[2][SPARES]; /* [0] IPv4, [1] IPv6 */
  int nspare[2];
  bool wanted[2]; /* a family is kept ready once a query used it */
  int *closing;
  int nclosing, capclosing;
  bool idle;   /* the thread waits with nothing to do: the next handover wakes it */
  bool kicked; /* woken since it last took its work: no need to wake it again */
  bool stop;
};

static int family_index(int family) { return family == 6 ? 1 : 0; }

/** Wakes the thread unless it was woken already; called with the lock held. */
static void kick(keeper_t *k) {
  if (k->kicked) return;
  k->kicked = true;
  pthread_cond_signal(&k->cv);
}

static void make_spares(keeper_t *k, int f, int want, int *out, int *made) {
  *made = 0;
  for (int i = 0; i < want; i++) {
    int fd = socket(f == 1 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return; /* out of descriptors: the queries make their own (and see the error) */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
    if (epoll_ctl(k->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      return;
    }
    out[(*made)++] = fd;
  }
}

static void *keeper_main(void *arg) {
  keeper_t *k = arg;
  pthread_setname_np(pthread_self(), "mx-sockets"); /* as top -H and /proc show it */
  pthread_mutex_lock(&k->mu);
  while (!k->stop) {
    int need[2];
    for (int f = 0; f < 2; f++) need[f] = k->wanted[f] ? SPARES - k->nspare[f] : 0;
    if (k->nclosing == 0 && need[0] == 0 && need[1] == 0) {
      k->idle = true;
      k->kicked = false;
      pthread_cond_wait(&k->cv, &k->mu);
      k->idle = false;
      continue;
    }
    int *closing = k->closing;
    int nclosing = k->nclosing;
    k->closing = NULL;
    k->nclosing = k->capclosing = 0;
    k->kicked = false;
    pthread_mutex_unlock(&k->mu);

    for (int i = 0; i < nclosing; i++) close(closing[i]); /* leaves the epoll set with it */
    free(closing);
    int made[2][SPARES], nmade[2];
    for (int f = 0; f < 2; f++) make_spares(k, f, need[f], made[f], &nmade[f]);

    pthread_mutex_lock(&k->mu);
    for (int f = 0; f < 2; f++) {
      for (int i = 0; i < nmade[f]; i++) {
        if (k->nspare[f] < SPARES) k->spares[f][k->nspare[f]++] = made[f][i];
        else close(made[f][i]);
      }
    }
    if (k->stop) break;
    /* Lets used sockets gather for a batch; a handover of CLOSE_BATCH or a low pool wakes it sooner. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += LINGER_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    if (!k->kicked) pthread_cond_timedwait(&k->cv, &k->mu, &until);
  }
  pthread_mutex_unlock(&k->mu);
  return NULL;
}

keeper_t *keeper_start(int epfd) {
  keeper_t *k = calloc(1, sizeof *k);
  if (k == NULL) return NULL;
  k->epfd = epfd;
  pthread_mutex_init(&k->mu, NULL);
  pthread_cond_init(&k->cv, NULL);
  int r = pthread_create(&k->thread, NULL, keeper_main, k);
  if (r != 0) {
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
    errno = r;
    return NULL;
  }
  return k;
}

int keeper_take(keeper_t *k, int family) {
  int f = family_index(family);
  int fd = -1;
  pthread_mutex_lock(&k->mu);
  if (!k->wanted[f]) {
    k->wanted[f] = true;
    kick(k);
  }
  if (k->nspare[f] > 0) fd = k->spares[f][--k->nspare[f]];
  if (k->nspare[f] < LOW_WATER) kick(k);
  pthread_mutex_unlock(&k->mu);
  return fd;
}

void keeper_give(keeper_t *k, int fd) {
  pthread_mutex_lock(&k->mu);
  if (k->nclosing == k->capclosing) {
    int cap = k->capclosing ? k->capclosing * 2 : CLOSE_BATCH;
    int *c = realloc(k->closing, (size_t)cap * sizeof *c);
    if (c == NULL) {
      pthread_mutex_unlock(&k->mu);
      close(fd); /* out of memory: closed here rather than leaked */
      return;
    }
    k->closing = c;
    k->capclosing = cap;
  }
  k->closing[k->nclosing++] = fd;
  if (k->idle || k->nclosing >= CLOSE_BATCH) kick(k);
  pthread_mutex_unlock(&k->mu);
}

int keeper_held(keeper_t *k) {
  pthread_mutex_lock(&k->mu);
  int n = k->nspare[0] + k->nspare[1] + k->nclosing;
  pthread_mutex_unlock(&k->mu);
  return n;
}

void keeper_stop(keeper_t *k) {
  pthread_mutex_lock(&k->mu);
  k->stop = true;
  pthread_cond_signal(&k->cv);
  pthread_mutex_unlock(&k->mu);
  pthread_join(k->thread, NULL);
  for (int f = 0; f < 2; f++)
    for (int i = 0; i < k->nspare[f]; i++) close(k->spares[f][i]);
  for (int i = 0; i < k->nclosing; i++) close(k->closing[i]);
  free(k->closing);
  pthread_cond_destroy(&k->cv);
  pthread_mutex_destroy(&k->mu);
  free(k);
}
