/* File operations, done by the agent so the sandbox's own root, mounts and permissions apply. */
#include "agent.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define W_APPEND 1u
#define W_MKDIRS 2u
#define W_MODE 4u

#define RM_MAX_DEPTH 4096

enum { FT_FILE = 0, FT_DIR = 1, FT_SYMLINK = 2, FT_OTHER = 3 };

/* stat encoding: u8 type, u8 has_link, u32 mode, u32 uid, u32 gid, u64 size, i64 mtime_s,
 * u32 mtime_ns, then str link target when has_link. */
static void put_stat(struct frame **f, const struct stat *st, const char *link, ssize_t linklen) {
  uint8_t t = S_ISREG(st->st_mode) ? FT_FILE : S_ISDIR(st->st_mode) ? FT_DIR : S_ISLNK(st->st_mode) ? FT_SYMLINK : FT_OTHER;
  fput_u8(f, t);
  fput_u8(f, linklen >= 0 ? 1 : 0);
  fput_u32(f, st->st_mode);
  fput_u32(f, st->st_uid);
  fput_u32(f, st->st_gid);
  fput_u64(f, (uint64_t)st->st_size);
  fput_u64(f, (uint64_t)st->st_mtim.tv_sec);
  fput_u32(f, (uint32_t)st->st_mtim.tv_nsec);
  if (linklen >= 0) fput_str(f, link, (size_t)linklen);
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= w;
  }
  return 0;
}

/* mkdir -p: creates path and missing parents. Returns 0 or errno. */
static int mkdir_p(char *path, mode_t mode) {
  struct stat st;
  if (mkdir(path, mode) == 0) return 0;
  int e = errno;
  if (e == EEXIST) return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : EEXIST;
  if (e != ENOENT) return e;
  char *slash = strrchr(path, '/');
  if (!slash || slash == path) return ENOENT;
  *slash = 0;
  int r = mkdir_p(path, 0755); /* parents get 0755 like mkdir -p */
  *slash = '/';
  if (r) return r;
  if (mkdir(path, mode) == 0) return 0;
  e = errno;
  if (e == EEXIST) return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : EEXIST;
  return e;
}

/* Removes name under dfd: a file, or a whole tree without following symlinks. Returns 0 or errno. */
static int rm_tree(int dfd, const char *name, int depth) {
  if (unlinkat(dfd, name, 0) == 0) return 0;
  if (errno != EISDIR && errno != EPERM) return errno;
  if (depth > RM_MAX_DEPTH) return ELOOP;
  int err = 0;
  for (int pass = 0; pass < 4; pass++) {
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOTDIR ? EPERM : errno;
    DIR *d = fdopendir(fd);
    if (!d) {
      close(fd);
      return errno;
    }
    struct dirent *e;
    err = 0;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      int r = rm_tree(dirfd(d), e->d_name, depth + 1);
      if (r && r != ENOENT && !err) err = r;
    }
    closedir(d);
    if (unlinkat(dfd, name, AT_REMOVEDIR) == 0) return 0;
    if (errno != ENOTEMPTY || err) return err ? err : errno;
  }
  return ENOTEMPTY;
}

/* Opens path for writing (create, truncate or append), creating parents when asked. */
static int open_write(char *path, uint32_t fl, uint32_t mode, const char **what) {
  int of = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | ((fl & W_APPEND) ? O_APPEND : O_TRUNC);
  mode_t m = (fl & W_MODE) ? (mode & 07777) : 0644;
  *what = "open";
  int fd = open(path, of, m);
  if (fd < 0 && errno == ENOENT && (fl & W_MKDIRS)) {
    char *slash = strrchr(path, '/');
    if (slash && slash != path) {
      *slash = 0;
      int r = mkdir_p(path, 0755);
      *slash = '/';
      if (r) {
        *what = "mkdir";
        errno = r;
        return -1;
      }
      fd = open(path, of, m);
    }
  }
  if (fd < 0) return -1;
  if ((fl & W_MODE) && fchmod(fd, m)) {
    int e = errno;
    close(fd);
    *what = "chmod";
    errno = e;
    return -1;
  }
  return fd;
}

static void op_read(uint32_t rid, const char *path, uint64_t off, uint32_t len) {
  if (len > READ_MAX) len = READ_MAX;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return reply_err(rid, errno, "open", path);
  struct stat st;
  if (fstat(fd, &st)) {
    int e = errno;
    close(fd);
    return reply_err(rid, e, "stat", path);
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return reply_err(rid, EISDIR, "read", path);
  }
  /* A regular file with a size is read up to that size; others (/proc, devices) until EOF. */
  bool sized = S_ISREG(st.st_mode) && st.st_size > 0;
  size_t want = len;
  if (sized) want = off >= (uint64_t)st.st_size ? 0 : ((uint64_t)st.st_size - off < len ? (size_t)(st.st_size - off) : len);
  struct frame *f = frame_new(MSG_OK, 0, rid, 8 + (sized ? want : (want < 65536 ? want : 65536)));
  fput_u64(&f, (uint64_t)st.st_size);
  size_t got = 0;
  bool seekable = true;
  int err = 0;
  while (got < want) {
    size_t room = want - got;
    if (!sized && room > 65536) room = 65536;
    frame_reserve(&f, room);
    ssize_t n = seekable ? pread(fd, f->d + f->len, room, (off_t)(off + got)) : read(fd, f->d + f->len, room);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ESPIPE && seekable) {
        seekable = false;
        continue;
      }
      if (errno == EAGAIN) break;
      err = errno;
      break;
    }
    if (n == 0) break;
    f->len += n;
    got += n;
  }
  close(fd);
  if (err) {
    free(f);
    return reply_err(rid, err, "read", path);
  }
  send_frame(f);
}

static void op_readdir(uint32_t rid, const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return reply_err(rid, errno, "opendir", path);
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return reply_err(rid, e, "opendir", path);
  }
  struct frame *f = frame_new(MSG_OK, 0, rid, 4096);
  struct dirent *e;
  char link[PATH_MAX];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    struct stat st;
    if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW)) continue; /* vanished meanwhile */
    ssize_t ll = -1;
    if (S_ISLNK(st.st_mode)) {
      ll = readlinkat(fd, e->d_name, link, sizeof link);
      if (ll < 0) ll = 0;
    }
    if (frame_plen(f) > CHUNK_SPLIT) {
      f->d[5] = FL_MORE;
      send_frame(f);
      f = frame_new(MSG_OK, 0, rid, 4096);
    }
    fput_cstr(&f, e->d_name);
    put_stat(&f, &st, link, ll);
  }
  closedir(d);
  send_frame(f);
}

void fs_close_handles(void) {
  for (uint32_t i = 0; i < A.handles.cap; i++)
    if (A.handles.t[i].k) close((int)(intptr_t)A.handles.t[i].v - 1);
  free(A.handles.t);
  memset(&A.handles, 0, sizeof A.handles);
}

void fs_op(uint8_t type, uint32_t rid, struct rd *r) {
  static char path[PATH_MAX], path2[PATH_MAX];
  int e = 0;
  switch (type) {
  case OP_STAT: {
    uint8_t follow = rd_u8(r);
    if ((e = rd_path(r, path))) break;
    struct stat st;
    if ((follow ? stat(path, &st) : lstat(path, &st))) return reply_err(rid, errno, follow ? "stat" : "lstat", path);
    char link[PATH_MAX];
    ssize_t ll = -1;
    if (S_ISLNK(st.st_mode)) {
      ll = readlink(path, link, sizeof link);
      if (ll < 0) ll = 0;
    }
    struct frame *f = frame_new(MSG_OK, 0, rid, 48 + (ll > 0 ? ll : 0));
    put_stat(&f, &st, link, ll);
    return send_frame(f);
  }
  case OP_READDIR:
    if ((e = rd_path(r, path))) break;
    return op_readdir(rid, path);
  case OP_READ: {
    uint64_t off = rd_u64(r);
    uint32_t len = rd_u32(r);
    if (r->bad) {
      e = EINVAL;
      break;
    }
    if ((e = rd_path(r, path))) break;
    return op_read(rid, path, off, len);
  }
  case OP_WRITE_FILE:
  case OP_OPEN: {
    uint32_t fl = rd_u32(r), mode = rd_u32(r);
    if ((e = rd_path(r, path))) break;
    const char *what;
    int fd = open_write(path, fl, mode, &what);
    if (fd < 0) return reply_err(rid, errno, what, path);
    if (type == OP_OPEN) {
      uint32_t h = ++A.next_handle;
      if (!h) h = ++A.next_handle;
      if (imap_put(&A.handles, h, (void *)(intptr_t)(fd + 1))) {
        close(fd);
        return reply_err(rid, ENOMEM, "open", path);
      }
      struct frame *f = frame_new(MSG_OK, 0, rid, 4);
      fput_u32(&f, h);
      return send_frame(f);
    }
    e = write_all(fd, r->p, r->e - r->p);
    if (close(fd) && !e) e = errno;
    if (e) return reply_err(rid, e, "write", path);
    return reply_empty(rid);
  }
  case OP_WRITE:
  case OP_CLOSE: {
    uint32_t h = rd_u32(r);
    void *v = imap_get(&A.handles, h);
    if (r->bad) {
      e = EINVAL;
      break;
    }
    if (!v) return reply_err(rid, EBADF, "no such file handle", NULL);
    int fd = (int)(intptr_t)v - 1;
    if (type == OP_WRITE) {
      if ((e = write_all(fd, r->p, r->e - r->p))) return reply_err(rid, e, "write", NULL);
      return reply_empty(rid);
    }
    imap_del(&A.handles, h);
    if (close(fd)) return reply_err(rid, errno, "close", NULL);
    return reply_empty(rid);
  }
  case OP_MKDIR: {
    uint32_t fl = rd_u32(r), mode = rd_u32(r);
    if ((e = rd_path(r, path))) break;
    if (fl & 1) {
      if ((e = mkdir_p(path, mode & 07777))) return reply_err(rid, e, "mkdir", path);
    } else if (mkdir(path, mode & 07777)) {
      return reply_err(rid, errno, "mkdir", path);
    }
    return reply_empty(rid);
  }
  case OP_REMOVE: {
    uint8_t recursive = rd_u8(r);
    if ((e = rd_path(r, path))) break;
    if (recursive) {
      if ((e = rm_tree(AT_FDCWD, path, 0))) return reply_err(rid, e, "remove", path);
    } else if (unlink(path)) {
      if (errno != EISDIR) return reply_err(rid, errno, "unlink", path);
      if (rmdir(path)) return reply_err(rid, errno, "rmdir", path);
    }
    return reply_empty(rid);
  }
  case OP_RENAME:
    if ((e = rd_path(r, path)) || (e = rd_path(r, path2))) break;
    if (rename(path, path2)) return reply_err(rid, errno, "rename", path);
    return reply_empty(rid);
  case OP_CHMOD: {
    uint32_t mode = rd_u32(r);
    if ((e = rd_path(r, path))) break;
    if (chmod(path, mode & 07777)) return reply_err(rid, errno, "chmod", path);
    return reply_empty(rid);
  }
  case OP_REALPATH: {
    if ((e = rd_path(r, path))) break;
    if (!realpath(path, path2)) return reply_err(rid, errno, "realpath", path);
    struct frame *f = frame_new(MSG_OK, 0, rid, strlen(path2) + 4);
    fput_cstr(&f, path2);
    return send_frame(f);
  }
  }
  reply_err(rid, e ? e : EINVAL, "malformed request", NULL);
}
