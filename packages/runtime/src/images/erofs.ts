// EROFS images: building them (mkfs.erofs), mounting them read-only, finding mounts, and
// removing directory trees without crossing into mounts.

import { readFile } from "node:fs/promises";
import { run, runRaw } from "./exec.js";

export type ErofsCompression = "none" | "lz4" | "lz4hc";

/** Builds an EROFS image file from a directory, keeping owners, modes, xattrs and mtimes. */
export async function mkfsErofs(image: string, rootfs: string, compression: ErofsCompression = "none"): Promise<void> {
  const args = ["--quiet", "--preserve-mtime"];
  if (compression !== "none") args.push(`-z${compression}`);
  args.push(image, rootfs);
  await run("mkfs.erofs", args, { timeoutMs: 30 * 60_000 });
}

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  options: string;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The mounts of this process's mount namespace, from /proc/self/mountinfo (in mount order). */
export async function readMounts(): Promise<MountEntry[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const right = line.slice(sep + 3).split(" ");
    out.push({
      mountPoint: unescapeMountinfo(left[4] ?? ""),
      options: left[5] ?? "",
      fsType: right[0] ?? "",
      source: unescapeMountinfo(right[1] ?? ""),
    });
  }
  return out;
}

/** The topmost mount at `path`, if any. */
export async function mountAt(path: string): Promise<MountEntry | undefined> {
  const mounts = await readMounts();
  for (let i = mounts.length - 1; i >= 0; i--) if (mounts[i]!.mountPoint === path) return mounts[i];
  return undefined;
}

const MS_RDONLY = 1;
const MS_NOSUID = 2;
const MS_NODEV = 4;
// mount(2) syscall numbers; perl-base (essential in Debian) makes the call, so no helper to compile.
const SYS_MOUNT: Partial<Record<NodeJS.Architecture, number>> = { x64: 165, arm64: 40 };

/**
 * Mounts an EROFS image file read-only at `target`. The kernel mounts the file directly (Linux
 * ≥ 6.12, CONFIG_EROFS_FS_BACKED_BY_FILE) with `directio` (≥ 6.13) so image data is cached once,
 * in EROFS's page cache, not a second time in the backing file's; older kernels fall back to
 * mount(8), which uses a loop device. Host-side nosuid/nodev keep the shared lower harmless to
 * host users (sandboxes see their overlay's own flags).
 */
export async function mountErofs(image: string, target: string): Promise<"file+directio" | "file" | "loop"> {
  const nr = SYS_MOUNT[process.arch];
  if (nr !== undefined) {
    const script =
      'my ($s,$t,$f,$o)=($ARGV[0],$ARGV[1],"erofs",$ARGV[2]); ' +
      `my $r = syscall(${nr}, $s, $t, $f, ${MS_RDONLY | MS_NOSUID | MS_NODEV}, $o); ` +
      'if ($r != 0) { print STDERR "$!\\n"; exit 1 }';
    for (const data of ["directio", ""] as const) {
      const r = await runRaw("perl", ["-e", script, image, target, data], { timeoutMs: 30_000 });
      if (r.code === 0) return data ? "file+directio" : "file";
    }
  }
  await run("mount", ["-t", "erofs", "-o", "ro,nosuid,nodev", image, target], { timeoutMs: 30_000 });
  return "loop";
}

/** Unmounts every mount at or below `path`, deepest first; lazily when busy. */
export async function unmountTree(path: string): Promise<void> {
  const prefix = path.endsWith("/") ? path : path + "/";
  const mounts = (await readMounts()).filter((m) => m.mountPoint === path || m.mountPoint.startsWith(prefix));
  for (const m of mounts.reverse()) {
    const r = await runRaw("umount", [m.mountPoint], { timeoutMs: 30_000 });
    if (r.code !== 0) await runRaw("umount", ["-l", m.mountPoint], { timeoutMs: 30_000 });
  }
}

/** Removes a directory tree after unmounting anything below it, never crossing filesystems. */
export async function removeTree(path: string): Promise<void> {
  await unmountTree(path);
  await run("rm", ["-rf", "--one-file-system", "--", path], { timeoutMs: 10 * 60_000 });
}
