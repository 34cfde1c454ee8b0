// Mounts into a running sandbox without restarting it: a clone of a host directory (open_tree),
// made nosuid/nodev, read-only if asked and idmapped through the sandbox's own user namespace
// (mount_setattr), is moved (move_mount) onto a directory resolved *inside* the sandbox's root
// (setns into its mount namespace, chroot to its root, openat2 RESOLVE_IN_ROOT), so a symlink
// planted in the sandbox can never send the mount to a host path. The target must be a directory
// on the sandbox's own root filesystem (not /proc, /sys, /dev, a bind, a volume, or / itself).
// The syscalls are made from perl (perl-base is essential in Debian), as userns.ts does.

import { HangarError } from "@hangar/common";
import { runRaw } from "./proc.js";

/** A mount made into a running sandbox; kept in the driver's record and re-applied after a restart or restore. */
export interface LiveMount {
  /** Host directory mounted. */
  source: string;
  /** Directory beneath `source` to mount instead (made if missing; never through a symlink). */
  sourcePath?: string;
  /** Absolute path inside the sandbox. */
  destination: string;
  readOnly: boolean;
  /** Caller's bookkeeping (e.g. drive name and path), returned by liveMounts(). */
  meta?: Record<string, string>;
}

const ARCH = process.arch === "arm64" ? { setns: 268, fchdir: 50, umount2: 39 } : { setns: 308, fchdir: 81, umount2: 166 };

const ENTER_PL = String.raw`
sub enter {
  my ($pid, $nr_setns, $nr_fchdir) = @_;
  open(my $root, "<", "/proc/$pid/root") or die "E root of $pid: $!\n";
  open(my $mnt, "<", "/proc/$pid/ns/mnt") or die "E mount namespace of $pid: $!\n";
  syscall($nr_setns, fileno($mnt), 0x00020000) == 0 or die "E setns: $!\n";
  syscall($nr_fchdir, fileno($root)) == 0 or die "E fchdir: $!\n";
  chroot(".") or die "E chroot: $!\n";
  chdir("/") or die "E chdir: $!\n";
}
`;

const MOUNT_PL = String.raw`
use strict; use POSIX ();
${ENTER_PL}
my ($pid, $src, $sub, $dst, $ro, $owner, $nr_setns, $nr_fchdir) = @ARGV;
# the tree, cloned in the host's mount namespace: $sub beneath $src, never through a symlink
# (RESOLVE_BENEATH 0x8 | RESOLVE_NO_SYMLINKS 0x4 | RESOLVE_NO_MAGICLINKS 0x2), made if missing
open(my $sr, "<", $src) or die "E $src: $!\n";
my $bhow = pack("QQQ", 0x200000 | 0x10000 | 0x80000, 0, 0x8 | 0x4 | 0x2);
my $q = "";
for my $c (grep { length && $_ ne "." } split m{/}, $sub) {
  die "X path escapes the source: $sub\n" if $c eq "..";
  $q .= ($q eq "" ? "" : "/") . $c;
  my $fd = syscall(437, fileno($sr), $q, $bhow, length($bhow));
  if ($fd < 0) { die "X $q: $!\n" unless $!{ENOENT}; mkdir("$src/$q", 0755) or die "X cannot create $q: $!\n"; }
  else { POSIX::close($fd); }
}
my $subpath = $q eq "" ? "." : $q;
my $sfd = syscall(437, fileno($sr), $subpath, $bhow, length($bhow));
die "X $sub: $!\n" if $sfd < 0;
# OPEN_TREE_CLONE 1 | O_CLOEXEC | AT_EMPTY_PATH 0x1000
my $empty = "";
my $tree = syscall(428, $sfd, $empty, 1 | 0x80000 | 0x1000);
die "E open_tree $src: $!\n" if $tree < 0;
open(my $uns, "<", "/proc/$pid/ns/user") or die "E user namespace of $pid: $!\n";
# MOUNT_ATTR_RDONLY 0x1, NOSUID 0x2, NODEV 0x4, IDMAP 0x100000 (host uid k on disk = uid k inside)
my $attr = pack("QQQQ", 0x2 | 0x4 | ($ro ? 0x1 : 0) | 0x100000, 0, 0, fileno($uns));
syscall(442, $tree, $empty, 0x1000, $attr, length($attr)) == 0 or die "E mount_setattr $src: $!\n";
enter($pid, $nr_setns, $nr_fchdir);
# missing directories are made inside the sandbox, owned by its root
my $p = "";
for my $c (grep { length } split m{/}, $dst) {
  $p .= "/$c";
  next if -d $p;
  mkdir($p, 0755) or die "X cannot create $p in the sandbox: $!\n";
  chown($owner, $owner, $p);
}
# O_PATH|O_DIRECTORY|O_CLOEXEC, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS
my $how = pack("QQQ", 0x200000 | 0x10000 | 0x80000, 0, 0x10 | 0x02);
my $t = syscall(437, -100, $dst, $how, length($how));
die "X $dst is not a directory in the sandbox: $!\n" if $t < 0;
open(my $tf, "<&=", $t) or die "E fdopen: $!\n";
my @ts = stat($tf); my @rs = stat("/");
die "X $dst is the sandbox's root\n" if $ts[0] == $rs[0] && $ts[1] == $rs[1];
die "X $dst is not on the sandbox's own filesystem (a system or mounted path)\n" if $ts[0] != $rs[0];
# MOVE_MOUNT_F_EMPTY_PATH 0x4 | MOVE_MOUNT_T_EMPTY_PATH 0x40
my $e2 = "";
syscall(429, $tree, $empty, $t, $e2, 0x4 | 0x40) == 0 or die "E move_mount $dst: $!\n";
`;

const UMOUNT_PL = String.raw`
use strict;
${ENTER_PL}
my ($pid, $dst, $nr_setns, $nr_fchdir, $nr_umount2) = @ARGV;
enter($pid, $nr_setns, $nr_fchdir);
# MNT_DETACH 0x2 | UMOUNT_NOFOLLOW 0x8; EINVAL/ENOENT: nothing mounted there
if (syscall($nr_umount2, $dst, 0x2 | 0x8) != 0) { exit 3 if $!{EINVAL} || $!{ENOENT}; die "E umount $dst: $!\n"; }
`;

const SWAP_PL = String.raw`
use strict;
${ENTER_PL}
my ($pid, $src, $dst, $nr_setns, $nr_fchdir, $nr_umount2, $noexec) = @ARGV;
# a clone of the host file (OPEN_TREE_CLONE 1 | O_CLOEXEC), read-only, nosuid, nodev (noexec)
my $empty = "";
my $tree = syscall(428, -100, $src, 1 | 0x80000);
die "E open_tree $src: $!\n" if $tree < 0;
# (and private: MS_PRIVATE, never a peer of the source's mount)
my $attr = pack("QQQQ", 0x1 | 0x2 | 0x4 | ($noexec ? 0x8 : 0), 0, 0x40000, 0);
syscall(442, $tree, $empty, 0x1000, $attr, length($attr)) == 0 or die "E mount_setattr $src: $!\n";
enter($pid, $nr_setns, $nr_fchdir);
# the old file's bind goes (detached: a running binary still maps it); EINVAL: none was there
syscall($nr_umount2, $dst, 0x2 | 0x8) == 0 or $!{EINVAL} or die "E umount $dst: $!\n";
# the file beneath, resolved inside the sandbox's root without symlinks
# (O_PATH|O_CLOEXEC|O_NOFOLLOW; RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS)
my $how = pack("QQQ", 0x200000 | 0x80000 | 0x20000, 0, 0x10 | 0x04 | 0x02);
my $t = syscall(437, -100, $dst, $how, length($how));
die "E $dst in the sandbox: $!\n" if $t < 0;
# MOVE_MOUNT_F_EMPTY_PATH 0x4 | MOVE_MOUNT_T_EMPTY_PATH 0x40
syscall(429, $tree, $empty, $t, $empty, 0x4 | 0x40) == 0 or die "E move_mount $dst: $!\n";
`;

function fail(what: string, stderr: string): never {
  const line = stderr.trim().split("\n").pop() ?? "";
  if (line.startsWith("X ")) throw new HangarError("invalid_path", line.slice(2));
  throw new HangarError("runtime_failed", `${what}: ${line.replace(/^E /, "") || "failed"}`);
}

/** Mounts `m.source` at `m.destination` inside the sandbox whose init is `pid` (sandbox root = host uid `rootUid`). */
export async function mountInto(pid: number, m: LiveMount, rootUid: number): Promise<void> {
  const r = await runRaw("perl", ["-e", MOUNT_PL, String(pid), m.source, m.sourcePath ?? "", m.destination, m.readOnly ? "1" : "0", String(rootUid), String(ARCH.setns), String(ARCH.fchdir)], { timeoutMs: 10_000 });
  if (r.code !== 0) fail(`mounting ${m.destination}`, r.stderr);
}

/** Detaches whatever is mounted at `destination` inside the sandbox; false when nothing was. */
export async function unmountFrom(pid: number, destination: string): Promise<boolean> {
  const r = await runRaw("perl", ["-e", UMOUNT_PL, String(pid), destination, String(ARCH.setns), String(ARCH.fchdir), String(ARCH.umount2)], { timeoutMs: 10_000 });
  if (r.code === 3) return false;
  if (r.code !== 0) fail(`unmounting ${destination}`, r.stderr);
  return true;
}

/**
 * Replaces the file bound at `destination` inside the sandbox whose init is `pid` with a read-only
 * bind of the host file `source` (the agent binary of an upgrade): the old bind is detached, so
 * exactly one mount stays there, as a fresh start with `source` in its config would have.
 */
export async function swapFileMount(pid: number, source: string, destination: string, opts: { noexec?: boolean } = {}): Promise<void> {
  const r = await runRaw("perl", ["-e", SWAP_PL, String(pid), source, destination, String(ARCH.setns), String(ARCH.fchdir), String(ARCH.umount2), opts.noexec ? "1" : "0"], { timeoutMs: 10_000 });
  if (r.code !== 0) fail(`replacing ${destination}`, r.stderr);
}
