/* hangar-agent: the in-sandbox init and agent. Shared declarations. See ../PROTOCOL.md. */
#ifndef HANGAR_AGENT_H
#define HANGAR_AGENT_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hangar-agent writes little-endian frames with memcpy and needs a little-endian CPU"
#endif

#define PROTO_VERSION 1
#define AGENT_VERSION "0.1.0"

#define HDR 12                      /* u32 payload length, u8 type, u8 flags, u16 zero, u32 id */
#define MAX_PAYLOAD (8u << 20)      /* largest frame payload either side accepts */
#define OUT_CHUNK 65536u            /* largest OUTPUT payload */
#define PROC_BUF_MAX (1u << 20)     /* output buffered per process */
#define TOTAL_BUF_MAX (64u << 20)   /* output buffered for all processes together */
#define SENDQ_HIGH (1u << 20)       /* above this, output and watch events wait */
#define SENDQ_STOP_READ (16u << 20) /* above this, requests are not read */
#define READ_MAX (4u << 20)         /* largest READ reply */
#define STDIN_MAX (16u << 20)       /* stdin bytes queued per process */
#define CHUNK_SPLIT (1u << 20)      /* READDIR/LIST replies are split near this size */
#define TAG_MAX 65536u              /* largest process tag */

/* Frame types: requests (host -> agent) and messages (agent -> host). */
enum {
  OP_PING = 0x01, OP_INFO = 0x02, OP_LIST = 0x03, OP_SPAWN = 0x04, OP_SIGNAL = 0x05,
  OP_STDIN = 0x06, OP_CLOSE_STDIN = 0x07, OP_RESIZE = 0x08, OP_RELEASE = 0x09,
  OP_STAT = 0x10, OP_READDIR = 0x11, OP_READ = 0x12, OP_WRITE_FILE = 0x13, OP_OPEN = 0x14,
  OP_WRITE = 0x15, OP_CLOSE = 0x16, OP_MKDIR = 0x17, OP_REMOVE = 0x18, OP_RENAME = 0x19,
  OP_CHMOD = 0x1a, OP_REALPATH = 0x1b,
  OP_WATCH = 0x20, OP_UNWATCH = 0x21,
  OP_DETACH = 0x30, OP_UPGRADE = 0x31,
  MSG_HELLO = 0x40, MSG_OK = 0x41, MSG_ERR = 0x42,
  MSG_OUTPUT = 0x50, MSG_EXIT = 0x51, MSG_WATCH = 0x52,
};
#define FL_MORE 0x01 /* on MSG_OK: more parts of this reply follow */

/* One registered epoll fd; data.ptr of its epoll_event points here. */
enum { K_SIG = 1, K_CONN, K_OUT, K_ERR, K_IN, K_ERRP, K_INOTIFY, K_RLISTEN, K_RTCP, K_RUNIX };
struct evh {
  int fd;
  uint8_t kind;
  uint32_t cur; /* events currently registered; 0 = not in epoll */
  void *obj;
};

/* A frame being built or queued. d holds header + payload; len bytes used, off bytes sent. */
struct frame {
  struct frame *next;
  uint32_t len, cap, off;
  uint8_t d[];
};
struct fq {
  struct frame *head, *tail;
  size_t bytes;
};

/* uint32 -> pointer hash map (key 0 is reserved). */
struct imap {
  uint32_t cap, n;
  struct ient { uint32_t k; void *v; } *t;
};

/* Bounds-checked reader over a request payload; bad is set on overrun. */
struct rd {
  const uint8_t *p, *e;
  bool bad;
};

struct proc;

struct agent {
  int ep;
  int64_t now;
  bool pid1;
  /* host connection */
  const char *sock_path;
  struct evh conn;
  uint32_t gen;     /* bumped on every new connection; async replies check it */
  bool paused;      /* no events until the host's first LIST on this connection */
  bool closing;     /* DETACH: close once the send queue is flushed */
  bool detached;    /* quiet until SIGUSR1 or next_connect */
  uint32_t detach_ms;
  int64_t next_connect;
  int backoff;
  bool again;       /* run the loop again without sleeping */
  uint8_t *in;
  size_t inlen, incap;
  struct fq sendq;  /* bytes = unsent bytes */
  char token[256];
  uint64_t instance;
  /* processes */
  struct proc *procs, *procs_tail, *pump_next;
  struct imap by_id, by_pid;
  uint32_t next_proc_id;
  size_t total_buf;
  int pty_waits;
  bool pump_more;
  struct rlimit nofile_orig;
  /* file handles */
  struct imap handles;
  uint32_t next_handle;
  /* shutdown */
  bool stopping, no_children;
  int64_t stop_deadline;
  int stop_ms;
  /* relay */
  int api_port;
  const char *api_sock;
  /* upgrade: the binary to exec once the UPGRADE reply is flushed; how often this agent was replaced */
  char *upgrade_path;
  uint32_t upgrades;
};
extern struct agent A;

/* main.c */
int64_t now_ms(void);
void ev_set(struct evh *h, uint32_t events);
void ev_close(struct evh *h);
bool delivering(void);
void send_frame(struct frame *f);
void reply_empty(uint32_t id);
void reply_err(uint32_t id, int err, const char *what, const char *arg);
void defer_free(void *p);
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* frame.c */
struct frame *frame_new(uint8_t type, uint8_t flags, uint32_t id, size_t cap);
void frame_reserve(struct frame **f, size_t n);
void fput(struct frame **f, const void *p, size_t n);
void fput_u8(struct frame **f, uint8_t v);
void fput_u16(struct frame **f, uint16_t v);
void fput_u32(struct frame **f, uint32_t v);
void fput_u64(struct frame **f, uint64_t v);
void fput_str(struct frame **f, const void *s, size_t n);
void fput_cstr(struct frame **f, const char *s);
static inline uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline void set32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline uint32_t frame_plen(const struct frame *f) { return f->len - HDR; }
void fq_push(struct fq *q, struct frame *f);
struct frame *fq_pop(struct fq *q);
void fq_free(struct fq *q);
void *imap_get(const struct imap *m, uint32_t k);
int imap_put(struct imap *m, uint32_t k, void *v);
void *imap_del(struct imap *m, uint32_t k);
uint8_t rd_u8(struct rd *r);
uint16_t rd_u16(struct rd *r);
uint32_t rd_u32(struct rd *r);
uint64_t rd_u64(struct rd *r);
const uint8_t *rd_bytes(struct rd *r, uint32_t *len);
int rd_path(struct rd *r, char *out);

/* proc.c */
void proc_op(uint8_t type, uint32_t id, struct rd *r);
void proc_list(uint32_t id);
void proc_event(struct evh *h, uint32_t events);
void proc_reap(void);
void proc_pump(void);
void proc_requeue(struct fq *q);
void proc_timers(void);
int64_t proc_next_deadline(void);
void proc_signal_all(int sig);
bool proc_starting(void);
void proc_save(struct frame **f, bool keep);
int proc_load(struct rd *r);

/* fs.c */
void fs_op(uint8_t type, uint32_t id, struct rd *r);
void fs_close_handles(void);

/* watch.c */
void watch_op(uint8_t type, uint32_t id, struct rd *r);
void watch_event(void);
void watch_update(void);
void watch_suspend(void);
void watch_resume(void);
void watch_save(struct frame **f);
int watch_load(struct rd *r);

/* relay.c */
void relay_init(void);
void relay_event(struct evh *h, uint32_t events);
void relay_pause(bool paused);

#endif
