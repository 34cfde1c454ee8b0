/*
 * hangar-launch: the few syscalls the linux driver needs on a sandbox's hot path, in one static
 * process instead of a chain of mount/install/nsenter/umount execs (each exec costs ~3 ms on a
 * small VM). Operations run in argument order; the first failure prints to stderr and exits 1.
 *
 *   --mount-tmpfs TARGET SIZE_BYTES UID GID SOURCE   tmpfs (mode 0755, owned by UID:GID)
 *   --mkdir PATH UID GID                              mkdir 0755 + chown
 *   --mount-overlay TARGET LOWER UPPER WORK SOURCE    overlayfs
 *   --umount TARGET                                   lazy unmount; not mounted/missing is fine
 *   --unlink PATH                                     missing is fine
 *   --setns-mnt FILE                                  join the mount namespace bound at FILE
 *   --null-stdio                                      stdin/stdout/stderr to /dev/null
 *   --netns-in-userns FILE HOSTID SIZE                new network namespace owned by a new user
 *                                                     namespace mapping 0..SIZE-1 to HOSTID.., bound at FILE
 *   --userns-of-netns FILE FD                         the user namespace owning the netns at FILE
 *                                                     opened as FD (refused if it is the caller's own)
 *   --bind SRC DST                                    bind mount (DST created as a file if missing)
 *   --private-mnt                                     private (slave) copy of the mount namespace
 *   --reap                                            become a child subreaper and fork: the child runs
 *                                                     the remaining operations; the parent reports the
 *                                                     child's exit as "hangar-launch: exit N" on stderr,
 *                                                     reaps every orphan, and exits when none is left
 *   --exec ARGV...                                    execvp the rest of the arguments
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef NS_GET_USERNS
#define NS_GET_USERNS 0xb701
#endif

static int errfd = 2; /* kept across --null-stdio so a failed exec is still reported */

static int fail(const char *what, const char *arg) {
  dprintf(errfd, "hangar-launch: %s %s: %s\n", what, arg, strerror(errno));
  exit(1);
}

static void need(int argc, int i, int n, const char *op) {
  if (i + n >= argc) {
    fprintf(stderr, "hangar-launch: %s needs %d arguments\n", op, n);
    exit(2);
  }
}

/* Writes a whole buffer to a /proc file. */
static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail("open", path);
  if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) fail("write", path);
  close(fd);
}

/* A child unshares a user namespace (the parent writes its id maps), then a network namespace
 * owned by it; the parent binds that netns at FILE. */
static void netns_in_userns(const char *file, const char *host, const char *size) {
  int up[2], down[2];
  char c, path[64], map[128];
  if (pipe2(up, O_CLOEXEC) || pipe2(down, O_CLOEXEC)) fail("pipe", file);
  pid_t pid = fork();
  if (pid < 0) fail("fork", file);
  if (pid == 0) {
    close(up[0]);
    close(down[1]);
    if (unshare(CLONE_NEWUSER)) _exit(1);
    if (write(up[1], "u", 1) != 1 || read(down[0], &c, 1) != 1) _exit(1);
    if (unshare(CLONE_NEWNET)) _exit(2);
    if (write(up[1], "n", 1) != 1) _exit(1);
    if (read(down[0], &c, 1) < 0) _exit(1);
    _exit(0);
  }
  close(up[1]);
  close(down[0]);
  if (read(up[0], &c, 1) != 1) { errno = ECHILD; fail("unshare user for", file); }
  snprintf(map, sizeof map, "0 %s %s\n", host, size);
  snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
  write_file(path, map);
  snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
  write_file(path, map);
  if (write(down[1], "m", 1) != 1) fail("write", file);
  if (read(up[0], &c, 1) != 1) { errno = ECHILD; fail("unshare net for", file); }
  int fd = open(file, O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
  if (fd < 0) fail("create", file);
  close(fd);
  snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
  if (mount(path, file, NULL, MS_BIND, NULL)) fail("bind netns at", file);
  close(down[1]);
  waitpid(pid, NULL, 0);
  close(up[0]);
}

/* Opens the user namespace owning the network namespace at FILE as descriptor `target`. */
static void userns_of_netns(const char *file, int target) {
  struct stat own, st;
  int nfd = open(file, O_RDONLY | O_CLOEXEC);
  if (nfd < 0) fail("open", file);
  int ufd = ioctl(nfd, NS_GET_USERNS);
  if (ufd < 0) fail("NS_GET_USERNS", file);
  if (stat("/proc/self/ns/user", &own) || fstat(ufd, &st)) fail("stat user namespace of", file);
  if (own.st_ino == st.st_ino && own.st_dev == st.st_dev) {
    errno = EPERM;
    fail("netns is owned by the host's user namespace:", file);
  }
  /* nfd may be the target descriptor itself: close it before the dup */
  close(nfd);
  if (ufd == target) {
    if (fcntl(ufd, F_SETFD, 0)) fail("fcntl", file);
  } else {
    if (dup2(ufd, target) < 0) fail("dup2", file);
    close(ufd);
  }
}

/* Parent side of --reap: reports the first child's exit, reaps orphans until none is left. */
static void reap(pid_t first) {
  int code = 1, status;
  for (;;) {
    pid_t w = waitpid(-1, &status, 0);
    if (w < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (w == first) {
      code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      dprintf(errfd, "hangar-launch: exit %d\n", code);
    }
  }
  exit(code);
}

int main(int argc, char **argv) {
  char opts[8192];
  for (int i = 1; i < argc; i++) {
    const char *op = argv[i];
    if (!strcmp(op, "--mount-tmpfs")) {
      need(argc, i, 5, op);
      snprintf(opts, sizeof opts, "size=%s,mode=0755,uid=%s,gid=%s", argv[i + 2], argv[i + 3], argv[i + 4]);
      if (mount(argv[i + 5], argv[i + 1], "tmpfs", MS_NOSUID | MS_NODEV, opts)) fail("mount tmpfs", argv[i + 1]);
      i += 5;
    } else if (!strcmp(op, "--mkdir")) {
      need(argc, i, 3, op);
      if (mkdir(argv[i + 1], 0755) && errno != EEXIST) fail("mkdir", argv[i + 1]);
      if (chown(argv[i + 1], (uid_t)atol(argv[i + 2]), (gid_t)atol(argv[i + 3]))) fail("chown", argv[i + 1]);
      i += 3;
    } else if (!strcmp(op, "--mount-overlay")) {
      need(argc, i, 5, op);
      if ((size_t)snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", argv[i + 2], argv[i + 3], argv[i + 4]) >= sizeof opts) {
        errno = ENAMETOOLONG;
        fail("mount overlay", argv[i + 1]);
      }
      if (mount(argv[i + 5], argv[i + 1], "overlay", 0, opts)) fail("mount overlay", argv[i + 1]);
      i += 5;
    } else if (!strcmp(op, "--umount")) {
      need(argc, i, 1, op);
      if (umount2(argv[i + 1], MNT_DETACH) && errno != EINVAL && errno != ENOENT) fail("umount", argv[i + 1]);
      i += 1;
    } else if (!strcmp(op, "--unlink")) {
      need(argc, i, 1, op);
      if (unlink(argv[i + 1]) && errno != ENOENT) fail("unlink", argv[i + 1]);
      i += 1;
    } else if (!strcmp(op, "--setns-mnt")) {
      need(argc, i, 1, op);
      int fd = open(argv[i + 1], O_RDONLY | O_CLOEXEC);
      if (fd < 0) fail("open", argv[i + 1]);
      if (setns(fd, CLONE_NEWNS)) fail("setns", argv[i + 1]);
      close(fd);
      i += 1;
    } else if (!strcmp(op, "--null-stdio")) {
      int fd = open("/dev/null", O_RDWR);
      if (fd < 0) fail("open", "/dev/null");
      errfd = fcntl(2, F_DUPFD_CLOEXEC, 3);
      for (int k = 0; k < 3; k++) dup2(fd, k);
      if (fd > 2) close(fd);
    } else if (!strcmp(op, "--netns-in-userns")) {
      need(argc, i, 3, op);
      netns_in_userns(argv[i + 1], argv[i + 2], argv[i + 3]);
      i += 3;
    } else if (!strcmp(op, "--userns-of-netns")) {
      need(argc, i, 2, op);
      userns_of_netns(argv[i + 1], atoi(argv[i + 2]));
      i += 2;
    } else if (!strcmp(op, "--bind")) {
      need(argc, i, 2, op);
      int fd = open(argv[i + 2], O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
      if (fd >= 0) close(fd);
      if (mount(argv[i + 1], argv[i + 2], NULL, MS_BIND, NULL)) fail("bind", argv[i + 2]);
      i += 2;
    } else if (!strcmp(op, "--private-mnt")) {
      if (unshare(CLONE_NEWNS)) fail("unshare", "mount namespace");
      if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL)) fail("make slave", "/");
    } else if (!strcmp(op, "--reap")) {
      if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) fail("prctl", "PR_SET_CHILD_SUBREAPER");
      pid_t pid = fork();
      if (pid < 0) fail("fork", "--reap");
      if (pid > 0) reap(pid);
    } else if (!strcmp(op, "--exec")) {
      need(argc, i, 1, op);
      execvp(argv[i + 1], &argv[i + 1]);
      fail("exec", argv[i + 1]);
    } else {
      fprintf(stderr, "hangar-launch: unknown operation %s\n", op);
      return 2;
    }
  }
  return 0;
}
