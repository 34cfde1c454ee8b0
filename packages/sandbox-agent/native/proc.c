/* Processes: spawn (fork+exec with a CLOEXEC error pipe), output buffering and delivery,
 * stdin, signals, PTYs and reaping. */
#include "agent.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define SP_STDIN 1u
#define SP_PTY 2u
#define SP_UID 4u
#define SP_GID 8u

#define PTY_EXIT_GRACE_MS 100

enum { STG_SETSID = 1, STG_TTY, STG_DUP, STG_GROUPS, STG_GID, STG_UID, STG_CHDIR, STG_EXEC, STG_MAX };
static const char *const stage_name[STG_MAX] = {
  "spawn", "setsid", "ioctl TIOCSCTTY", "dup2", "setgroups", "setgid", "setuid", "chdir", "execve",
};

/* A stdin write waiting for the pipe to drain. */
struct inreq {
  struct inreq *next;
  uint32_t rid, gen, len, off;
  uint8_t d[];
};

struct proc {
  struct proc *next, *prev;
  uint32_t id;
  pid_t pid;
  bool starting;   /* exec not confirmed yet: no reply, no events */
  bool failed;     /* exec failed: reported as the SPAWN error, never listed */
  bool exited;     /* reaped */
  bool pty;
  bool exit_ready; /* output drained after exit; EXIT may follow the buffered output */
  bool exit_sent;
  int status;
  struct evh out, err, in, errp;
  struct fq buf, tmp; /* buffered OUTPUT frames (bytes = payload bytes) */
  size_t dropped;
  uint8_t drop_stream;
  struct inreq *inq, *inq_tail;
  size_t inq_bytes;
  bool in_close;
  uint32_t close_rid, close_gen;
  uint32_t spawn_rid, spawn_gen;
  int64_t exit_deadline;
  char *names; /* "argv0\0cwd\0" for error messages while starting */
  uint32_t taglen;
  uint8_t tag[];
};

static struct proc *find(uint32_t id) { return imap_get(&A.by_id, id); }

static bool conn_gen_ok(uint32_t gen) { return A.conn.fd >= 0 && gen == A.gen; }

/* ---- output buffering ---- */

static void drop_oldest(struct proc *p) {
  struct frame *f = fq_pop(&p->buf);
  size_t n = frame_plen(f);
  p->buf.bytes -= n;
  A.total_buf -= n;
  p->dropped += n;
  p->drop_stream = f->d[5];
  free(f);
}

/* Appends output to the process buffer, coalescing small reads into the last frame. */
static void proc_append(struct proc *p, uint8_t stream, const uint8_t *data, size_t n) {
  struct frame *t = p->buf.tail;
  if (t && t->d[5] == stream && t->cap - t->len >= n && frame_plen(t) + n <= OUT_CHUNK) {
    memcpy(t->d + t->len, data, n);
    t->len += n;
  } else {
    struct frame *f = frame_new(MSG_OUTPUT, stream, p->id, n < 4096 ? 4096 : n);
    memcpy(f->d + f->len, data, n);
    f->len += n;
    fq_push(&p->buf, f);
  }
  p->buf.bytes += n;
  A.total_buf += n;
  if (!delivering()) {
    /* No host to push back on: keep the newest output and count what was dropped. */
    while (p->buf.head && p->buf.head != p->buf.tail &&
           (p->buf.bytes > PROC_BUF_MAX || A.total_buf > TOTAL_BUF_MAX))
      drop_oldest(p);
  }
}

/* Reads one chunk from an output fd. Returns bytes read; closes the fd on EOF or error. */
static ssize_t proc_read(struct proc *p, struct evh *h, uint8_t stream) {
  static uint8_t buf[OUT_CHUNK];
  ssize_t n = read(h->fd, buf, sizeof buf);
  if (n > 0) {
    proc_append(p, stream, buf, n);
    return n;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  /* EOF, or EIO from a PTY master once every slave fd is closed. */
  ev_close(h);
  if (p->pty && p->in.fd >= 0 && h == &p->out && !p->inq) ev_close(&p->in);
  if (p->exited && p->exit_deadline) {
    p->exit_deadline = 0;
    A.pty_waits--;
    p->exit_ready = true;
  }
  return 0;
}

static void drain(struct proc *p, struct evh *h, uint8_t stream) {
  while (h->fd >= 0 && proc_read(p, h, stream) > 0) {}
}

/* Called once the process has exited and its exec was confirmed. */
static void after_exit(struct proc *p) {
  drain(p, &p->out, 1);
  drain(p, &p->err, 2);
  if (p->pty && p->out.fd >= 0) {
    /* The PTY line discipline may still hold output; wait for EIO or a short grace. */
    p->exit_deadline = A.now + PTY_EXIT_GRACE_MS;
    A.pty_waits++;
  } else {
    p->exit_ready = true;
  }
}

static void inq_fail(struct proc *p, int err) {
  struct inreq *q;
  while ((q = p->inq)) {
    p->inq = q->next;
    if (conn_gen_ok(q->gen)) reply_err(q->rid, err, "write stdin", NULL);
    free(q);
  }
  p->inq_tail = NULL;
  p->inq_bytes = 0;
  if (p->in_close) {
    p->in_close = false;
    if (conn_gen_ok(p->close_gen)) reply_empty(p->close_rid);
  }
}

static void proc_free(struct proc *p) {
  ev_close(&p->out);
  ev_close(&p->err);
  ev_close(&p->in);
  ev_close(&p->errp);
  inq_fail(p, EPIPE);
  A.total_buf -= p->buf.bytes;
  fq_free(&p->buf);
  fq_free(&p->tmp);
  if (p->exit_deadline) A.pty_waits--;
  imap_del(&A.by_id, p->id);
  if (!p->exited && imap_get(&A.by_pid, (uint32_t)p->pid) == p) imap_del(&A.by_pid, (uint32_t)p->pid);
  if (A.pump_next == p) A.pump_next = p->next;
  if (p->prev) p->prev->next = p->next;
  else A.procs = p->next;
  if (p->next) p->next->prev = p->prev;
  else A.procs_tail = p->prev;
  free(p->names);
  p->names = NULL;
  defer_free(p);
}

/* ---- spawn ---- */

/* Marks every open fd above 2 close-on-exec where close_range is missing (gVisor): the fds
 * listed in /proc/self/fd, not every number up to the limit (20,000 syscalls). */
static void cloexec_open_fds(void) {
  int d = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0) {
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < max && fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
    return;
  }
  char buf[4096] __attribute__((aligned(8)));
  long n;
  while ((n = syscall(SYS_getdents64, d, buf, sizeof buf)) > 0) {
    for (long off = 0; off < n;) {
      struct dirent64 *e = (struct dirent64 *)(buf + off);
      int fd = atoi(e->d_name); /* "." and ".." give 0 */
      if (fd > 2 && fd != d) fcntl(fd, F_SETFD, FD_CLOEXEC);
      off += e->d_reclen;
    }
  }
  close(d);
}

static void __attribute__((noreturn)) child_fail(int fd, int stage) {
  int32_t v[2] = { stage, errno };
  ssize_t w = write(fd, v, sizeof v);
  (void)w;
  _exit(127);
}

/* execve through the directories of path, like execvpe but with the child's own PATH. */
static void exec_path(char **argv, char **envp, const char *path) {
  if (strchr(argv[0], '/')) {
    execve(argv[0], argv, envp);
    return;
  }
  char buf[PATH_MAX];
  size_t al = strlen(argv[0]);
  bool eacces = false;
  if (al == 0) {
    errno = ENOENT;
    return;
  }
  for (const char *p = path;; ) {
    const char *c = strchrnul(p, ':');
    size_t dl = c - p;
    if (dl + al + 2 <= sizeof buf) {
      if (dl) {
        memcpy(buf, p, dl);
        buf[dl++] = '/';
      }
      memcpy(buf + dl, argv[0], al + 1);
      execve(buf, argv, envp);
      switch (errno) {
      case EACCES: eacces = true; break;
      case ENOENT: case ENOTDIR: case ESTALE: case ENODEV: case ETIMEDOUT: case ELOOP: case ENAMETOOLONG: break;
      default: return;
      }
    }
    if (!*c) break;
    p = c + 1;
  }
  errno = eacces ? EACCES : ENOENT;
}

struct spawn_fds {
  int in, out, err, pty_slave, xw;
};

static void __attribute__((noreturn)) child(const struct spawn_fds *fds, uint32_t fl, uid_t uid, gid_t gid,
                                           const char *cwd, char **argv, char **envp, const char *path) {
  int xw = fds->xw;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  setrlimit(RLIMIT_NOFILE, &A.nofile_orig);
  if (setsid() < 0) child_fail(xw, STG_SETSID);
  if (fds->pty_slave >= 0) {
    if (ioctl(fds->pty_slave, TIOCSCTTY, 0) < 0) child_fail(xw, STG_TTY);
    if (dup2(fds->pty_slave, 0) < 0 || dup2(fds->pty_slave, 1) < 0 || dup2(fds->pty_slave, 2) < 0)
      child_fail(xw, STG_DUP);
  } else if (dup2(fds->in, 0) < 0 || dup2(fds->out, 1) < 0 || dup2(fds->err, 2) < 0) {
    child_fail(xw, STG_DUP);
  }
  if (fl & (SP_UID | SP_GID)) {
    gid_t g = (fl & SP_GID) ? gid : (gid_t)uid;
    if (setgroups(1, &g)) child_fail(xw, STG_GROUPS);
    if (setgid(g)) child_fail(xw, STG_GID);
    if ((fl & SP_UID) && setuid(uid)) child_fail(xw, STG_UID);
  }
  if (chdir(cwd)) child_fail(xw, STG_CHDIR);
  /* Every fd above 2 closes at exec (the error pipe already is CLOEXEC). */
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) cloexec_open_fds();
  exec_path(argv, envp, path);
  child_fail(xw, STG_EXEC);
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void close_fds(int *fds, int n) {
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
}

static void op_spawn(uint32_t rid, struct rd *r) {
  uint32_t fl = rd_u32(r), uid = rd_u32(r), gid = rd_u32(r);
  uint16_t cols = rd_u16(r), rows = rd_u16(r);
  uint32_t cwdlen;
  const uint8_t *cwd = rd_bytes(r, &cwdlen);
  uint32_t argc = rd_u32(r);
  struct rd strs = *r;
  size_t bytes = cwdlen + 1;
  for (uint32_t i = 0; i < argc && !r->bad; i++) {
    uint32_t l;
    const uint8_t *s = rd_bytes(r, &l);
    if (s && memchr(s, 0, l)) r->bad = true;
    bytes += l + 1;
  }
  uint32_t envc = rd_u32(r);
  for (uint32_t i = 0; i < envc && !r->bad; i++) {
    uint32_t l;
    const uint8_t *s = rd_bytes(r, &l);
    if (s && memchr(s, 0, l)) r->bad = true;
    bytes += l + 1;
  }
  uint32_t taglen;
  const uint8_t *tag = rd_bytes(r, &taglen);
  if (r->bad || !tag || argc == 0 || !cwd || cwdlen == 0 || cwd[0] != '/' || memchr(cwd, 0, cwdlen) ||
      taglen > TAG_MAX) {
    reply_err(rid, EINVAL, "spawn: malformed request", NULL);
    return;
  }

  /* One block: argv pointers, envp pointers, then the NUL-terminated strings. */
  size_t nptr = (size_t)argc + 1 + envc + 1;
  char **block = malloc(nptr * sizeof(char *) + bytes);
  if (!block) {
    reply_err(rid, ENOMEM, "spawn", NULL);
    return;
  }
  char **argv = block, **envp = block + argc + 1, *sp = (char *)(block + nptr);
  char *cwdz = sp;
  memcpy(sp, cwd, cwdlen);
  sp[cwdlen] = 0;
  sp += cwdlen + 1;
  const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (uint32_t i = 0; i < argc; i++) {
    uint32_t l;
    const uint8_t *s = rd_bytes(&strs, &l);
    memcpy(sp, s, l);
    sp[l] = 0;
    argv[i] = sp;
    sp += l + 1;
  }
  rd_u32(&strs); /* envc */
  for (uint32_t i = 0; i < envc; i++) {
    uint32_t l;
    const uint8_t *s = rd_bytes(&strs, &l);
    memcpy(sp, s, l);
    sp[l] = 0;
    envp[i] = sp;
    if (!strncmp(sp, "PATH=", 5)) path = sp + 5;
    sp += l + 1;
  }
  argv[argc] = NULL;
  envp[envc] = NULL;

  int xp[2] = { -1, -1 }, op[2] = { -1, -1 }, ep[2] = { -1, -1 }, ip[2] = { -1, -1 };
  int master = -1, slave = -1, nullfd = -1, pty_in = -1;
  const char *what = "pipe";
  int err = 0;
  if (pipe2(xp, O_CLOEXEC)) goto fail;
  if (fl & SP_PTY) {
    struct winsize ws = { .ws_row = rows ? rows : 24, .ws_col = cols ? cols : 80 };
    what = "openpty";
    if (openpty(&master, &slave, NULL, NULL, &ws)) goto fail;
    fcntl(master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
    set_nonblock(master);
    what = "dup";
    if ((pty_in = fcntl(master, F_DUPFD_CLOEXEC, 3)) < 0) goto fail;
  } else {
    if (pipe2(op, O_CLOEXEC) || pipe2(ep, O_CLOEXEC)) goto fail;
    if (fl & SP_STDIN) {
      if (pipe2(ip, O_CLOEXEC)) goto fail;
      set_nonblock(ip[1]);
    } else if ((nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
      /* No /dev/null in this root: an empty pipe reads as EOF just the same. */
      int t[2];
      if (pipe2(t, O_CLOEXEC)) goto fail;
      close(t[1]);
      nullfd = t[0];
    }
    set_nonblock(op[0]);
    set_nonblock(ep[0]);
  }
  set_nonblock(xp[0]);

  struct proc *p = calloc(1, sizeof *p + taglen);
  if (!p) {
    errno = ENOMEM;
    what = "spawn";
    goto fail;
  }
  size_t a0 = strlen(argv[0]);
  p->names = malloc(a0 + cwdlen + 2);
  if (p->names) {
    memcpy(p->names, argv[0], a0 + 1);
    memcpy(p->names + a0 + 1, cwdz, cwdlen + 1);
  }

  struct spawn_fds fds = { ip[0] >= 0 ? ip[0] : nullfd, op[1], ep[1], slave, xp[1] };
  pid_t pid = fork();
  if (pid < 0) {
    free(p->names);
    free(p);
    what = "fork";
    goto fail;
  }
  if (pid == 0) child(&fds, fl, uid, gid, cwdz, argv, envp, path);

  int child_ends[] = { xp[1], op[1], ep[1], ip[0], slave, nullfd };
  close_fds(child_ends, 6);
  free(block);

  p->id = ++A.next_proc_id;
  if (!p->id) p->id = ++A.next_proc_id;
  p->pid = pid;
  p->starting = true;
  p->pty = master >= 0;
  p->out = (struct evh){ master >= 0 ? master : op[0], K_OUT, 0, p };
  p->err = (struct evh){ ep[0], K_ERR, 0, p };
  p->in = (struct evh){ master >= 0 ? pty_in : ip[1], K_IN, 0, p };
  p->errp = (struct evh){ xp[0], K_ERRP, 0, p };
  p->spawn_rid = rid;
  p->spawn_gen = A.gen;
  p->taglen = taglen;
  memcpy(p->tag, tag, taglen);
  p->prev = A.procs_tail;
  if (A.procs_tail) A.procs_tail->next = p;
  else A.procs = p;
  A.procs_tail = p;
  imap_put(&A.by_id, p->id, p);
  imap_put(&A.by_pid, (uint32_t)pid, p);
  ev_set(&p->out, EPOLLIN);
  ev_set(&p->err, EPOLLIN);
  ev_set(&p->errp, EPOLLIN);
  return;

fail:
  err = errno;
  {
    int all[] = { xp[0], xp[1], op[0], op[1], ep[0], ep[1], ip[0], ip[1], master, slave, nullfd, pty_in };
    close_fds(all, 12);
  }
  free(block);
  reply_err(rid, err, what, NULL);
}

/* The error pipe reports exec success (EOF) or the failing stage and errno. */
static void on_errpipe(struct proc *p) {
  int32_t v[2];
  ssize_t n = read(p->errp.fd, v, sizeof v);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  ev_close(&p->errp);
  const char *argv0 = p->names ? p->names : "", *cwd = p->names ? p->names + strlen(p->names) + 1 : "";
  if (n != 0) {
    int stage = n == sizeof v && v[0] > 0 && v[0] < STG_MAX ? v[0] : 0;
    int err = n == sizeof v ? v[1] : EIO;
    p->failed = true;
    if (conn_gen_ok(p->spawn_gen))
      reply_err(p->spawn_rid, err, stage_name[stage], stage == STG_CHDIR ? cwd : argv0);
    ev_close(&p->out);
    ev_close(&p->err);
    ev_close(&p->in);
    if (p->exited) proc_free(p);
    return;
  }
  free(p->names);
  p->names = NULL;
  p->starting = false;
  if (conn_gen_ok(p->spawn_gen)) {
    struct frame *f = frame_new(MSG_OK, 0, p->spawn_rid, 8);
    fput_u32(&f, p->id);
    fput_u32(&f, (uint32_t)p->pid);
    send_frame(f);
  }
  if (p->exited) after_exit(p);
}

/* Reaps every exited child: ours get their status recorded, orphans are just collected. */
void proc_reap(void) {
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) {
      A.no_children = pid < 0 && errno == ECHILD;
      return;
    }
    struct proc *p = imap_del(&A.by_pid, (uint32_t)pid);
    if (!p) continue;
    p->exited = true;
    p->status = st;
    if (p->failed) proc_free(p);
    else if (!p->starting) after_exit(p);
  }
}

/* ---- stdin ---- */

static void close_stdin_now(struct proc *p) {
  if (p->pty && p->in.fd >= 0) {
    /* A PTY has no stdin EOF: send the EOF character (^D) instead. */
    ssize_t w = write(p->in.fd, "\x04", 1);
    (void)w;
  }
  ev_close(&p->in);
}

static void in_flush(struct proc *p) {
  while (p->inq) {
    struct inreq *q = p->inq;
    ssize_t w = write(p->in.fd, q->d + q->off, q->len - q->off);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      int e = errno;
      ev_close(&p->in);
      inq_fail(p, e);
      return;
    }
    q->off += w;
    if (q->off < q->len) continue;
    p->inq = q->next;
    if (!p->inq) p->inq_tail = NULL;
    p->inq_bytes -= q->len;
    if (conn_gen_ok(q->gen)) reply_empty(q->rid);
    free(q);
  }
  if (p->in_close) {
    p->in_close = false;
    close_stdin_now(p);
    if (conn_gen_ok(p->close_gen)) reply_empty(p->close_rid);
  }
}

static void op_stdin(uint32_t rid, struct rd *r) {
  struct proc *p = find(rd_u32(r));
  size_t n = r->e - r->p;
  const uint8_t *data = r->p;
  if (r->bad) return reply_err(rid, EINVAL, "write stdin", NULL);
  if (!p) return reply_err(rid, ESRCH, "write stdin: no such process", NULL);
  if (p->in.fd < 0 || p->in_close) return reply_err(rid, EPIPE, "write stdin: stdin is closed", NULL);
  size_t off = 0;
  if (!p->inq) {
    while (off < n) {
      ssize_t w = write(p->in.fd, data + off, n - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        int e = errno;
        ev_close(&p->in);
        return reply_err(rid, e, "write stdin", NULL);
      }
      off += w;
    }
    if (off == n) return reply_empty(rid);
  }
  if (p->inq_bytes + (n - off) > STDIN_MAX) return reply_err(rid, ENOBUFS, "write stdin: too much pending", NULL);
  struct inreq *q = malloc(sizeof *q + (n - off));
  if (!q) return reply_err(rid, ENOMEM, "write stdin", NULL);
  q->next = NULL;
  q->rid = rid;
  q->gen = A.gen;
  q->len = n - off;
  q->off = 0;
  memcpy(q->d, data + off, n - off);
  if (p->inq_tail) p->inq_tail->next = q;
  else p->inq = q;
  p->inq_tail = q;
  p->inq_bytes += q->len;
}

/* ---- requests ---- */

void proc_op(uint8_t type, uint32_t rid, struct rd *r) {
  if (type == OP_SPAWN) return op_spawn(rid, r);
  if (type == OP_STDIN) return op_stdin(rid, r);
  uint32_t id = rd_u32(r);
  struct proc *p = find(id);
  if (r->bad) return reply_err(rid, EINVAL, "malformed request", NULL);
  if (!p || p->failed) return reply_err(rid, ESRCH, "no such process", NULL);
  switch (type) {
  case OP_SIGNAL: {
    uint32_t sig = rd_u32(r);
    uint8_t group = rd_u8(r);
    if (r->bad || sig > 64) return reply_err(rid, EINVAL, "signal", NULL);
    int rc;
    if (group) {
      rc = kill(-p->pid, (int)sig);
      /* Right after fork the child may not have called setsid yet. */
      if (rc && errno == ESRCH && !p->exited) rc = kill(p->pid, (int)sig);
    } else {
      if (p->exited) return reply_err(rid, ESRCH, "kill: process has exited", NULL);
      rc = kill(p->pid, (int)sig);
    }
    if (rc) return reply_err(rid, errno, "kill", NULL);
    return reply_empty(rid);
  }
  case OP_CLOSE_STDIN:
    if (p->in.fd < 0 || p->in_close) return reply_empty(rid);
    if (p->inq) {
      p->in_close = true;
      p->close_rid = rid;
      p->close_gen = A.gen;
      return;
    }
    close_stdin_now(p);
    return reply_empty(rid);
  case OP_RESIZE: {
    uint16_t cols = rd_u16(r), rows = rd_u16(r);
    if (r->bad || !cols || !rows) return reply_err(rid, EINVAL, "resize", NULL);
    if (!p->pty) return reply_err(rid, ENOTTY, "resize: process has no terminal", NULL);
    int fd = p->out.fd >= 0 ? p->out.fd : p->in.fd;
    if (fd < 0) return reply_err(rid, EBADF, "resize: terminal is closed", NULL);
    struct winsize ws = { .ws_row = rows, .ws_col = cols };
    if (ioctl(fd, TIOCSWINSZ, &ws)) return reply_err(rid, errno, "ioctl TIOCSWINSZ", NULL);
    return reply_empty(rid);
  }
  case OP_RELEASE:
    if (!p->exited || p->starting) return reply_err(rid, EBUSY, "release: process is running", NULL);
    proc_free(p);
    return reply_empty(rid);
  }
}

/* LIST: every process the agent holds (reply split with FL_MORE when large). */
void proc_list(uint32_t rid) {
  struct frame *f = frame_new(MSG_OK, 0, rid, 256);
  for (struct proc *p = A.procs; p; p = p->next) {
    if (p->starting || p->failed) continue;
    if (frame_plen(f) > CHUNK_SPLIT) {
      f->d[5] = FL_MORE;
      send_frame(f);
      f = frame_new(MSG_OK, 0, rid, 256);
    }
    int code = -1, sig = 0;
    if (p->exited) {
      if (WIFEXITED(p->status)) code = WEXITSTATUS(p->status);
      else if (WIFSIGNALED(p->status)) sig = WTERMSIG(p->status);
    }
    fput_u32(&f, p->id);
    fput_u32(&f, (uint32_t)p->pid);
    fput_u8(&f, p->exited ? 0 : 1);
    fput_u32(&f, (uint32_t)code);
    fput_u32(&f, (uint32_t)sig);
    fput_str(&f, p->tag, p->taglen);
  }
  send_frame(f);
}

void proc_event(struct evh *h, uint32_t events) {
  struct proc *p = h->obj;
  switch (h->kind) {
  case K_OUT:
    proc_read(p, h, 1);
    break;
  case K_ERR:
    proc_read(p, h, 2);
    break;
  case K_ERRP:
    on_errpipe(p);
    break;
  case K_IN:
    if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLOUT)) {
      ev_close(&p->in);
      inq_fail(p, EPIPE);
    } else {
      in_flush(p);
    }
    break;
  }
}

/* ---- delivery ---- */

static void send_exit(struct proc *p) {
  struct frame *f = frame_new(MSG_EXIT, 0, p->id, 8);
  int code = -1, sig = 0;
  if (WIFEXITED(p->status)) code = WEXITSTATUS(p->status);
  else if (WIFSIGNALED(p->status)) sig = WTERMSIG(p->status);
  fput_u32(&f, (uint32_t)code);
  fput_u32(&f, (uint32_t)sig);
  send_frame(f);
  p->exit_sent = true;
}

/* Moves buffered output into the send queue (round-robin, bounded), then EXIT after the last
 * output of an exited process; then decides which output fds to read. */
void proc_pump(void) {
  A.pump_more = false;
  bool dl = delivering();
  if (dl && A.procs) {
    struct proc *start = A.pump_next ? A.pump_next : A.procs, *p = start;
    do {
      if (!p->starting && !p->failed) {
        while (p->buf.head && A.sendq.bytes < SENDQ_HIGH) {
          if (p->dropped) {
            char m[96];
            int n = snprintf(m, sizeof m, "\n[hangar-agent: %zu bytes of output dropped]\n", p->dropped);
            struct frame *mk = frame_new(MSG_OUTPUT, p->pty ? 1 : p->drop_stream, p->id, n);
            fput(&mk, m, n);
            send_frame(mk);
            p->dropped = 0;
          }
          struct frame *f = fq_pop(&p->buf);
          p->buf.bytes -= frame_plen(f);
          A.total_buf -= frame_plen(f);
          send_frame(f);
        }
        if (p->buf.head) {
          A.pump_more = true;
          A.pump_next = p;
          break;
        }
        if (p->exit_ready && !p->exit_sent) send_exit(p);
      }
      p = p->next ? p->next : A.procs;
    } while (p != start);
  }
  for (struct proc *p = A.procs; p; p = p->next) {
    bool full = dl && (p->buf.bytes >= PROC_BUF_MAX || (A.total_buf >= TOTAL_BUF_MAX && p->buf.bytes));
    uint32_t rd = full ? 0 : EPOLLIN;
    ev_set(&p->out, rd);
    ev_set(&p->err, rd);
    ev_set(&p->in, p->inq ? EPOLLOUT : 0);
  }
}

/* Puts OUTPUT frames that never left the send queue back in front of their process's buffer,
 * and marks EXITs as unsent, so nothing is lost when the connection drops. */
void proc_requeue(struct fq *q) {
  struct frame *f;
  while ((f = fq_pop(q))) {
    uint8_t t = f->d[4];
    struct proc *p = (t == MSG_OUTPUT || t == MSG_EXIT) ? find(get32(f->d + 8)) : NULL;
    if (p && t == MSG_OUTPUT) {
      f->off = 0;
      fq_push(&p->tmp, f);
      p->buf.bytes += frame_plen(f);
      A.total_buf += frame_plen(f);
      continue;
    }
    if (p) p->exit_sent = false;
    free(f);
  }
  q->bytes = 0;
  for (struct proc *p = A.procs; p; p = p->next) {
    if (!p->tmp.head) continue;
    p->tmp.tail->next = p->buf.head;
    if (!p->buf.tail) p->buf.tail = p->tmp.tail;
    p->buf.head = p->tmp.head;
    p->tmp.head = p->tmp.tail = NULL;
  }
}

void proc_timers(void) {
  if (!A.pty_waits) return;
  for (struct proc *p = A.procs; p; p = p->next) {
    if (p->exit_deadline && A.now >= p->exit_deadline) {
      p->exit_deadline = 0;
      A.pty_waits--;
      drain(p, &p->out, 1);
      p->exit_ready = true;
    }
  }
}

int64_t proc_next_deadline(void) {
  int64_t d = INT64_MAX;
  if (!A.pty_waits) return d;
  for (struct proc *p = A.procs; p; p = p->next)
    if (p->exit_deadline && p->exit_deadline < d) d = p->exit_deadline;
  return d;
}

/* Signals the process group (or the process) of every running process. */
void proc_signal_all(int sig) {
  for (struct proc *p = A.procs; p; p = p->next) {
    if (p->exited) continue;
    if (kill(-p->pid, sig) && errno == ESRCH) kill(p->pid, sig);
  }
}

/* ---- upgrade handover (see upgrade.c) ---- */

/* True while a spawn awaits its exec result (the upgrade waits for it). */
bool proc_starting(void) {
  for (struct proc *p = A.procs; p; p = p->next)
    if (p->starting) return true;
  return false;
}

static void keep_fd(struct frame **f, int fd, bool keep) {
  fput_u32(f, (uint32_t)fd);
  if (fd >= 0) fcntl(fd, F_SETFD, keep ? 0 : FD_CLOEXEC);
}

/* Writes the process table, buffered output and pending stdin for the next binary, and makes
 * the process fds survive its exec (keep) — or close-on-exec again (after a failed exec). */
void proc_save(struct frame **f, bool keep) {
  uint32_t n = 0;
  for (struct proc *p = A.procs; p; p = p->next) n++;
  fput_u32(f, A.next_proc_id);
  fput_u32(f, n);
  for (struct proc *p = A.procs; p; p = p->next) {
    fput_u32(f, p->id);
    fput_u32(f, (uint32_t)p->pid);
    fput_u8(f, (p->exited ? 1 : 0) | (p->pty ? 2 : 0) | (p->exit_ready ? 4 : 0) | (p->exit_sent ? 8 : 0) |
                   (p->in_close ? 16 : 0) | (p->exit_deadline ? 32 : 0) | (p->failed ? 64 : 0));
    fput_u32(f, (uint32_t)p->status);
    keep_fd(f, p->out.fd, keep);
    keep_fd(f, p->err.fd, keep);
    keep_fd(f, p->in.fd, keep);
    fput_u64(f, p->dropped);
    fput_u8(f, p->drop_stream);
    uint32_t nf = 0;
    for (struct frame *b = p->buf.head; b; b = b->next) nf++;
    fput_u32(f, nf);
    for (struct frame *b = p->buf.head; b; b = b->next) {
      fput_u8(f, b->d[5]);
      fput_str(f, b->d + HDR, frame_plen(b));
    }
    uint32_t nq = 0;
    for (struct inreq *q = p->inq; q; q = q->next) nq++;
    fput_u32(f, nq);
    for (struct inreq *q = p->inq; q; q = q->next) fput_str(f, q->d + q->off, q->len - q->off);
    fput_str(f, p->tag, p->taglen);
  }
}

/* Rebuilds the process table written by proc_save (in the new binary). */
int proc_load(struct rd *r) {
  A.next_proc_id = rd_u32(r);
  uint32_t n = rd_u32(r);
  for (uint32_t i = 0; i < n && !r->bad; i++) {
    uint32_t id = rd_u32(r), pid = rd_u32(r);
    uint8_t fl = rd_u8(r);
    uint32_t status = rd_u32(r);
    int out = (int)rd_u32(r), err = (int)rd_u32(r), in = (int)rd_u32(r);
    uint64_t dropped = rd_u64(r);
    uint8_t drop_stream = rd_u8(r);
    struct proc tmp = { 0 };
    uint32_t nf = rd_u32(r);
    for (uint32_t j = 0; j < nf && !r->bad; j++) {
      uint8_t stream = rd_u8(r);
      uint32_t len;
      const uint8_t *d = rd_bytes(r, &len);
      if (!d || len > OUT_CHUNK) return -1;
      struct frame *b = frame_new(MSG_OUTPUT, stream, id, len);
      fput(&b, d, len);
      fq_push(&tmp.buf, b);
      tmp.buf.bytes += len;
    }
    uint32_t nq = rd_u32(r);
    for (uint32_t j = 0; j < nq && !r->bad; j++) {
      uint32_t len;
      const uint8_t *d = rd_bytes(r, &len);
      struct inreq *q = d ? malloc(sizeof *q + len) : NULL;
      if (!q) return -1;
      /* no request waits for these bytes any more (gen 0 never matches a connection) */
      *q = (struct inreq){ .len = len };
      memcpy(q->d, d, len);
      if (tmp.inq_tail) tmp.inq_tail->next = q;
      else tmp.inq = q;
      tmp.inq_tail = q;
      tmp.inq_bytes += len;
    }
    uint32_t taglen;
    const uint8_t *tag = rd_bytes(r, &taglen);
    if (r->bad || !tag || taglen > TAG_MAX) return -1;
    struct proc *p = calloc(1, sizeof *p + taglen);
    if (!p) return -1;
    *p = tmp;
    p->id = id;
    p->pid = (pid_t)pid;
    p->exited = fl & 1;
    p->pty = fl & 2;
    p->exit_ready = fl & 4;
    p->exit_sent = fl & 8;
    p->in_close = fl & 16;
    p->failed = fl & 64;
    p->status = (int)status;
    p->dropped = dropped;
    p->drop_stream = drop_stream;
    p->out = (struct evh){ out, K_OUT, 0, p };
    p->err = (struct evh){ err, K_ERR, 0, p };
    p->in = (struct evh){ in, K_IN, 0, p };
    p->errp = (struct evh){ -1, K_ERRP, 0, p };
    int fds[] = { out, err, in };
    for (int k = 0; k < 3; k++)
      if (fds[k] >= 0) fcntl(fds[k], F_SETFD, FD_CLOEXEC);
    if (fl & 32) {
      p->exit_deadline = now_ms() + PTY_EXIT_GRACE_MS;
      A.pty_waits++;
    }
    p->taglen = taglen;
    memcpy(p->tag, tag, taglen);
    A.total_buf += p->buf.bytes;
    p->prev = A.procs_tail;
    if (A.procs_tail) A.procs_tail->next = p;
    else A.procs = p;
    A.procs_tail = p;
    imap_put(&A.by_id, p->id, p);
    if (!p->exited) imap_put(&A.by_pid, (uint32_t)p->pid, p);
  }
  return r->bad ? -1 : 0;
}
