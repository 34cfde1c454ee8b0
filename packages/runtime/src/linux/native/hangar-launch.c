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
 *   --exec ARGV...                                    execvp the rest of the arguments
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

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
