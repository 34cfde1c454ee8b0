/* hangar-agent: PID 1 of a sandbox. Connects to the host's unix socket and serves the framed
 * protocol of ../PROTOCOL.md from one single-threaded epoll loop. */
#include "agent.h"

#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define IN_BUF 65536

struct agent A = {
  .conn = { .fd = -1, .kind = K_CONN },
  .backoff = 5,
  .paused = true,
  .stop_ms = 2000,
  .detach_ms = 10000,
};

static struct evh sig_h = { .fd = -1, .kind = K_SIG };
static void **graveyard;
static size_t graves, graves_cap;

void logmsg(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  dprintf(2, "hangar-agent: %.*s", n, buf);
}

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Registers, changes or removes (events == 0) h in epoll, only when something changes. */
void ev_set(struct evh *h, uint32_t events) {
  if (h->fd < 0 || h->cur == events) return;
  struct epoll_event e = { .events = events, .data.ptr = h };
  int op = !h->cur ? EPOLL_CTL_ADD : !events ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(A.ep, op, h->fd, &e) == 0) h->cur = events;
  else logmsg("epoll_ctl(%d, fd %d): %s", op, h->fd, strerror(errno));
}

/* Removes h from epoll (explicitly: a dup of the fd may keep the file alive) and closes it. */
void ev_close(struct evh *h) {
  if (h->fd < 0) return;
  ev_set(h, 0);
  close(h->fd);
  h->fd = -1;
  h->cur = 0;
}

/* Frees p after the current batch of epoll events (later events may still point at it). */
void defer_free(void *p) {
  if (graves == graves_cap) {
    graves_cap = graves_cap ? graves_cap * 2 : 16;
    graveyard = realloc(graveyard, graves_cap * sizeof *graveyard);
    if (!graveyard) abort();
  }
  graveyard[graves++] = p;
}

/* True when events (output, exits, watch) may flow to the host. */
bool delivering(void) { return A.conn.fd >= 0 && !A.paused && !A.closing && !A.upgrade_path; }

/* Queues f for the host, or drops it when no host is connected. */
void send_frame(struct frame *f) {
  if (A.conn.fd < 0) {
    free(f);
    return;
  }
  set32(f->d, f->len - HDR);
  fq_push(&A.sendq, f);
  A.sendq.bytes += f->len - f->off;
}

void reply_empty(uint32_t id) { send_frame(frame_new(MSG_OK, 0, id, 0)); }

void reply_err(uint32_t id, int err, const char *what, const char *arg) {
  struct frame *f = frame_new(MSG_ERR, 0, id, 64);
  fput_u32(&f, (uint32_t)err);
  char msg[PATH_MAX + 64];
  int n = snprintf(msg, sizeof msg, "%s%s%s", what, arg ? " " : "", arg ? arg : "");
  fput_str(&f, msg, n < 0 ? 0 : (size_t)n >= sizeof msg ? sizeof msg - 1 : (size_t)n);
  send_frame(f);
}

static void info_payload(struct frame **f) {
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  fput_u32(f, PROTO_VERSION);
  fput_u32(f, (uint32_t)getpid());
  fput_cstr(f, host);
  fput_cstr(f, AGENT_VERSION);
  fput_u64(f, A.instance);
}

static int saved_argc;
static char **saved_argv;

/* ---- host connection ---- */

static void conn_up(int fd) {
  A.conn.fd = fd;
  A.conn.cur = 0;
  A.gen++;
  A.paused = true;
  A.closing = false;
  A.detached = false;
  A.backoff = 5;
  A.inlen = 0;
  /* non-dumpable while connected, watches back after a detach (see conn_down) */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  watch_resume();
  ev_set(&A.conn, EPOLLIN);
  struct frame *f = frame_new(MSG_HELLO, 0, 0, 128);
  info_payload(&f);
  fput_cstr(&f, A.token);
  send_frame(f);
  relay_pause(false);
}

static void conn_try(void) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strncpy(sa.sun_path, A.sock_path, sizeof sa.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
      conn_up(fd);
      return;
    }
    close(fd);
  }
  A.next_connect = A.now + A.backoff;
  A.backoff = A.backoff * 2 > 200 ? 200 : A.backoff * 2;
}

/* Drops the connection: unsent output goes back to its processes, file handles close. */
static void conn_down(void) {
  if (A.closing) {
    /* Detached for a checkpoint, and before the close (the host checkpoints as soon as it sees
     * it): relayed connections closed; dumpable, since CRIU checks the agent's /proc/<pid>/ns
     * files from inside the sandbox's user namespace, which a non-dumpable process restored by
     * CRIU (its mm then belongs to the host's user namespace) refuses; no inotify marks. Made
     * non-dumpable again on reconnect. */
    relay_pause(true);
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    watch_suspend();
  }
  ev_close(&A.conn);
  proc_requeue(&A.sendq);
  fq_free(&A.sendq);
  fs_close_handles();
  A.inlen = 0;
  if (A.incap > IN_BUF) {
    A.in = realloc(A.in, IN_BUF);
    A.incap = IN_BUF;
  }
  A.paused = true;
  A.next_connect = A.now;
  A.backoff = 5;
  if (A.closing) {
    A.closing = false;
    A.detached = true;
    A.next_connect = A.now + A.detach_ms;
  }
}

static void handle_request(uint8_t type, uint32_t id, const uint8_t *p, uint32_t n) {
  struct rd r = { p, p + n, false };
  switch (type) {
  case OP_PING:
    reply_empty(id);
    break;
  case OP_INFO: {
    struct frame *f = frame_new(MSG_OK, 0, id, 128);
    info_payload(&f);
    send_frame(f);
    break;
  }
  case OP_LIST:
    proc_list(id);
    A.paused = false;
    break;
  case OP_SPAWN: case OP_SIGNAL: case OP_STDIN: case OP_CLOSE_STDIN: case OP_RESIZE: case OP_RELEASE:
    proc_op(type, id, &r);
    break;
  case OP_STAT: case OP_READDIR: case OP_READ: case OP_WRITE_FILE: case OP_OPEN: case OP_WRITE:
  case OP_CLOSE: case OP_MKDIR: case OP_REMOVE: case OP_RENAME: case OP_CHMOD: case OP_REALPATH:
    fs_op(type, id, &r);
    break;
  case OP_WATCH: case OP_UNWATCH:
    watch_op(type, id, &r);
    break;
  case OP_UPGRADE: {
    static char path[PATH_MAX];
    int e = rd_path(&r, path);
    if (e) return reply_err(id, e, "upgrade: malformed request", NULL);
    if (access(path, X_OK)) return reply_err(id, errno, "upgrade", path);
    free(A.upgrade_path);
    A.upgrade_path = strdup(path);
    reply_empty(id);
    break;
  }
  case OP_DETACH: {
    uint32_t ms = rd_u32(&r);
    reply_empty(id);
    A.detach_ms = ms ? ms : 10000;
    A.closing = true;
    break;
  }
  default:
    reply_err(id, ENOSYS, "unknown request type", NULL);
  }
}

/* Handles every complete frame in the input buffer. Returns -1 on a protocol violation. */
static int parse_frames(void) {
  size_t off = 0;
  int rc = 0;
  while (A.inlen - off >= HDR && !A.closing && !A.upgrade_path) {
    uint8_t *h = A.in + off;
    uint32_t plen = get32(h);
    if (plen > MAX_PAYLOAD) {
      rc = -1;
      break;
    }
    if (A.inlen - off < HDR + (size_t)plen) break;
    handle_request(h[4], get32(h + 8), h + HDR, plen);
    off += HDR + plen;
  }
  if (off) {
    memmove(A.in, A.in + off, A.inlen - off);
    A.inlen -= off;
  }
  /* Grow for a large frame in progress; shrink back once it has been handled. */
  if (A.inlen >= HDR) {
    size_t need = HDR + (size_t)get32(A.in);
    if (need > A.incap && need <= HDR + MAX_PAYLOAD) {
      A.in = realloc(A.in, need);
      if (!A.in) abort();
      A.incap = need;
    }
  } else if (A.incap > IN_BUF) {
    A.in = realloc(A.in, IN_BUF);
    A.incap = IN_BUF;
  }
  return rc;
}

static void conn_read(void) {
  for (int round = 0; round < 16 && A.conn.fd >= 0; round++) {
    if (A.closing || A.upgrade_path || A.sendq.bytes >= SENDQ_STOP_READ) return;
    ssize_t n = read(A.conn.fd, A.in + A.inlen, A.incap - A.inlen);
    if (n == 0) {
      conn_down();
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      conn_down();
      return;
    }
    A.inlen += n;
    if (parse_frames() < 0) {
      logmsg("protocol error from host; reconnecting");
      conn_down();
      return;
    }
  }
}

/* Writes as much of the send queue as the socket takes. */
static void conn_flush(void) {
  while (A.sendq.head) {
    struct iovec iov[64];
    int n = 0;
    for (struct frame *f = A.sendq.head; f && n < 64; f = f->next) {
      iov[n].iov_base = f->d + f->off;
      iov[n].iov_len = f->len - f->off;
      n++;
    }
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n };
    ssize_t w = sendmsg(A.conn.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      conn_down();
      return;
    }
    A.sendq.bytes -= w;
    while (w > 0) {
      struct frame *f = A.sendq.head;
      size_t left = f->len - f->off;
      if ((size_t)w < left) {
        f->off += w;
        break;
      }
      w -= left;
      free(fq_pop(&A.sendq));
    }
  }
  if (A.closing && !A.sendq.head) {
    conn_down();
    return;
  }
  uint32_t ev = 0;
  if (!A.closing && !A.upgrade_path && A.sendq.bytes < SENDQ_STOP_READ) ev |= EPOLLIN;
  if (A.sendq.head) ev |= EPOLLOUT;
  ev_set(&A.conn, ev);
}

/* ---- upgrade: replace this binary, keeping processes, their pipes and buffered output ---- */

#define STATE_MAGIC 0x50554148u /* "HAUP" */
#define STATE_VERSION 1u

/* The agent's state for the next binary: identity, counters, processes (their fds made to
 * survive exec), watches. */
static struct frame *state_save(bool keep) {
  struct frame *f = frame_new(0, 0, 0, 4096);
  fput_u32(&f, STATE_MAGIC);
  fput_u32(&f, STATE_VERSION);
  fput_u64(&f, A.instance);
  fput_cstr(&f, A.token);
  fput_u32(&f, A.upgrades);
  fput_u64(&f, A.nofile_orig.rlim_cur);
  fput_u64(&f, A.nofile_orig.rlim_max);
  proc_save(&f, keep);
  watch_save(&f);
  return f;
}

/* Execs A.upgrade_path with the state in an inherited memfd (argv + "--resume FD"). Called once
 * the UPGRADE reply is flushed and no spawn is half-way; on failure the agent carries on. */
static void upgrade_exec(void) {
  char *path = A.upgrade_path;
  A.upgrade_path = NULL;
  if (A.conn.fd >= 0) conn_down();
  struct frame *f = state_save(true);
  int mfd = memfd_create("hangar-agent-state", 0);
  size_t len = f->len - HDR, off = 0;
  while (mfd >= 0 && off < len) {
    ssize_t w = write(mfd, f->d + HDR + off, len - off);
    if (w <= 0) break;
    off += w;
  }
  free(f);
  if (mfd >= 0 && off == len && lseek(mfd, 0, SEEK_SET) == 0) {
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", mfd);
    char **argv = calloc(saved_argc + 3, sizeof *argv);
    int n = 0;
    for (int i = 0; argv && i < saved_argc; i++) {
      if (!strcmp(saved_argv[i], "--resume")) {
        i++;
        continue;
      }
      argv[n++] = saved_argv[i];
    }
    if (argv) {
      argv[n++] = "--resume";
      argv[n++] = fdarg;
      argv[n] = NULL;
      execve(path, argv, environ);
    }
    logmsg("upgrade: execve %s: %s; this agent carries on", path, strerror(errno));
    free(argv);
  } else {
    logmsg("upgrade: saving the state failed: %s; this agent carries on", strerror(errno));
  }
  if (mfd >= 0) close(mfd);
  free(state_save(false)); /* process fds close-on-exec again */
  free(path);
}

/* Takes over the state of the agent this binary replaced. */
static int state_load(int fd) {
  struct stat st;
  if (fstat(fd, &st) || st.st_size <= 0) return -1;
  uint8_t *buf = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (buf == MAP_FAILED) return -1;
  struct rd r = { buf, buf + st.st_size, false };
  int rc = -1;
  if (rd_u32(&r) == STATE_MAGIC && rd_u32(&r) == STATE_VERSION) {
    A.instance = rd_u64(&r);
    uint32_t tl;
    const uint8_t *tok = rd_bytes(&r, &tl);
    if (tok && tl < sizeof A.token) {
      memcpy(A.token, tok, tl);
      A.token[tl] = 0;
    }
    A.upgrades = rd_u32(&r) + 1;
    A.nofile_orig.rlim_cur = rd_u64(&r);
    A.nofile_orig.rlim_max = rd_u64(&r);
    if (!r.bad && proc_load(&r) == 0 && watch_load(&r) == 0) rc = 0;
  }
  munmap(buf, st.st_size);
  close(fd);
  return rc;
}

/* ---- signals and shutdown ---- */

static void finish_exit(void) {
  proc_pump();
  if (A.conn.fd >= 0) conn_flush();
  exit(0);
}

static void begin_stop(void) {
  if (A.stopping) return;
  A.stopping = true;
  A.stop_deadline = A.now + A.stop_ms;
  proc_signal_all(SIGTERM);
  if (A.pid1) kill(-1, SIGTERM);
  proc_reap();
}

static void stop_check(void) {
  if (A.no_children) finish_exit();
  if (A.now >= A.stop_deadline) {
    proc_signal_all(SIGKILL);
    if (A.pid1) kill(-1, SIGKILL);
    proc_reap();
    finish_exit();
  }
}

static void on_signals(void) {
  struct signalfd_siginfo si;
  while (read(sig_h.fd, &si, sizeof si) == (ssize_t)sizeof si) {
    switch (si.ssi_signo) {
    case SIGCHLD:
      proc_reap();
      break;
    case SIGTERM:
    case SIGINT:
      begin_stop();
      break;
    case SIGUSR1:
      if (A.conn.fd < 0) {
        A.detached = false;
        A.next_connect = A.now;
        A.backoff = 5;
        relay_pause(false);
      }
      break;
    }
  }
}

static void noop_handler(int sig) { (void)sig; }

/* ---- setup ---- */

static void usage(void) {
  dprintf(2, "usage: hangar-agent --socket PATH [--chroot DIR] [--workdir DIR] [--api-port N --api-socket PATH]"
             " [--stop-timeout MS] [--die-with-parent] [--resume FD]\n");
  exit(2);
}

/* Takes the connection token from the environment and wipes it from this process's memory. */
static void take_token(void) {
  const char *name = "HANGAR_AGENT_TOKEN=";
  for (char **e = environ; e && *e; e++) {
    if (strncmp(*e, name, strlen(name)) == 0) {
      char *v = *e + strlen(name);
      strncpy(A.token, v, sizeof A.token - 1);
      memset(v, 0, strlen(v));
    }
  }
  unsetenv("HANGAR_AGENT_TOKEN");
}

/* Makes sure fds 0-2 exist so pipes never land on them. */
static void ensure_stdio(void) {
  for (int fd = 0; fd < 3; fd++) {
    if (fcntl(fd, F_GETFD) >= 0) continue;
    int n = open("/dev/null", O_RDWR);
    if (n < 0) {
      int p[2];
      if (pipe(p) == 0) n = p[0];
    }
    if (n >= 0 && n != fd) {
      dup2(n, fd);
      close(n);
    }
  }
}

int main(int argc, char **argv) {
  const char *root = NULL, *workdir = NULL;
  bool die_with_parent = false;
  int resume_fd = -1;
  saved_argc = argc;
  saved_argv = argv;
  pid_t parent = getppid();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--die-with-parent")) {
      die_with_parent = true;
      continue;
    }
    if (!v) usage();
    if (!strcmp(a, "--socket")) A.sock_path = v;
    else if (!strcmp(a, "--chroot")) root = v;
    else if (!strcmp(a, "--workdir")) workdir = v;
    else if (!strcmp(a, "--api-port")) A.api_port = atoi(v);
    else if (!strcmp(a, "--api-socket")) A.api_sock = v;
    else if (!strcmp(a, "--stop-timeout")) A.stop_ms = atoi(v);
    else if (!strcmp(a, "--resume")) resume_fd = atoi(v);
    else usage();
    i++;
  }
  if (!A.sock_path || strlen(A.sock_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) usage();
  if ((A.api_port != 0) != (A.api_sock != NULL) || A.api_port < 0 || A.api_port > 65535) usage();

  /* Large buffers (frames, reads, stdin) always come from mmap and go back to the kernel when
   * freed, and the heap is trimmed early: RSS returns to its idle size after bursts. */
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);

  if (resume_fd < 0) take_token();
  ensure_stdio();
  A.pid1 = getpid() == 1;
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (!A.pid1) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  if (getrandom(&A.instance, sizeof A.instance, GRND_NONBLOCK) != sizeof A.instance)
    A.instance = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32);

  /* (a resumed agent is already in its root) */
  if (resume_fd >= 0) root = workdir = NULL;
  if (root && (chroot(root) || chdir("/"))) {
    logmsg("chroot %s: %s", root, strerror(errno));
    return 1;
  }
  if (workdir && chdir(workdir)) logmsg("chdir %s: %s", workdir, strerror(errno));

  /* Many processes need many fds: raise the soft limit; children get the original back. */
  getrlimit(RLIMIT_NOFILE, &A.nofile_orig);
  /* (an unreadable part is logged, not fatal: as PID 1 an exit would end every process) */
  if (resume_fd >= 0 && state_load(resume_fd)) logmsg("upgrade: part of the previous agent's state was unreadable");
  struct rlimit nl = A.nofile_orig;
  nl.rlim_cur = nl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nl);

  /* Signals arrive through a signalfd; no-op handlers keep them deliverable to PID 1. */
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGUSR1 };
  sigset_t mask;
  sigemptyset(&mask);
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
    struct sigaction sa = { .sa_handler = noop_handler };
    sigaction(sigs[i], &sa, NULL);
    sigaddset(&mask, sigs[i]);
  }
  sigprocmask(SIG_BLOCK, &mask, NULL);
  /* For tests and dev drivers: stop (as on SIGTERM) when the process that started us dies. */
  if (die_with_parent && (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) || getppid() != parent)) raise(SIGTERM);

  A.ep = epoll_create1(EPOLL_CLOEXEC);
  sig_h.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (A.ep < 0 || sig_h.fd < 0) {
    logmsg("epoll/signalfd: %s", strerror(errno));
    return 1;
  }
  ev_set(&sig_h, EPOLLIN);
  A.in = malloc(IN_BUF);
  A.incap = IN_BUF;
  if (!A.in) return 1;
  relay_init();
  if (resume_fd >= 0) {
    /* children that exited meanwhile wait as zombies; pipes and output carry on */
    proc_reap();
    logmsg("upgraded in place (%u so far), version %s", A.upgrades, AGENT_VERSION);
  }

  A.now = now_ms();
  A.next_connect = A.now;
  struct epoll_event evs[64];
  for (;;) {
    int64_t dl = INT64_MAX;
    if (A.conn.fd < 0) dl = A.next_connect;
    if (A.stopping && A.stop_deadline < dl) dl = A.stop_deadline;
    int64_t pd = proc_next_deadline();
    if (pd < dl) dl = pd;
    if (A.again) dl = 0;
    A.again = false;
    int timeout = dl == INT64_MAX ? -1 : dl <= A.now ? 0 : (int)(dl - A.now > 60000 ? 60000 : dl - A.now);

    int n = epoll_wait(A.ep, evs, 64, timeout);
    A.now = now_ms();
    for (int i = 0; i < n; i++) {
      struct evh *h = evs[i].data.ptr;
      uint32_t e = evs[i].events;
      if (h->fd < 0) continue;
      switch (h->kind) {
      case K_SIG:
        on_signals();
        break;
      case K_CONN:
        if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) conn_read();
        if (A.conn.fd >= 0 && (e & EPOLLOUT)) conn_flush();
        break;
      case K_OUT: case K_ERR: case K_IN: case K_ERRP:
        proc_event(h, e);
        break;
      case K_INOTIFY:
        watch_event();
        break;
      case K_RLISTEN: case K_RTCP: case K_RUNIX:
        relay_event(h, e);
        break;
      }
    }
    if (A.detached && A.now >= A.next_connect) {
      A.detached = false;
      relay_pause(false);
    }
    if (A.conn.fd < 0 && !A.detached && A.now >= A.next_connect) conn_try();
    proc_timers();
    if (A.stopping) stop_check();
    proc_pump();
    watch_update();
    if (A.conn.fd >= 0) conn_flush();
    if (A.upgrade_path && !A.sendq.head && !proc_starting()) upgrade_exec();
    if (A.pump_more && A.sendq.bytes < SENDQ_HIGH) A.again = true;
    for (size_t i = 0; i < graves; i++) free(graveyard[i]);
    graves = 0;
  }
}
