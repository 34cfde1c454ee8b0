// User namespaces: every sandbox maps its uids 0..size-1 to one shared host range (like Docker's
// userns-remap). Image layers are owned by host root, so each image gets one read-only
// *idmapped* view (mount_setattr(MOUNT_ATTR_IDMAP)) that shows its files as owned by the range;
// that view is the overlay's lower layer. util-linux in bookworm (2.38) cannot make idmapped
// mounts, so the three syscalls are made from perl (perl-base is essential in Debian).

import { promises as fs } from "node:fs";
import { HangarError } from "@hangar/common";
import { run } from "./proc.js";
import { mountTable } from "./crun.js";

export interface UserNsRange {
  /** First host uid/gid of the range (uid 0 inside). */
  hostId: number;
  size: number;
}

export const DEFAULT_USERNS: UserNsRange = { hostId: 1_000_000_000, size: 65536 };

// unshare(2)/open_tree/move_mount/mount_setattr numbers: 272 on x86_64 (97 on arm64); the mount
// API calls share one number on every architecture.
const IDMAP_PL = String.raw`
use strict; use POSIX ();
my ($host, $size, $src, $dst, $nr_unshare) = @ARGV;
pipe(my $r, my $w) or die "pipe: $!";
my $pid = fork() // die "fork: $!";
if ($pid == 0) { close $w; syscall($nr_unshare, 0x10000000) == 0 or POSIX::_exit(1); sysread($r, my $b, 1); POSIX::_exit(0); }
close $r;
my $self = readlink("/proc/self/ns/user");
for (my $i = 0; readlink("/proc/$pid/ns/user") eq $self; $i++) { die "child did not unshare\n" if $i > 5000; select(undef, undef, undef, 0.001); }
for my $f ("uid_map", "gid_map") { open(my $m, ">", "/proc/$pid/$f") or die "$f: $!\n"; print $m "0 $host $size\n"; close $m or die "$f: $!\n"; }
open(my $ns, "<", "/proc/$pid/ns/user") or die "userns: $!\n";
my $tree = syscall(428, -100, $src, 1 | 0x80000);
die "open_tree $src: $!\n" if $tree < 0;
my $attr = pack("QQQQ", 0x100000 | 0x1, 0, 0, fileno($ns));
my $e1 = ""; syscall(442, $tree, $e1, 0x1000, $attr, length($attr)) == 0 or die "mount_setattr(idmap) $src: $!\n";
my $e2 = ""; syscall(429, $tree, $e2, -100, $dst, 4) == 0 or die "move_mount $dst: $!\n";
close $w; waitpid($pid, 0);
`;

/** Mounts a read-only idmapped view of `src` at `dst` (host root → range.hostId). */
export async function mountIdmapped(src: string, dst: string, range: UserNsRange): Promise<void> {
  await fs.mkdir(dst, { recursive: true });
  const nr = process.arch === "arm64" ? "97" : "272";
  try {
    await run("perl", ["-e", IDMAP_PL, String(range.hostId), String(range.size), src, dst, nr]);
  } catch (e) {
    throw new HangarError("runtime_failed", `idmapped mount of ${src}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

/** Cache of idmapped views of image lower dirs, one per image, under `dir`. */
export class IdmappedLowers {
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    private readonly dir: string,
    private readonly range: UserNsRange,
  ) {}

  /** The idmapped view of an image's lower dir, mounted on first use (or after a reboot). */
  get(imageId: string, lowerDir: string): Promise<string> {
    const dst = `${this.dir}/${imageId}`;
    let p = this.pending.get(dst);
    if (!p) {
      p = (async () => {
        const m = (await mountTable()).get(dst);
        if (!m) await mountIdmapped(lowerDir, dst, this.range);
        return dst;
      })();
      p.catch(() => this.pending.delete(dst));
      this.pending.set(dst, p);
    }
    return p;
  }
}
