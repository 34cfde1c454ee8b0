/* File watches on inotify. A watch covers a file, a directory, or (recursive) a directory tree
 * whose new subdirectories are added as they appear. Several watches may share a kernel watch. */
#include "agent.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

enum { W_CREATE = 1, W_WRITE = 2, W_REMOVE = 3, W_RENAME = 4, W_CHMOD = 5 };

#define WMASK (IN_CREATE | IN_DELETE | IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | \
               IN_DELETE_SELF | IN_MOVE_SELF | IN_EXCL_UNLINK)
#define MAX_DEPTH 1024

struct watch {
  uint32_t id;
  bool recursive, is_file;
  char *root;        /* path as given */
  char *dir;         /* file watches: directory of the file */
  const char *fname; /* file watches: name of the file (points into root) */
};

/* One kernel watch (one wd) and the watches it serves. */
struct wnode {
  int wd;
  char *path;
  struct watch **ws;
  uint32_t nws, capws;
  struct wnode *next, *prev;
};

static struct evh ih = { .fd = -1, .kind = K_INOTIFY };
static struct imap wds, watches;
static struct wnode *nodes;
static uint32_t next_wid;
static bool last_valid;
static uint32_t last_wid;
static char last_path[PATH_MAX], last_name[NAME_MAX + 1];

/* dir + "/" + name, or NULL when too long. */
static char *join(const char *dir, const char *name) {
  size_t dl = strlen(dir), nl = strlen(name);
  if (dl == 1) dl = 0; /* "/" */
  if (dl + nl + 2 > PATH_MAX) return NULL;
  char *s = malloc(dl + nl + 2);
  if (!s) return NULL;
  memcpy(s, dir, dl);
  s[dl] = '/';
  memcpy(s + dl + 1, name, nl + 1);
  return s;
}

static void emit(struct watch *w, uint8_t op, const char *path, const char *name) {
  if (!delivering()) return;
  /* A burst of writes to one file yields one WRITE per read batch. */
  if (op == W_WRITE) {
    if (last_valid && last_wid == w->id && !strcmp(last_path, path) && !strcmp(last_name, name)) return;
    last_valid = true;
    last_wid = w->id;
    strncpy(last_path, path, sizeof last_path - 1);
    strncpy(last_name, name, sizeof last_name - 1);
  } else {
    last_valid = false;
  }
  size_t pl = strlen(path), nl = strlen(name);
  struct frame *f = frame_new(MSG_WATCH, op, w->id, pl + nl + 8);
  fput_str(&f, path, pl);
  fput_str(&f, name, nl);
  send_frame(f);
}

static int add_node(struct watch *w, const char *path, bool follow) {
  uint32_t mask = WMASK | (w->is_file ? 0 : IN_ONLYDIR) | (follow ? 0 : IN_DONT_FOLLOW);
  int wd = inotify_add_watch(ih.fd, path, mask);
  if (wd < 0) return errno;
  struct wnode *n = imap_get(&wds, (uint32_t)wd);
  if (!n) {
    n = calloc(1, sizeof *n);
    if (!n || !(n->path = strdup(path)) || imap_put(&wds, (uint32_t)wd, n)) {
      if (n) free(n->path);
      free(n);
      inotify_rm_watch(ih.fd, wd);
      return ENOMEM;
    }
    n->wd = wd;
    n->next = nodes;
    if (nodes) nodes->prev = n;
    nodes = n;
  }
  for (uint32_t i = 0; i < n->nws; i++)
    if (n->ws[i] == w) return 0;
  if (n->nws == n->capws) {
    uint32_t c = n->capws ? n->capws * 2 : 2;
    struct watch **ws = realloc(n->ws, c * sizeof *ws);
    if (!ws) return ENOMEM;
    n->ws = ws;
    n->capws = c;
  }
  n->ws[n->nws++] = w;
  return 0;
}

static void node_free(struct wnode *n) {
  imap_del(&wds, (uint32_t)n->wd);
  if (n->prev) n->prev->next = n->next;
  else nodes = n->next;
  if (n->next) n->next->prev = n->prev;
  free(n->path);
  free(n->ws);
  free(n);
}

static void node_remove_watch(struct wnode *n, struct watch *w) {
  for (uint32_t i = 0; i < n->nws; i++) {
    if (n->ws[i] != w) continue;
    n->ws[i] = n->ws[--n->nws];
    break;
  }
  if (n->nws) return;
  inotify_rm_watch(ih.fd, n->wd);
  node_free(n);
}

/* Adds watches for every subdirectory of dir (not following symlinks). With synth, also
 * reports CREATE for entries found: they may have appeared before the watch did. */
static void add_tree(struct watch *w, const char *dir, bool synth, int depth) {
  if (depth > MAX_DEPTH) return;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return;
  }
  char **subs = NULL;
  size_t ns = 0, cs = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (synth) emit(w, W_CREATE, dir, e->d_name);
    bool isdir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      isdir = !fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) && S_ISDIR(st.st_mode);
    }
    if (!isdir) continue;
    char *c = join(dir, e->d_name);
    if (!c) continue;
    if (ns == cs) {
      cs = cs ? cs * 2 : 8;
      char **s = realloc(subs, cs * sizeof *s);
      if (!s) {
        free(c);
        break;
      }
      subs = s;
    }
    subs[ns++] = c;
  }
  closedir(d);
  for (size_t i = 0; i < ns; i++) {
    if (!add_node(w, subs[i], false)) add_tree(w, subs[i], synth, depth + 1);
    free(subs[i]);
  }
  free(subs);
}

/* Drops w from the kernel watches of prefix and everything below it. */
static void remove_subtree(struct watch *w, const char *prefix) {
  size_t pl = strlen(prefix);
  for (struct wnode *n = nodes, *nx; n; n = nx) {
    nx = n->next;
    if (!strncmp(n->path, prefix, pl) && (n->path[pl] == 0 || n->path[pl] == '/')) node_remove_watch(n, w);
  }
}

static void root_event(struct watch *w, uint8_t op) {
  char *slash = strrchr(w->root, '/');
  if (!slash) return;
  if (slash == w->root) emit(w, op, "/", w->root + 1);
  else {
    *slash = 0;
    emit(w, op, w->root, slash + 1);
    *slash = '/';
  }
}

static void handle(const struct inotify_event *ev) {
  if (ev->mask & IN_Q_OVERFLOW) {
    logmsg("inotify queue overflow: watch events were lost");
    return;
  }
  struct wnode *n = imap_get(&wds, (uint32_t)ev->wd);
  if (!n) return;
  if (ev->mask & IN_IGNORED) {
    node_free(n);
    return;
  }
  uint32_t m = ev->mask;
  const char *name = ev->len ? ev->name : "";
  bool isdir = m & IN_ISDIR;
  char dir[PATH_MAX];
  strncpy(dir, n->path, sizeof dir - 1);
  dir[sizeof dir - 1] = 0;
  uint32_t cnt = n->nws;
  struct watch *ws[cnt ? cnt : 1];
  memcpy(ws, n->ws, cnt * sizeof *ws);

  for (uint32_t i = 0; i < cnt; i++) {
    struct watch *w = ws[i];
    if (!imap_get(&watches, w->id)) continue;
    if (w->is_file) {
      uint8_t op = (m & IN_MODIFY) ? W_WRITE : (m & IN_ATTRIB) ? W_CHMOD : (m & IN_DELETE_SELF) ? W_REMOVE
                 : (m & IN_MOVE_SELF) ? W_RENAME : 0;
      if (op) emit(w, op, w->dir, w->fname);
      continue;
    }
    if (!ev->len) {
      /* Events on a directory itself: reported for the root only (parents report the rest). */
      if (strcmp(dir, w->root)) continue;
      if (m & IN_ATTRIB) root_event(w, W_CHMOD);
      if (m & IN_DELETE_SELF) root_event(w, W_REMOVE);
      if (m & IN_MOVE_SELF) root_event(w, W_RENAME);
      continue;
    }
    if (m & (IN_CREATE | IN_MOVED_TO)) {
      emit(w, W_CREATE, dir, name);
      if (isdir && w->recursive) {
        char *c = join(dir, name);
        if (c && !add_node(w, c, false)) add_tree(w, c, (m & IN_CREATE) != 0, 0);
        free(c);
      }
    }
    if (m & IN_MOVED_FROM) {
      emit(w, W_RENAME, dir, name);
      if (isdir && w->recursive) {
        char *c = join(dir, name);
        if (c) remove_subtree(w, c);
        free(c);
      }
    }
    if (m & IN_DELETE) emit(w, W_REMOVE, dir, name);
    if (m & IN_MODIFY) emit(w, W_WRITE, dir, name);
    if (m & IN_ATTRIB) emit(w, W_CHMOD, dir, name);
  }
}

void watch_event(void) {
  static char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
  last_valid = false;
  for (int round = 0; round < 8; round++) {
    ssize_t n = read(ih.fd, buf, sizeof buf);
    if (n <= 0) return;
    for (char *p = buf; p < buf + n;) {
      const struct inotify_event *ev = (const void *)p;
      p += sizeof *ev + ev->len;
      handle(ev);
    }
    if (delivering() && A.sendq.bytes >= SENDQ_HIGH) return;
  }
}

/* Detached for a checkpoint: the kernel watches and the inotify descriptor go (CRIU cannot keep
 * inotify marks on overlayfs, whose file handles it cannot reopen); the watches stay, and
 * watch_resume() adds them again by path when the host is back. */
static bool suspended;

void watch_suspend(void) {
  if (ih.fd < 0) return;
  while (nodes) node_free(nodes);
  ev_close(&ih);
  suspended = true;
}

void watch_resume(void) {
  if (!suspended) return;
  suspended = false;
  ih.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (ih.fd < 0) {
    logmsg("inotify_init: %s: watches are lost", strerror(errno));
    return;
  }
  ev_set(&ih, EPOLLIN);
  for (uint32_t i = 0; i < watches.cap; i++) {
    struct watch *w = watches.t[i].k ? watches.t[i].v : NULL;
    if (!w) continue;
    /* a root that is gone now stays quiet, as after a removal */
    if (add_node(w, w->root, true)) continue;
    if (w->recursive) add_tree(w, w->root, false, 0);
  }
}

/* Stops reading inotify while the host is slow (the kernel queues meanwhile). */
void watch_update(void) {
  if (ih.fd >= 0) ev_set(&ih, delivering() && A.sendq.bytes >= SENDQ_HIGH ? 0 : EPOLLIN);
}

void watch_op(uint8_t type, uint32_t rid, struct rd *r) {
  static char path[PATH_MAX];
  if (type == OP_UNWATCH) {
    uint32_t id = rd_u32(r);
    struct watch *w = r->bad ? NULL : imap_del(&watches, id);
    if (!w) return reply_err(rid, ENOENT, "no such watch", NULL);
    for (struct wnode *n = nodes, *nx; n; n = nx) {
      nx = n->next;
      node_remove_watch(n, w);
    }
    free(w->root);
    free(w->dir);
    free(w);
    return reply_empty(rid);
  }
  uint8_t rec = rd_u8(r);
  int e = rd_path(r, path);
  if (e) return reply_err(rid, e, "watch: malformed request", NULL);
  if (ih.fd < 0) {
    ih.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ih.fd < 0) return reply_err(rid, errno, "inotify_init", NULL);
    ev_set(&ih, EPOLLIN);
  }
  struct stat st;
  if (stat(path, &st)) return reply_err(rid, errno, "stat", path);
  struct watch *w = calloc(1, sizeof *w);
  if (!w || !(w->root = strdup(path))) {
    free(w);
    return reply_err(rid, ENOMEM, "watch", NULL);
  }
  w->id = ++next_wid;
  w->is_file = !S_ISDIR(st.st_mode);
  w->recursive = rec && !w->is_file;
  if (w->is_file) {
    char *slash = strrchr(w->root, '/');
    w->fname = slash + 1;
    w->dir = slash == w->root ? strdup("/") : strndup(w->root, slash - w->root);
  }
  if ((w->is_file && !w->dir) || imap_put(&watches, w->id, w)) e = ENOMEM;
  else e = add_node(w, path, true);
  if (e) {
    imap_del(&watches, w->id);
    free(w->root);
    free(w->dir);
    free(w);
    return reply_err(rid, e, "inotify_add_watch", path);
  }
  if (w->recursive) add_tree(w, path, false, 0);
  struct frame *f = frame_new(MSG_OK, 0, rid, 4);
  fput_u32(&f, w->id);
  send_frame(f);
}

/* ---- upgrade handover (see upgrade.c) ---- */

/* Writes every watch (id, recursive, path) for the next binary. */
void watch_save(struct frame **f) {
  fput_u32(f, next_wid);
  fput_u32(f, watches.n);
  for (uint32_t i = 0; i < watches.cap; i++) {
    struct watch *w = watches.t[i].k ? watches.t[i].v : NULL;
    if (!w) continue;
    fput_u32(f, w->id);
    fput_u8(f, w->recursive);
    fput_cstr(f, w->root);
  }
}

/* Takes the watches back by path; the kernel watches are added again on the next connection. */
int watch_load(struct rd *r) {
  static char path[PATH_MAX];
  next_wid = rd_u32(r);
  uint32_t n = rd_u32(r);
  for (uint32_t i = 0; i < n && !r->bad; i++) {
    uint32_t id = rd_u32(r);
    uint8_t rec = rd_u8(r);
    if (rd_path(r, path) || r->bad) return -1;
    struct stat st;
    bool is_file = stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
    struct watch *w = calloc(1, sizeof *w);
    if (!w || !(w->root = strdup(path))) return -1;
    w->id = id;
    w->is_file = is_file;
    w->recursive = rec && !is_file;
    if (is_file) {
      char *slash = strrchr(w->root, '/');
      w->fname = slash + 1;
      w->dir = slash == w->root ? strdup("/") : strndup(w->root, slash - w->root);
    }
    imap_put(&watches, w->id, w);
  }
  suspended = true;
  return r->bad ? -1 : 0;
}
