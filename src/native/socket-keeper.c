// The socket keeper (socket-keeper.h): one thread per epoll set of upstream queries.
//
// Why: every upstream query gets a socket of its own (a random port per query, RFC 5452), and
// making one (socket(2), its epoll_ctl), connecting it, sending on it and closing it cost the
// kernel more than everything else a cold resolution does on the event loop's thread: under perf,
// socket, close and epoll_ctl were 15% of that thread's time and connect and send (which on
// loopback also runs the receiver's side of the stack) about a third of what was left. Here a
// thread keeps up to SPARES fresh sockets per address family ready in the epoll set, connects
// and sends the queries handed to it, and closes used sockets in batches. A ready socket is only
// created: it gets its random port when its query is connected, so taking it from the pool is
// the same as making it then. Answers are never read here: the event loop's thread reads them.
#define _GNU_SOURCE
#include "socket-keeper.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/**
 * Ready sockets kept per family at most, and fewer under a low descriptor limit (a 32nd of it):
 * the pool must not take the descriptors the rest of the process needs. Below MIN_SPARES there is
 * no keeper. The thread is woken to make more when a family's pool is down to half.
 */
#define SPARES 128
#define MIN_SPARES 4
/** After a failure to make a socket of a family (EMFILE, EAFNOSUPPORT, ...): the first wait, doubled up to the last. */
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 60000
/** Used sockets handed over when the closing list cannot grow (out of memory): still closed here, in order. */
#define OVERFLOW 256
/** Used sockets that wake the thread; fewer are closed after at most LINGER_MS. */
#define CLOSE_BATCH 64
#define LINGER_MS 20

typedef struct {
  int fd;
  uint64_t seq;
  struct sockaddr_storage peer;
  socklen_t peer_len;
  uint16_t len;
  uint8_t bytes[KEEPER_QUERY_MAX];
} submission_t;

/** Growable arrays. */
typedef struct {
  submission_t *at;
  int n, cap;
} submission_list_t;
typedef struct {
  int *at;
  int n, cap;
} fd_list_t;
typedef struct {
  keeper_failure_t *at;
  int n, cap;
} failure_list_t;

struct keeper {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int epfd;
  void (*notify)(void *arg);
  void *notify_arg;
  int spares[2][SPARES]; /* [0] IPv4, [1] IPv6 */
  int nspare[2];
  int max_spares;  /* per family: SPARES, or less under a low descriptor limit */
  bool wanted[2]; /* a family is kept ready once a query used it */
  int64_t retry_at_ms[2]; /* after a failure to make one: no new attempt before (monotonic ms) */
  int retry_ms[2];
  int overflow[OVERFLOW];
  int noverflow;
  submission_list_t queries;
  submission_list_t reuse; /* the array of the last batch sent, for the next one */
  fd_list_t closing;
  failure_list_t failed;
  bool idle;   /* the thread waits with nothing to do: the next handover wakes it */
  bool kicked; /* woken since it last took its work: no need to wake it again */
  bool stop;
};

/** Room for one more element; false when out of memory. */
#define LIST_GROW(l, first)                                                  \
  ((l).n < (l).cap || list_grow((void **)&(l).at, &(l).cap, sizeof *(l).at, (first)))

static bool list_grow(void **at, int *cap, size_t size, int first) {
  int n = *cap ? *cap * 2 : first;
  void *p = realloc(*at, (size_t)n * size);
  if (p == NULL) return false;
  *at = p;
  *cap = n;
  return true;
}

static int family_index(int family) { return family == 6 ? 1 : 0; }

static int64_t monotonic_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/** Sockets to make for family f now (0 while it backs off after a failure); called with the lock held. */
static int needed(keeper_t *k, int f, int64_t now) {
  if (!k->wanted[f] || now < k->retry_at_ms[f]) return 0;
  return k->max_spares - k->nspare[f];
}

/** Wakes the thread unless it was woken already; called with the lock held. */
static void kick(keeper_t *k) {
  if (k->kicked) return;
  k->kicked = true;
  pthread_cond_signal(&k->cv);
}

/** Makes up to `want` sockets of family f into `out`; false when one could not be made. */
static bool make_spares(keeper_t *k, int f, int want, int *out, int *made) {
  *made = 0;
  for (int i = 0; i < want; i++) {
    int fd = socket(f == 1 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false; /* out of descriptors, no IPv6, ...: the queries make their own (and see the error) */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
    if (epoll_ctl(k->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      return false;
    }
    out[(*made)++] = fd;
  }
  return true;
}

/**
 * Connects and sends each query; failures are added to `failed` (thread-local until handed over),
 * or not recorded when it is NULL (out of memory: such a query then ends in its timeout).
 */
static void send_queries(const submission_t *q, int n, keeper_failure_t *failed, int *nfailed) {
  for (int i = 0; i < n; i++) {
    const char *syscall = NULL;
    /* connect binds to a random ephemeral port (Linux randomises within ip_local_port_range). */
    if (connect(q[i].fd, (const struct sockaddr *)&q[i].peer, q[i].peer_len) < 0) syscall = "connect";
    else if (send(q[i].fd, q[i].bytes, q[i].len, MSG_DONTWAIT) < 0) syscall = "send";
    if (syscall && failed) failed[(*nfailed)++] = (keeper_failure_t){.fd = q[i].fd, .seq = q[i].seq, .err = errno, .syscall = syscall};
  }
}

static void *keeper_main(void *arg) {
  keeper_t *k = arg;
  pthread_setname_np(pthread_self(), "mx-sockets"); /* as top -H and /proc show it */
  pthread_mutex_lock(&k->mu);
  while (!k->stop) {
    int need[2];
    int64_t now = monotonic_ms();
    for (int f = 0; f < 2; f++) need[f] = needed(k, f, now);
    if (k->queries.n == 0 && k->closing.n == 0 && k->noverflow == 0 && need[0] == 0 && need[1] == 0) {
      k->idle = true;
      k->kicked = false;
      pthread_cond_wait(&k->cv, &k->mu);
      k->idle = false;
      continue;
    }
    /* Everything handed over so far: queries first, then closes (a socket is never closed before its query went). */
    submission_t *queries = k->queries.at;
    int nqueries = k->queries.n, capqueries = k->queries.cap;
    k->queries = k->reuse;
    k->reuse.at = NULL;
    k->reuse.n = k->reuse.cap = 0;
    int *closing = k->closing.at;
    int nclosing = k->closing.n;
    k->closing.at = NULL;
    k->closing.n = k->closing.cap = 0;
    int overflow[OVERFLOW];
    int noverflow = k->noverflow;
    memcpy(overflow, k->overflow, (size_t)noverflow * sizeof *overflow);
    k->noverflow = 0;
    k->kicked = false;
    pthread_mutex_unlock(&k->mu);

    keeper_failure_t *failed = nqueries > 0 ? malloc((size_t)nqueries * sizeof *failed) : NULL;
    int nfailed = 0;
    send_queries(queries, nqueries, failed, &nfailed);
    for (int i = 0; i < nclosing; i++) close(closing[i]); /* leaves the epoll set with it */
    for (int i = 0; i < noverflow; i++) close(overflow[i]);
    free(closing);
    int made[2][SPARES], nmade[2];
    bool failed_to_make[2];
    for (int f = 0; f < 2; f++) failed_to_make[f] = !make_spares(k, f, need[f], made[f], &nmade[f]);

    pthread_mutex_lock(&k->mu);
    for (int f = 0; f < 2; f++) {
      /* Backs off, so that a host out of descriptors or without IPv6 is not asked again at once. */
      if (failed_to_make[f]) {
        k->retry_ms[f] = k->retry_ms[f] ? (k->retry_ms[f] * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : k->retry_ms[f] * 2) : RETRY_FIRST_MS;
        k->retry_at_ms[f] = monotonic_ms() + k->retry_ms[f];
      } else if (need[f] > 0) {
        k->retry_ms[f] = 0;
      }
    }
    if (k->reuse.at == NULL) {
      k->reuse.at = queries;
      k->reuse.cap = capqueries;
      k->reuse.n = 0;
    } else {
      free(queries);
    }
    for (int f = 0; f < 2; f++) {
      for (int i = 0; i < nmade[f]; i++) {
        if (k->nspare[f] < k->max_spares) k->spares[f][k->nspare[f]++] = made[f][i];
        else close(made[f][i]);
      }
    }
    int handed = 0;
    for (; handed < nfailed && LIST_GROW(k->failed, 16); handed++) k->failed.at[k->failed.n++] = failed[handed];
    free(failed);
    if (handed > 0) k->notify(k->notify_arg);
    if (k->stop) break;
    if (k->queries.n > 0 || k->kicked) continue; /* more came meanwhile */
    /* Lets used sockets gather for a batch; a query, CLOSE_BATCH of them or a low pool wake it sooner. */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until); /* the condition variable's clock (keeper_start) */
    until.tv_nsec += LINGER_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&k->cv, &k->mu, &until);
  }
  pthread_mutex_unlock(&k->mu);
  return NULL;
}

keeper_t *keeper_start(int epfd, void (*notify)(void *arg), void *arg) {
  struct rlimit nofile;
  int max_spares = SPARES;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur / 32 < SPARES) max_spares = (int)(nofile.rlim_cur / 32);
  if (max_spares < MIN_SPARES) {
    errno = EMFILE; /* too few descriptors to keep any ready: each query makes its own */
    return NULL;
  }
  keeper_t *k = calloc(1, sizeof *k);
  if (k == NULL) return NULL;
  k->epfd = epfd;
  k->notify = notify;
  k->notify_arg = arg;
  k->max_spares = max_spares;
  pthread_mutex_init(&k->mu, NULL);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* a wall clock set back does not stretch a wait */
  pthread_cond_init(&k->cv, &attr);
  pthread_condattr_destroy(&attr);
  /* Signals go to the process's other threads: the new thread starts with all of them blocked. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int r = pthread_create(&k->thread, NULL, keeper_main, k);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
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
  if (k->nspare[f] < k->max_spares / 2) kick(k);
  pthread_mutex_unlock(&k->mu);
  return fd;
}

bool keeper_submit(keeper_t *k, int fd, uint64_t seq, const struct sockaddr_storage *peer, socklen_t peer_len, const void *bytes, size_t len) {
  if (len > KEEPER_QUERY_MAX) return false;
  pthread_mutex_lock(&k->mu);
  if (!LIST_GROW(k->queries, 64)) {
    pthread_mutex_unlock(&k->mu);
    return false;
  }
  submission_t *q = &k->queries.at[k->queries.n++];
  q->fd = fd;
  q->seq = seq;
  memcpy(&q->peer, peer, peer_len);
  q->peer_len = peer_len;
  q->len = (uint16_t)len;
  memcpy(q->bytes, bytes, len);
  kick(k);
  pthread_mutex_unlock(&k->mu);
  return true;
}

int keeper_failures(keeper_t *k, keeper_failure_t *out, int max) {
  pthread_mutex_lock(&k->mu);
  int n = k->failed.n < max ? k->failed.n : max;
  memcpy(out, k->failed.at, (size_t)n * sizeof *out);
  memmove(k->failed.at, k->failed.at + n, (size_t)(k->failed.n - n) * sizeof *out);
  k->failed.n -= n;
  pthread_mutex_unlock(&k->mu);
  return n;
}

void keeper_give(keeper_t *k, int fd) {
  pthread_mutex_lock(&k->mu);
  if (LIST_GROW(k->closing, CLOSE_BATCH)) {
    k->closing.at[k->closing.n++] = fd;
  } else if (k->noverflow < OVERFLOW) {
    /* Out of memory: still closed by the thread, after its query went. */
    k->overflow[k->noverflow++] = fd;
  } else {
    /* Leaked rather than closed here: a query still waiting to be sent may name this descriptor. */
    pthread_mutex_unlock(&k->mu);
    return;
  }
  if (k->idle || k->closing.n >= CLOSE_BATCH) kick(k);
  pthread_mutex_unlock(&k->mu);
}

int keeper_held(keeper_t *k) {
  pthread_mutex_lock(&k->mu);
  int n = k->nspare[0] + k->nspare[1] + k->closing.n + k->noverflow;
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
  /* Queries not sent yet are dropped (their env is going away); their sockets are the caller's. */
  for (int i = 0; i < k->closing.n; i++) close(k->closing.at[i]);
  for (int i = 0; i < k->noverflow; i++) close(k->overflow[i]);
  free(k->closing.at);
  free(k->queries.at);
  free(k->reuse.at);
  free(k->failed.at);
  pthread_cond_destroy(&k->cv);
  pthread_mutex_destroy(&k->mu);
  free(k);
}
