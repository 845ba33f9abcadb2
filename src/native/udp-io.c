// Native UDP I/O, loaded by src/native/native-udp.ts: the DNS listeners (dns/server/udp-endpoint.ts)
// and the resolver's upstream queries (dns/transport/transport.ts). It never parses DNS and never
// blocks: a full send buffer drops the reply (EAGAIN to the caller), as Unbound does. Built by
// src/native/build.ts with the system C compiler against Node's own headers (N-API, libuv).

/*
 * Why: Node's dgram costs about 30 us of CPU per query answered (a Buffer, an rinfo object and an
 * event per datagram, a lookup and a request object per send), more than Unbound spends on a whole
 * cached answer. Here libuv polls the socket, recvmmsg(2) takes up to BATCH datagrams per wakeup
 * into one shared buffer, JavaScript is entered once per batch, and each reply is one sendto(2) from
 * the caller's Buffer. udpQuery opens a fresh socket per upstream query and connects it (the kernel
 * picks a random ephemeral port and drops datagrams from anyone else), sends, and hands each
 * datagram that arrives to a callback until the caller closes it; the query sockets share one
 * epoll set, which libuv polls as one handle.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "socket-keeper.h"

/** Datagrams taken per recvmmsg(2) call, and bytes per slot (any UDP payload fits: no truncation). */
#define BATCH 16
#define SLOT_BYTES 65536
/** int32 words of per-slot metadata: length, family (4 or 6), port, 4 words of raw address, IPv6 scope id. */
#define META_WORDS 8
/** Batches taken per wakeup before other events get their turn (level-triggered: it fires again). */
#define MAX_ROUNDS 4

/**
 * When a handle's memory may go: once its JS object was collected (finalized) and libuv is done
 * with its poll handle (poll_done: the close callback ran, or polling never started). The first
 * member of endpoint_t, so one pointer frees both.
 */
typedef struct {
  bool finalized;
  bool poll_done;
  uv_poll_t poll;
} lifetime_t;

static void lifetime_free_if_done(lifetime_t *life) {
  if (life->finalized && life->poll_done) free(life);
}

static void on_poll_closed(uv_handle_t *handle) {
  lifetime_t *life = handle->data; /* the handle struct, whose first member is its lifetime_t */
  life->poll_done = true;
  lifetime_free_if_done(life);
}

typedef struct {
  lifetime_t life; /* first: its free() frees the endpoint */
  int fd;
  bool polling;   /* uv_poll started and not yet closed */
  bool closed;    /* udpClose ran: sends fail with EBADF */
  napi_env env;
  napi_ref callback;
  napi_ref resource;
  napi_ref data_ref;
  napi_ref meta_ref;
  napi_async_context async_context;
  uint8_t *data;
  int32_t *meta;
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage addrs[BATCH];
} endpoint_t;

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      napi_throw_error(env, "ERR_UDP_IO", "udp-io: N-API call failed: " #call);                   \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

/** Throws an Error whose code is the errno name (EADDRINUSE, ...), as Node's own socket errors. */
static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char code[32];
  uv_err_name_r(-err, code, sizeof code); /* libuv's names are Node's error codes: EADDRINUSE, ... */
  char msg[160];
  snprintf(msg, sizeof msg, "%s %s (%s)", syscall, code, strerror(err));
  napi_value m, c, e, s;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c);
  napi_create_error(env, c, m, &e);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, e, "syscall", s);
  napi_value n;
  napi_create_int32(env, -err, &n);
  napi_set_named_property(env, e, "errno", n);
  napi_throw(env, e);
  return NULL;
}

/** ss for a family (4 or 6), raw address bytes (network order, as udpStart's meta holds them) and a port. */
static void sockaddr_from_bytes(int family, const void *addr, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (family == 6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    memcpy(&a->sin6_addr, addr, 16);
    *len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    memcpy(&a->sin_addr, addr, 4);
    *len = sizeof *a;
  }
}

/** The same from an address literal; false when it does not parse as the family's. */
static bool sockaddr_from_text(int family, const char *text, int port, struct sockaddr_storage *ss, socklen_t *len) {
  unsigned char addr[16];
  if (inet_pton(family == 6 ? AF_INET6 : AF_INET, text, addr) != 1) return false;
  sockaddr_from_bytes(family, addr, port, ss, len);
  return true;
}

/** Stops polling, closes the socket and releases what udpStart held. Safe to call twice. */
static void endpoint_close(napi_env env, endpoint_t *ep) {
  if (ep->closed) return;
  ep->closed = true;
  if (ep->polling) {
    ep->polling = false;
    /* uv_close removes the fd from epoll at once; only then may the fd number be reused. The
       memory goes when libuv is done with the poll handle (on_poll_closed). */
    uv_close((uv_handle_t *)&ep->life.poll, on_poll_closed);
  }
  if (ep->fd >= 0) close(ep->fd);
  ep->fd = -1;
  if (ep->callback) napi_delete_reference(env, ep->callback);
  if (ep->resource) napi_delete_reference(env, ep->resource);
  if (ep->data_ref) napi_delete_reference(env, ep->data_ref);
  if (ep->meta_ref) napi_delete_reference(env, ep->meta_ref);
  if (ep->async_context) napi_async_destroy(env, ep->async_context);
  ep->callback = ep->resource = ep->data_ref = ep->meta_ref = NULL;
  ep->async_context = NULL;
  ep->data = NULL;
  ep->meta = NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  endpoint_t *ep = data;
  ep->life.finalized = true;
  endpoint_close(env, ep); /* collected without udpClose (a bug of the caller): no leak */
  lifetime_free_if_done(&ep->life);
}

static endpoint_t *get_endpoint(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "ERR_UDP_IO", "udp-io: not an endpoint handle");
    return NULL;
  }
  return p;
}

static napi_value wrap_fd(napi_env env, int fd) {
  endpoint_t *ep = calloc(1, sizeof *ep);
  if (ep == NULL) {
    close(fd);
    return throw_errno(env, ENOMEM, "calloc");
  }
  ep->fd = fd;
  ep->env = env;
  ep->life.poll_done = true;
  napi_value ext;
  if (napi_create_external(env, ep, finalize, NULL, &ext) != napi_ok) {
    close(fd);
    free(ep);
    napi_throw_error(env, "ERR_UDP_IO", "udp-io: cannot create a handle");
    return NULL;
  }
  return ext;
}

/** udpOpen(family: 4 | 6, address: string, port: number, v6only: boolean) -> handle; throws with errno codes. */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family = 0, port = 0;
  bool v6only = false;
  char text[INET6_ADDRSTRLEN + 1];
  size_t len = 0;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_latin1(env, argv[1], text, sizeof text, &len));
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_value_bool(env, argv[3], &v6only));
  struct sockaddr_storage ss;
  socklen_t sslen;
  if (!sockaddr_from_text(family, text, port, &ss, &sslen)) return throw_errno(env, EINVAL, "inet_pton");
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  if (family == 6) {
    int on = v6only ? 1 : 0;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, e, "setsockopt");
    }
  }
  /* No SO_REUSEADDR: a second daemon on the same address gets EADDRINUSE (dgram's exclusive bind). */
  if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "bind");
  }
  return wrap_fd(env, fd);
}

/** udpAdopt(fd: number) -> handle: an inherited (systemd) datagram socket, made non-blocking. */
static napi_value udp_adopt(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  int type = 0;
  socklen_t tl = sizeof type;
  if (fd < 0) return throw_errno(env, EBADF, "getsockopt");
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0) return throw_errno(env, errno, "getsockopt");
  if (type != SOCK_DGRAM) return throw_errno(env, ENOTSOCK, "getsockopt");
  /* Owned from here on, as dgram's bind({ fd }) owns it: udpClose closes it. */
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return throw_errno(env, errno, "fcntl");
  return wrap_fd(env, fd);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  endpoint_t *ep = handle->data;
  napi_env env = ep->env;
  for (int round = 0; round < MAX_ROUNDS && ep->polling; round++) {
    int n;
    if (status < 0) {
      /* EPOLLERR: libuv reports UV_EBADF and has stopped the poll. Take the pending error and drain
         the error queue (IP_RECVERR on an inherited socket), report it once, and resume polling,
         or the listener would stay deaf for good. */
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      if (getsockopt(ep->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = 0;
      for (int i = 0; i < 64; i++) {
        char control[512];
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_control = control;
        mh.msg_controllen = sizeof control;
        if (recvmsg(ep->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
      }
      n = soerr != 0 ? -soerr : status;
      status = 0;
      if (uv_poll_start(&ep->life.poll, UV_READABLE, on_readable) < 0) ep->polling = false;
    } else {
      for (int i = 0; i < BATCH; i++) {
        ep->iov[i].iov_base = ep->data + (size_t)i * SLOT_BYTES;
        ep->iov[i].iov_len = SLOT_BYTES;
        memset(&ep->msgs[i].msg_hdr, 0, sizeof ep->msgs[i].msg_hdr);
        ep->msgs[i].msg_hdr.msg_iov = &ep->iov[i];
        ep->msgs[i].msg_hdr.msg_iovlen = 1;
        ep->msgs[i].msg_hdr.msg_name = &ep->addrs[i];
        ep->msgs[i].msg_hdr.msg_namelen = sizeof ep->addrs[i];
      }
      n = recvmmsg(ep->fd, ep->msgs, BATCH, MSG_DONTWAIT, NULL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        n = -errno;
      } else if (n == 0) {
        return;
      }
      for (int i = 0; i < n; i++) {
        int32_t *m = ep->meta + i * META_WORDS;
        memset(m, 0, META_WORDS * sizeof *m);
        m[0] = (int32_t)ep->msgs[i].msg_len;
        if (ep->addrs[i].ss_family == AF_INET6) {
          struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ep->addrs[i];
          m[1] = 6;
          m[2] = ntohs(a->sin6_port);
          memcpy(m + 3, &a->sin6_addr, 16);
          m[7] = (int32_t)a->sin6_scope_id; /* a link-local client's interface, for the reply */
        } else {
          struct sockaddr_in *a = (struct sockaddr_in *)&ep->addrs[i];
          m[1] = 4;
          m[2] = ntohs(a->sin_port);
          memcpy(m + 3, &a->sin_addr, 4);
        }
      }
    }
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value cb, recv, arg, result;
    napi_get_reference_value(env, ep->callback, &cb);
    napi_get_reference_value(env, ep->resource, &recv);
    napi_create_int32(env, n, &arg);
    /* make_callback: the microtasks and nextTicks the batch queued run before returning. */
    napi_status st = napi_make_callback(env, ep->async_context, recv, cb, 1, &arg, &result);
    if (st == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
    napi_close_handle_scope(env, scope);
    if (n < BATCH) return;
  }
}

/**
 * udpStart(handle, onBatch(n)) -> { data: Buffer, meta: Int32Array }: starts polling. onBatch gets
 * the number of datagrams in the shared buffers (slot i at i * SLOT_BYTES; meta words at i * 8:
 * length, family, port, address bytes), or a negative errno when receiving failed. The buffers are
 * reused by the next batch: copy what outlives the call.
 */
static napi_value udp_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  endpoint_t *ep = get_endpoint(env, argv[0]);
  if (ep == NULL) return NULL;
  if (ep->closed || ep->polling || ep->callback != NULL) return throw_errno(env, EINVAL, "udpStart");
  napi_value data, meta_ab, meta, resource, name, out;
  void *dp = NULL, *mp = NULL;
  CHECK(napi_create_buffer(env, (size_t)BATCH * SLOT_BYTES, &dp, &data));
  CHECK(napi_create_arraybuffer(env, BATCH * META_WORDS * sizeof(int32_t), &mp, &meta_ab));
  CHECK(napi_create_typedarray(env, napi_int32_array, BATCH * META_WORDS, meta_ab, 0, &meta));
  CHECK(napi_create_object(env, &resource));
  CHECK(napi_create_string_utf8(env, "mxsentry.udp", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, resource, name, &ep->async_context));
  CHECK(napi_create_reference(env, argv[1], 1, &ep->callback));
  CHECK(napi_create_reference(env, resource, 1, &ep->resource));
  CHECK(napi_create_reference(env, data, 1, &ep->data_ref));
  CHECK(napi_create_reference(env, meta, 1, &ep->meta_ref));
  ep->data = dp;
  ep->meta = mp;
  uv_loop_t *loop = NULL;
  CHECK(napi_get_uv_event_loop(env, &loop));
  int r = uv_poll_init_socket(loop, &ep->life.poll, ep->fd);
  if (r < 0) return throw_errno(env, -r, "uv_poll_init");
  ep->life.poll.data = ep;
  ep->life.poll_done = false;
  ep->polling = true;
  r = uv_poll_start(&ep->life.poll, UV_READABLE, on_readable);
  if (r < 0) return throw_errno(env, -r, "uv_poll_start");
  CHECK(napi_create_object(env, &out));
  CHECK(napi_set_named_property(env, out, "data", data));
  CHECK(napi_set_named_property(env, out, "meta", meta));
  return out;
}

/** udpSend(handle, buf, family, port, w0, w1, w2, w3, scope) -> 0, or the errno of sendto(2) (EAGAIN: dropped). */
static napi_value udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  endpoint_t *ep = get_endpoint(env, argv[0]);
  if (ep == NULL) return NULL;
  void *buf = NULL;
  size_t len = 0;
  CHECK(napi_get_buffer_info(env, argv[1], &buf, &len));
  int32_t family = 0, port = 0, w[4] = {0, 0, 0, 0};
  CHECK(napi_get_value_int32(env, argv[2], &family));
  CHECK(napi_get_value_int32(env, argv[3], &port));
  for (int i = 0; i < 4; i++) CHECK(napi_get_value_int32(env, argv[4 + i], &w[i]));
  int32_t scope = 0;
  if (argc >= 9) CHECK(napi_get_value_int32(env, argv[8], &scope));
  int err = 0;
  if (ep->closed) {
    err = EBADF;
  } else {
    struct sockaddr_storage ss;
    socklen_t sslen;
    sockaddr_from_bytes(family, w, port, &ss, &sslen);
    if (family == 6) ((struct sockaddr_in6 *)&ss)->sin6_scope_id = (uint32_t)scope;
    ssize_t sent;
    do {
      sent = sendto(ep->fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&ss, sslen);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) err = errno;
  }
  napi_value out;
  CHECK(napi_create_int32(env, err, &out));
  return out;
}

/** udpAddressText(family, w0, w1, w2, w3, scope?) -> the address as Node's rinfo writes it (fe80::1%eth0 with a scope). */
static napi_value udp_address_text(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family = 0, w[4] = {0, 0, 0, 0}, scope = 0;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  for (int i = 0; i < 4; i++) CHECK(napi_get_value_int32(env, argv[1 + i], &w[i]));
  if (argc >= 6) CHECK(napi_get_value_int32(env, argv[5], &scope));
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
  if (inet_ntop(family == 6 ? AF_INET6 : AF_INET, w, text, INET6_ADDRSTRLEN) == NULL) return throw_errno(env, errno, "inet_ntop");
  if (family == 6 && scope != 0) {
    /* The interface name, or its index when it has none. */
    size_t l = strlen(text);
    text[l++] = '%';
    if (if_indextoname((unsigned)scope, text + l) == NULL) snprintf(text + l, sizeof text - l, "%u", (unsigned)scope);
  }
  napi_value out;
  CHECK(napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &out));
  return out;
}

/** udpLocal(handle) -> { address, port, family: 'IPv4' | 'IPv6' } (getsockname). */
static napi_value udp_local(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  endpoint_t *ep = get_endpoint(env, argv[0]);
  if (ep == NULL) return NULL;
  if (ep->closed) return throw_errno(env, EBADF, "getsockname");
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(ep->fd, (struct sockaddr *)&ss, &sl) < 0) return throw_errno(env, errno, "getsockname");
  char text[INET6_ADDRSTRLEN];
  int port;
  const char *fam;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
    fam = "IPv6";
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
    fam = "IPv4";
  }
  napi_value out, a, p, f;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &a));
  CHECK(napi_create_int32(env, port, &p));
  CHECK(napi_create_string_latin1(env, fam, NAPI_AUTO_LENGTH, &f));
  CHECK(napi_set_named_property(env, out, "address", a));
  CHECK(napi_set_named_property(env, out, "port", p));
  CHECK(napi_set_named_property(env, out, "family", f));
  return out;
}

/** udpBuffer(handle, 'recv' | 'send', bytes?) -> the size getsockopt reports after setting `bytes` (when given). */
static napi_value udp_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  endpoint_t *ep = get_endpoint(env, argv[0]);
  if (ep == NULL) return NULL;
  char which[8];
  size_t wl = 0;
  CHECK(napi_get_value_string_latin1(env, argv[1], which, sizeof which, &wl));
  bool send_side = strcmp(which, "send") == 0;
  int opt = send_side ? SO_SNDBUF : SO_RCVBUF;
  if (ep->closed) return throw_errno(env, EBADF, "setsockopt");
  napi_valuetype t = napi_undefined;
  if (argc >= 3) CHECK(napi_typeof(env, argv[2], &t));
  if (t == napi_number) {
    int32_t bytes = 0;
    CHECK(napi_get_value_int32(env, argv[2], &bytes));
    /* As Unbound: the FORCE variant passes net.core.rmem_max / wmem_max where the process may
       (CAP_NET_ADMIN, e.g. root); elsewhere it fails with EPERM and the capped request is made. */
    int force = send_side ? SO_SNDBUFFORCE : SO_RCVBUFFORCE;
    if (setsockopt(ep->fd, SOL_SOCKET, force, &bytes, sizeof bytes) < 0 &&
        setsockopt(ep->fd, SOL_SOCKET, opt, &bytes, sizeof bytes) < 0) {
      return throw_errno(env, errno, "setsockopt");
    }
  }
  int got = 0;
  socklen_t gl = sizeof got;
  if (getsockopt(ep->fd, SOL_SOCKET, opt, &got, &gl) < 0) return throw_errno(env, errno, "getsockopt");
  napi_value out;
  CHECK(napi_create_int32(env, got, &out));
  return out;
}

/** udpClose(handle): stops polling and closes the socket; later sends return EBADF. Safe to call twice. */
static napi_value udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  endpoint_t *ep = get_endpoint(env, argv[0]);
  if (ep == NULL) return NULL;
  endpoint_close(env, ep);
  return NULL;
}

/* ---- upstream queries ------------------------------------------------------------------------ */

/*
 * Every upstream socket of an env sits in one epoll set of its own, and libuv polls that set's fd
 * as one handle. Its sockets come from the set's keeper (socket-keeper.c), which makes them, puts
 * them in the set, connects them, sends the queries and closes them on a thread of its own, so a
 * query costs this thread a table entry and a copy of its bytes, and a failed connect or send
 * comes back through a uv_async handle. Events are edge-triggered and carry the socket's
 * descriptor, looked up in a table of open queries: a socket handed back to the keeper (or held
 * by a child process between fork and exec) is no longer in the table, so its late events find
 * nothing, or the query that now owns the same descriptor number, whose socket is then read
 * early and harmlessly.
 */
typedef struct qset qset_t;

typedef struct {
  int fd;
  bool closed;
  uint64_t seq; /* tells a keeper's failure report for this query from one for an earlier owner of fd */
  qset_t *qs; /* its env's set, held (qs->refs) until the query is freed */
  napi_env env;
  napi_ref callback;
  struct sockaddr_storage peer; /* where the query went: datagrams from anywhere else are dropped */
  socklen_t peer_len;
} query_t;

/**
 * One epoll set per env. Its memory outlives the env's instance data for as long as libuv holds its
 * poll handle or a query (collected after the env's data, in whatever order teardown runs) holds it.
 */
struct qset {
  int epfd;
  uint32_t refs;    /* queries not yet freed */
  bool gone;        /* the env's instance data was freed: no table, no keeper, no dispatch any more */
  bool poll_closed; /* libuv's close callback ran */
  uv_poll_t poll;
  bool async_closed; /* the same for `failed` */
  uv_async_t failed; /* the keeper's failure reports are waiting */
  uint64_t next_seq;
  keeper_t *keeper; /* NULL when its thread could not start: sockets are made and closed here */
  query_t **by_fd;  /* open queries by socket descriptor */
  uint32_t nfd;
  uint32_t open;    /* open queries: the loop is kept alive while there are any */
  int dispatching;  /* >0 while answers are handed out: queries finalized then are freed after */
  query_t **deferred;
  uint32_t ndeferred, cap_deferred;
};

/** Per napi_env (the main thread, each worker): one async context for every query's callbacks. */
typedef struct {
  napi_async_context query_context;
  napi_ref query_resource;
  qset_t *qs;
} instance_t;
/** Receive buffer of the answer being read (one per thread: each env has its own loop thread). */
static _Thread_local uint8_t answer_buf[SLOT_BYTES];

static void qset_free_if_done(qset_t *qs) {
  if (!qs->poll_closed || !qs->async_closed || qs->refs > 0) return;
  free(qs->by_fd);
  free(qs->deferred);
  free(qs);
}

static void qset_closed(uv_handle_t *handle) {
  qset_t *qs = handle->data;
  qs->poll_closed = true;
  qset_free_if_done(qs);
}

static void qset_async_closed(uv_handle_t *handle) {
  qset_t *qs = handle->data;
  qs->async_closed = true;
  qset_free_if_done(qs);
}

static void query_free(query_t *q) {
  qset_t *qs = q->qs;
  free(q);
  if (qs) {
    qs->refs--;
    qset_free_if_done(qs);
  }
}

static void instance_free(napi_env env, void *data, void *hint) {
  (void)hint;
  instance_t *in = data;
  if (in->query_resource) napi_delete_reference(env, in->query_resource);
  if (in->query_context) napi_async_destroy(env, in->query_context);
  if (in->qs) {
    /* uv_close takes the set's fd out of the loop at once. Queries still open keep their sockets
       until their finalizers close them, and the set's memory until they are freed. */
    in->qs->gone = true;
    if (in->qs->keeper) keeper_stop(in->qs->keeper); /* its thread notifies `failed` no more */
    in->qs->keeper = NULL;
    uv_close((uv_handle_t *)&in->qs->poll, qset_closed);
    uv_close((uv_handle_t *)&in->qs->failed, qset_async_closed);
    close(in->qs->epfd);
  }
  free(in);
}

static instance_t *instance(napi_env env) {
  void *p = NULL;
  napi_get_instance_data(env, &p);
  return p;
}

/** Gives a socket back: to the keeper, which closes it (and so takes it out of the set), or closed here. */
static void socket_done(qset_t *qs, int fd) {
  if (qs && !qs->gone && qs->keeper) keeper_give(qs->keeper, fd);
  else close(fd);
}

static void query_close(napi_env env, query_t *q) {
  if (q->closed) return;
  q->closed = true;
  qset_t *qs = q->qs;
  if (q->fd >= 0) {
    if (qs && !qs->gone) {
      if ((uint32_t)q->fd < qs->nfd && qs->by_fd[q->fd] == q) qs->by_fd[q->fd] = NULL;
      if (--qs->open == 0) uv_unref((uv_handle_t *)&qs->poll);
    }
    socket_done(qs, q->fd);
    q->fd = -1;
  }
  if (q->callback) napi_delete_reference(env, q->callback);
  q->callback = NULL;
}

static void query_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  query_t *q = data;
  query_close(env, q); /* collected open: a bug of the caller; do not leak the socket */
  qset_t *qs = q->qs;
  if (qs && qs->dispatching > 0) {
    /* The batch being handed out may still name it: freed once the batch is done. */
    if (qs->ndeferred == qs->cap_deferred) {
      uint32_t cap = qs->cap_deferred ? qs->cap_deferred * 2 : 64;
      query_t **d = realloc(qs->deferred, cap * sizeof *d);
      if (d == NULL) return; /* out of memory: leak this one rather than risk a dangling pointer */
      qs->deferred = d;
      qs->cap_deferred = cap;
    }
    qs->deferred[qs->ndeferred++] = q;
    return;
  }
  query_free(q);
}

/** Calls the query's callback with (errno, answer | undefined, syscall | undefined). */
static void deliver(query_t *q, int err, const uint8_t *bytes, size_t len, const char *syscall) {
  napi_env env = q->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[3], result;
  instance_t *in = instance(env);
  void *dst = NULL;
  bool ok = in != NULL && napi_get_reference_value(env, q->callback, &cb) == napi_ok && cb != NULL &&
            napi_get_reference_value(env, in->query_resource, &recv) == napi_ok && recv != NULL &&
            napi_create_int32(env, err, &argv[0]) == napi_ok &&
            (bytes ? napi_create_buffer_copy(env, len, bytes, &dst, &argv[1]) : napi_get_undefined(env, &argv[1])) == napi_ok &&
            (syscall ? napi_create_string_latin1(env, syscall, NAPI_AUTO_LENGTH, &argv[2]) : napi_get_undefined(env, &argv[2])) == napi_ok;
  if (!ok) {
    /* Out of memory or an exception pending: nothing sane to call with; the caller's timer ends the query. */
    napi_close_handle_scope(env, scope);
    return;
  }
  napi_status st = napi_make_callback(env, in->query_context, recv, cb, 3, argv, &result);
  if (st == napi_pending_exception) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
  napi_close_handle_scope(env, scope);
}

static bool same_peer(const query_t *q, const struct sockaddr_storage *from, socklen_t len) {
  if (from->ss_family != q->peer.ss_family) return false;
  if (from->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)from, *b = (const void *)&q->peer;
    return len >= sizeof *a && a->sin6_port == b->sin6_port && memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0;
  }
  const struct sockaddr_in *a = (const void *)from, *b = (const void *)&q->peer;
  return len >= sizeof *a && a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
}

/** Datagrams read from one query's socket per event: a flood of forged ones cannot hold the loop. */
#define READS_PER_EVENT 64

/**
 * Reads what one query's socket holds: answers and receive errors (ICMP: ECONNREFUSED, ...). Its
 * events are edge-triggered, so it reads until the socket is empty or the query is closed, or
 * after READS_PER_EVENT datagrams re-arms the socket in the set so that what is left is reported
 * again on a later turn of the loop.
 */
static void query_readable(query_t *q) {
  for (int reads = 0; !q->closed; reads++) {
    if (reads == READS_PER_EVENT) {
      struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = q->fd};
      if (q->qs && !q->qs->gone) epoll_ctl(q->qs->epfd, EPOLL_CTL_MOD, q->fd, &ev); /* MOD reports it again while readable */
      return;
    }
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(q->fd, answer_buf, sizeof answer_buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      deliver(q, errno, NULL, 0, "recv"); /* ICMP errors on a connected socket; reading clears them */
      continue;
    }
    /* Connected, the kernel filters sources; a datagram that reached the port between its bind and
       the connect inside connect(2) did not pass that filter, so the source is checked here. */
    if (!same_peer(q, &from, fl)) continue;
    deliver(q, 0, answer_buf, (size_t)n, NULL);
  }
}

#define EVENTS_PER_WAIT 64

/**
 * Ends a hand-out of answers or failures (qs->dispatching was raised for it): the queries finalized
 * meanwhile are freed once no hand-out is running. Each holds a reference to qs, which the handle
 * being run outlives here.
 */
static void dispatch_end(qset_t *qs) {
  if (--qs->dispatching > 0) return;
  for (uint32_t i = 0; i < qs->ndeferred; i++) query_free(qs->deferred[i]);
  qs->ndeferred = 0;
}

static void on_qset(uv_poll_t *handle, int status, int events) {
  (void)events;
  (void)status; /* an epoll fd does not fail; were it to, epoll_wait says so below and returns */
  qset_t *qs = handle->data;
  struct epoll_event ev[EVENTS_PER_WAIT];
  int n = epoll_wait(qs->epfd, ev, EVENTS_PER_WAIT, 0);
  if (n <= 0) return;
  qs->dispatching++;
  for (int i = 0; i < n && !qs->gone; i++) {
    uint32_t fd = (uint32_t)ev[i].data.fd;
    query_t *q = fd < qs->nfd ? qs->by_fd[fd] : NULL; /* NULL: closed since, a stale event */
    if (q && !q->closed) query_readable(q);
  }
  dispatch_end(qs);
}

/** The keeper's thread: failure reports are waiting (uv_async_send is safe from any thread). */
static void notify_failed(void *arg) {
  qset_t *qs = arg;
  uv_async_send(&qs->failed);
}

/** Hands each failed connect or send to its query, unless the query was closed since. */
static void on_failed(uv_async_t *handle) {
  qset_t *qs = handle->data;
  if (qs->gone || qs->keeper == NULL) return;
  keeper_failure_t f[EVENTS_PER_WAIT];
  int n;
  qs->dispatching++;
  while (!qs->gone && qs->keeper && (n = keeper_failures(qs->keeper, f, EVENTS_PER_WAIT)) > 0) {
    for (int i = 0; i < n && !qs->gone; i++) {
      uint32_t fd = (uint32_t)f[i].fd;
      query_t *q = fd < qs->nfd ? qs->by_fd[fd] : NULL;
      if (q && !q->closed && q->seq == f[i].seq) deliver(q, f[i].err, NULL, 0, f[i].syscall);
    }
  }
  dispatch_end(qs);
}

/** The env's epoll set and its keeper, made on first use; NULL with errno set when the set cannot be. */
static qset_t *qset_of(napi_env env, instance_t *in) {
  if (in->qs) return in->qs;
  qset_t *qs = calloc(1, sizeof *qs);
  if (qs == NULL) return NULL;
  qs->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (qs->epfd < 0) {
    int e = errno;
    free(qs);
    errno = e;
    return NULL;
  }
  uv_loop_t *loop = NULL;
  int r = napi_get_uv_event_loop(env, &loop) == napi_ok ? uv_poll_init(loop, &qs->poll, qs->epfd) : UV_EINVAL;
  if (r == 0) {
    qs->poll.data = qs;
    r = uv_poll_start(&qs->poll, UV_READABLE, on_qset);
    if (r < 0) {
      qs->async_closed = true; /* never initialised: the poll handle's close callback frees qs */
      uv_close((uv_handle_t *)&qs->poll, qset_closed);
      close(qs->epfd);
      errno = -r;
      return NULL;
    }
    uv_unref((uv_handle_t *)&qs->poll); /* referenced while a query is open (qset_register) */
    r = uv_async_init(loop, &qs->failed, on_failed);
    if (r < 0) {
      /* The poll handle's close callback frees qs once this flag says the async one needs none. */
      qs->async_closed = true;
      uv_close((uv_handle_t *)&qs->poll, qset_closed);
      close(qs->epfd);
      errno = -r;
      return NULL;
    }
    qs->failed.data = qs;
    uv_unref((uv_handle_t *)&qs->failed); /* open queries keep the loop alive through the poll handle */
  } else {
    close(qs->epfd);
    free(qs);
    errno = -r;
    return NULL;
  }
  qs->keeper = keeper_start(qs->epfd, notify_failed, qs); /* NULL: no thread; queries then do it all here */
  in->qs = qs;
  return qs;
}

/** Enters an open query in the table, grown as needed; false when out of memory. */
static bool qset_register(qset_t *qs, query_t *q) {
  uint32_t fd = (uint32_t)q->fd;
  if (fd >= qs->nfd) {
    uint32_t n = qs->nfd ? qs->nfd : 256;
    while (n <= fd) n *= 2;
    query_t **t = realloc(qs->by_fd, (size_t)n * sizeof *t);
    if (t == NULL) return false;
    memset(t + qs->nfd, 0, (size_t)(n - qs->nfd) * sizeof *t);
    qs->by_fd = t;
    qs->nfd = n;
  }
  qs->by_fd[fd] = q;
  /* An open query keeps the loop alive, as a socket of its own would. */
  if (qs->open++ == 0) uv_ref((uv_handle_t *)&qs->poll);
  return true;
}

static napi_value query_handle(napi_env env, query_t *q, napi_value cb);

/**
 * udpQuery(family: 4 | 6, address: string, port: number, query: Buffer, onDatagram(errno, buf?, syscall?)) -> handle:
 * a fresh socket connected to address:port, the query sent (by the keeper's thread, soon, or here).
 * Throws (errno code) when a socket cannot be had, or when connect or send fails here; the
 * keeper's failures, each datagram and each receive error call onDatagram until udpQueryClose.
 */
static napi_value udp_query(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family = 0, port = 0;
  char text[INET6_ADDRSTRLEN + 1];
  size_t tl = 0;
  void *buf = NULL;
  size_t len = 0;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_latin1(env, argv[1], text, sizeof text, &tl));
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_buffer_info(env, argv[3], &buf, &len));
  instance_t *in = instance(env);
  if (in == NULL) {
    napi_throw_error(env, "ERR_UDP_IO", "udp-io: no instance data");
    return NULL;
  }
  if (in->query_context == NULL) {
    napi_value resource, name;
    CHECK(napi_create_object(env, &resource));
    CHECK(napi_create_string_utf8(env, "mxsentry.udpQuery", NAPI_AUTO_LENGTH, &name));
    if (in->query_resource == NULL) CHECK(napi_create_reference(env, resource, 1, &in->query_resource));
    CHECK(napi_async_init(env, resource, name, &in->query_context));
  }
  qset_t *qs = qset_of(env, in);
  if (qs == NULL) return throw_errno(env, errno, "epoll_create1");
  query_t *q = calloc(1, sizeof *q);
  if (q == NULL) return throw_errno(env, ENOMEM, "calloc");
  q->qs = qs;
  qs->refs++;
  q->fd = -1;
  q->env = env;
  if (!sockaddr_from_text(family, text, port, &q->peer, &q->peer_len)) {
    query_free(q);
    return throw_errno(env, EINVAL, "inet_pton");
  }
  /* A ready socket from the keeper is already in the set, and the keeper sends on it; one made
     here (none was ready, or the query is too large to hand over) is sent on here and goes in
     the set after the send. */
  int fd = qs->keeper ? keeper_take(qs->keeper, family) : -1;
  bool in_set = fd >= 0;
  bool by_keeper = in_set && len <= KEEPER_QUERY_MAX;
  if (!by_keeper) {
    if (fd < 0) fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      int e = errno;
      query_free(q);
      return throw_errno(env, e, "socket");
    }
    /* connect binds to a random ephemeral port (Linux randomises within ip_local_port_range). */
    const char *failed = NULL;
    if (connect(fd, (struct sockaddr *)&q->peer, q->peer_len) < 0) failed = "connect";
    else if (send(fd, buf, len, MSG_DONTWAIT) < 0) failed = "send";
    if (!failed && !in_set) {
      /* Added after the send: an answer already there is reported at once (epoll checks on ADD). */
      struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
      if (epoll_ctl(qs->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) failed = "epoll_ctl";
    }
    if (failed) {
      int e = errno;
      socket_done(qs, fd);
      query_free(q);
      return throw_errno(env, e, failed);
    }
  }
  /* In the table before the keeper sends: the answer, or its failure report, finds the query there. */
  q->fd = fd;
  q->seq = ++qs->next_seq;
  if (!qset_register(qs, q)) {
    q->fd = -1;
    socket_done(qs, fd);
    query_free(q);
    return throw_errno(env, ENOMEM, "realloc");
  }
  if (by_keeper && !keeper_submit(qs->keeper, fd, q->seq, &q->peer, q->peer_len, buf, len)) {
    query_close(env, q);
    query_free(q);
    return throw_errno(env, ENOMEM, "realloc");
  }
  return query_handle(env, q, argv[4]);
}

/** The JS handle of an open query, whose callback is `cb`; throws (and closes q) when it cannot be made. */
static napi_value query_handle(napi_env env, query_t *q, napi_value cb) {
  napi_value ext;
  napi_ref callback = NULL;
  /* The reference first: once the external exists, its finalizer owns q and the fd. */
  if (napi_create_reference(env, cb, 1, &callback) != napi_ok) {
    query_close(env, q);
    query_free(q);
    napi_throw_error(env, "ERR_UDP_IO", "udp-io: cannot create a query handle");
    return NULL;
  }
  if (napi_create_external(env, q, query_finalize, NULL, &ext) != napi_ok) {
    napi_delete_reference(env, callback);
    query_close(env, q);
    query_free(q);
    napi_throw_error(env, "ERR_UDP_IO", "udp-io: cannot create a query handle");
    return NULL;
  }
  q->callback = callback;
  return ext;
}

/** udpQueryClose(handle): closes the query's socket; no callback follows. Safe to call twice. */
static napi_value udp_query_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *p = NULL;
  if (napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "ERR_UDP_IO", "udp-io: not a query handle");
    return NULL;
  }
  query_close(env, p);
  return NULL;
}

/** udpQuerySockets() -> number: sockets the env's keeper holds (ready, or waiting to be closed). */
static napi_value udp_query_sockets(napi_env env, napi_callback_info info) {
  (void)info;
  instance_t *in = instance(env);
  int n = in && in->qs && in->qs->keeper ? keeper_held(in->qs->keeper) : 0;
  napi_value out;
  CHECK(napi_create_int32(env, n, &out));
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_default, NULL},
    {"udpAdopt", NULL, udp_adopt, NULL, NULL, NULL, napi_default, NULL},
    {"udpStart", NULL, udp_start, NULL, NULL, NULL, napi_default, NULL},
    {"udpSend", NULL, udp_send, NULL, NULL, NULL, napi_default, NULL},
    {"udpAddressText", NULL, udp_address_text, NULL, NULL, NULL, napi_default, NULL},
    {"udpLocal", NULL, udp_local, NULL, NULL, NULL, napi_default, NULL},
    {"udpBuffer", NULL, udp_buffer, NULL, NULL, NULL, napi_default, NULL},
    {"udpClose", NULL, udp_close, NULL, NULL, NULL, napi_default, NULL},
    {"udpQuery", NULL, udp_query, NULL, NULL, NULL, napi_default, NULL},
    {"udpQueryClose", NULL, udp_query_close, NULL, NULL, NULL, napi_default, NULL},
    {"udpQuerySockets", NULL, udp_query_sockets, NULL, NULL, NULL, napi_default, NULL},
  };
  instance_t *in = calloc(1, sizeof *in);
  if (in == NULL || napi_set_instance_data(env, in, instance_free, NULL) != napi_ok) {
    free(in);
    napi_throw_error(env, "ERR_UDP_IO", "udp-io: cannot set instance data");
    return NULL;
  }
  napi_value slot_bytes, batch, meta_words;
  napi_create_int32(env, SLOT_BYTES, &slot_bytes);
  napi_create_int32(env, BATCH, &batch);
  napi_create_int32(env, META_WORDS, &meta_words);
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_set_named_property(env, exports, "SLOT_BYTES", slot_bytes);
  napi_set_named_property(env, exports, "BATCH", batch);
  napi_set_named_property(env, exports, "META_WORDS", meta_words);
  return exports;
}
