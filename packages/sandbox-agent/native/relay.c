/* Optional relay: 127.0.0.1:<api-port> inside the sandbox -> the host's api socket. Each TCP
 * connection gets its own unix connection; bytes are copied both ways through bounded buffers. */
#include "agent.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RBUF 65536
#define MAX_RELAYS 1024

/* Direction 0 copies tcp -> unix, direction 1 unix -> tcp. */
struct rconn {
  struct evh tcp, unx;
  struct rconn *next, *prev;
  uint32_t len[2], off[2];
  bool eof[2];
  uint8_t buf[2][RBUF];
};

static struct evh lh = { .fd = -1, .kind = K_RLISTEN };
static struct rconn *relays;
static int nrelays;
static bool paused;

/* A fresh network namespace has its loopback down: bring it up (needs CAP_NET_ADMIN). */
static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  struct ifreq ifr = { 0 };
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  close(s);
}

void relay_init(void) {
  if (!A.api_port) return;
  loopback_up();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)A.api_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 512)) {
    logmsg("api relay on 127.0.0.1:%d: %s", A.api_port, strerror(errno));
    if (fd >= 0) close(fd);
    return;
  }
  lh.fd = fd;
  ev_set(&lh, EPOLLIN);
}

static void rc_update(struct rconn *c) {
  ev_set(&c->tcp, (c->len[0] == 0 && !c->eof[0] ? EPOLLIN : 0) | (c->len[1] ? EPOLLOUT : 0));
  ev_set(&c->unx, (c->len[1] == 0 && !c->eof[1] ? EPOLLIN : 0) | (c->len[0] ? EPOLLOUT : 0));
}

static void rc_close(struct rconn *c) {
  ev_close(&c->tcp);
  ev_close(&c->unx);
  if (c->prev) c->prev->next = c->next;
  else relays = c->next;
  if (c->next) c->next->prev = c->prev;
  nrelays--;
  defer_free(c);
}

static void on_accept(void) {
  for (;;) {
    int t = accept4(lh.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (t < 0) return;
    struct rconn *c = nrelays < MAX_RELAYS ? malloc(sizeof *c) : NULL;
    int u = c ? socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strncpy(sa.sun_path, A.api_sock, sizeof sa.sun_path - 1);
    if (u < 0 || connect(u, (struct sockaddr *)&sa, sizeof sa)) {
      if (u >= 0) close(u);
      free(c);
      close(t);
      continue;
    }
    int one = 1;
    setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    memset(c, 0, offsetof(struct rconn, buf));
    c->tcp = (struct evh){ t, K_RTCP, 0, c };
    c->unx = (struct evh){ u, K_RUNIX, 0, c };
    c->next = relays;
    if (relays) relays->prev = c;
    relays = c;
    nrelays++;
    rc_update(c);
  }
}

/* Moves bytes of direction d from src to dst. Returns false when the pair must close. */
static bool pump_dir(struct rconn *c, int d) {
  struct evh *src = d == 0 ? &c->tcp : &c->unx, *dst = d == 0 ? &c->unx : &c->tcp;
  for (;;) {
    if (c->len[d]) {
      ssize_t w = send(dst->fd, c->buf[d] + c->off[d], c->len[d], MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) return errno == EAGAIN || errno == EINTR;
      c->off[d] += w;
      c->len[d] -= w;
      if (c->len[d]) return true;
      c->off[d] = 0;
    }
    if (c->eof[d]) return true;
    ssize_t n = recv(src->fd, c->buf[d], RBUF, MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) {
      c->eof[d] = true;
      shutdown(dst->fd, SHUT_WR);
      return true;
    }
    c->len[d] = n;
  }
}

void relay_event(struct evh *h, uint32_t events) {
  (void)events;
  if (h->kind == K_RLISTEN) return on_accept();
  struct rconn *c = h->obj;
  if (!pump_dir(c, 0) || !pump_dir(c, 1) || (c->eof[0] && c->eof[1] && !c->len[0] && !c->len[1])) {
    rc_close(c);
    return;
  }
  rc_update(c);
}

/* While detached: close every relayed connection and stop accepting. */
void relay_pause(bool p) {
  if (lh.fd < 0 || p == paused) return;
  paused = p;
  if (p) {
    while (relays) rc_close(relays);
    ev_set(&lh, 0);
  } else {
    ev_set(&lh, EPOLLIN);
  }
}
