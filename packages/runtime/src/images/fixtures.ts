// Test fixture: a small glibc-based OCI image made from host binaries (and their libraries, via
// ldd) with umoci, without any registry. Driver and image tests create sandboxes from it.

import { copyFile, lstat, lutimes, mkdir, readFile, readlink, realpath, rm, symlink, writeFile, readdir, chmod } from "node:fs/promises";
import { dirname, join, basename } from "node:path";
import { existsSync } from "node:fs";
import { withLock } from "./lock.js";
import { run } from "./exec.js";

export interface TestImageOptions {
  /** Output directory (created; its previous content is replaced). */
  dir: string;
  /** Image Env (PATH is added when missing). */
  env?: Record<string, string>;
  /** Image WorkingDir (created in the image). Default /app. */
  workingDir?: string;
  /** Image User. Default "app" (uid 1000, gid 1000, home /home/app). */
  user?: string;
  /** Host executables to include with their shared libraries. */
  binaries?: string[];
  /** Extra files: image path → content. */
  files?: Record<string, string>;
}

export interface TestImage {
  /** oci:<dir>/layout:test */
  layoutRef: string;
  /** oci-archive:<dir>/image-oci.tar */
  ociArchiveRef: string;
  /** docker-archive:<dir>/image-docker.tar */
  dockerArchiveRef: string;
  /** What the image config says, for assertions. */
  expect: { env: Record<string, string>; workingDir: string; uid: number; gid: number; home: string };
}

export const TEST_IMAGE_BINARIES = [
  "/bin/bash", "/bin/sh", "/bin/cat", "/bin/ls", "/bin/echo", "/usr/bin/env", "/usr/bin/id", "/bin/pwd",
  "/bin/sleep", "/bin/mkdir", "/bin/rm", "/bin/touch", "/usr/bin/head", "/bin/uname", "/bin/true",
  "/bin/false", "/bin/grep", "/usr/bin/wc", "/bin/ps", "/usr/bin/tail", "/bin/kill",
];

const FIXED_TIME = new Date("2024-01-01T00:00:00Z");

/** Copies a host file into the rootfs at the same path (directory symlinks resolved, file dereferenced). */
async function copyHostFile(rootfs: string, hostPath: string): Promise<void> {
  const dest = join(rootfs, await realpath(dirname(hostPath)), basename(hostPath));
  if (await lstat(dest).catch(() => undefined)) return;
  await mkdir(dirname(dest), { recursive: true });
  await copyFile(hostPath, dest);
  await chmod(dest, (await lstat(await realpath(hostPath))).mode & 0o7777);
}

/** The shared libraries (and loader) a host executable needs, from ldd. */
async function libraries(exe: string): Promise<string[]> {
  const r = await run("ldd", [exe]).catch(() => undefined);
  if (!r) return []; // static or not an ELF
  const out: string[] = [];
  for (const line of r.stdout.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** Sets every mtime in the tree to a fixed date, so identical inputs give identical layers. */
async function pinTimes(path: string): Promise<void> {
  const st = await lstat(path);
  if (st.isDirectory()) for (const e of await readdir(path)) await pinTimes(join(path, e));
  await lutimes(path, FIXED_TIME, FIXED_TIME);
}

/**
 * Builds the test image in three forms: an OCI layout, an OCI archive and a docker-archive.
 * Reuses what an earlier call left in `dir` when the options are the same (safe across
 * processes), so tests can share one fixture dir and the image store resolves it instantly.
 */
export async function buildTestImage(opts: TestImageOptions): Promise<TestImage> {
  const dir = opts.dir;
  const workingDir = opts.workingDir ?? "/app";
  const user = opts.user ?? "app";
  const env: Record<string, string> = { PATH: "/usr/local/bin:/usr/bin:/bin", ...(opts.env ?? {}) };
  const binaries = (opts.binaries ?? TEST_IMAGE_BINARIES).filter((b) => opts.binaries || existsSync(b));
  const isApp = user === "app" || user === "1000" || user.startsWith("app:") || user.startsWith("1000:");
  const home = isApp ? "/home/app" : "/root";
  const result: TestImage = {
    layoutRef: `oci:${join(dir, "layout")}:test`,
    ociArchiveRef: `oci-archive:${join(dir, "image-oci.tar")}`,
    dockerArchiveRef: `docker-archive:${join(dir, "image-docker.tar")}`,
    // What the store should derive (for the default user "app" or root).
    expect: { env: { HOME: home, ...env }, workingDir, uid: isApp ? 1000 : 0, gid: isApp ? 1000 : 0, home },
  };
  const stamp = JSON.stringify({ v: 1, env, workingDir, user, binaries, files: opts.files ?? {} });
  await mkdir(dirname(dir), { recursive: true });
  return withLock(`${dir}.lock`, async () => {
    const old = await readFile(join(dir, "stamp.json"), "utf8").catch(() => "");
    if (old === stamp) return result;
    await build(dir, { env, workingDir, user, binaries, files: opts.files ?? {} });
    await writeFile(join(dir, "stamp.json"), stamp);
    return result;
  });
}

async function build(
  dir: string,
  opts: { env: Record<string, string>; workingDir: string; user: string; binaries: string[]; files: Record<string, string> },
): Promise<void> {
  const { env, workingDir, user } = opts;
  await rm(dir, { recursive: true, force: true });
  const rootfs = join(dir, "rootfs");
  await mkdir(rootfs, { recursive: true });

  // Merged-/usr layout like the host's (bin, sbin, lib, lib64 → usr/...).
  for (const top of ["bin", "sbin", "lib", "lib64"]) {
    const st = await lstat(join("/", top)).catch(() => undefined);
    if (st?.isSymbolicLink()) await symlink(await readlink(join("/", top)), join(rootfs, top));
  }
  for (const exe of opts.binaries) {
    await copyHostFile(rootfs, exe);
    for (const lib of await libraries(exe)) await copyHostFile(rootfs, lib);
  }
  for (const d of ["etc", "proc", "sys", "dev", "root", "home/app", "tmp", "run", workingDir.slice(1)]) {
    await mkdir(join(rootfs, d), { recursive: true });
  }
  await chmod(join(rootfs, "tmp"), 0o1777);
  const files: Record<string, string> = {
    "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000:app:/home/app:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "/etc/group": "root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n",
    "/etc/resolv.conf": "",
    "/etc/hostname": "",
    "/etc/hosts": "",
    "/etc/os-release": 'ID=hangar-test\nNAME="Hangar test image"\n',
    ...opts.files,
  };
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(rootfs, p)), { recursive: true });
    await writeFile(join(rootfs, p), content);
  }
  await run("chown", ["-R", "1000:1000", join(rootfs, "home/app"), join(rootfs, workingDir.slice(1))]);
  await pinTimes(rootfs);

  // umoci: an empty image, one layer with the rootfs, then the config.
  const layout = join(dir, "layout");
  const image = `${layout}:test`;
  const created = FIXED_TIME.toISOString();
  await run("umoci", ["init", "--layout", layout]);
  await run("umoci", ["new", "--image", image]);
  await run("umoci", ["insert", "--image", image, "--history.created", created, rootfs, "/"]);
  const cfg = ["config", "--image", image, "--created", created, "--history.created", created, "--config.workingdir", workingDir, "--config.user", user, "--config.cmd", "/bin/sh"];
  for (const [k, v] of Object.entries(env)) cfg.push("--config.env", `${k}=${v}`);
  await run("umoci", cfg);
  await run("umoci", ["gc", "--layout", layout]);

  const ociTar = join(dir, "image-oci.tar");
  const dockerTar = join(dir, "image-docker.tar");
  const skopeo = ["--insecure-policy", "--tmpdir", dir];
  await run("skopeo", [...skopeo, "copy", "-q", `oci:${image}`, `oci-archive:${ociTar}:test`]);
  await run("skopeo", [...skopeo, "copy", "-q", `oci:${image}`, `docker-archive:${dockerTar}:hangar-test/image:test`]);
  await rm(rootfs, { recursive: true, force: true });
}
