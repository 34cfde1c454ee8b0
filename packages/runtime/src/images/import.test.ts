// Importing OCI/Docker images for real (skopeo, umoci, mkfs.erofs, mount); needs root.

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HangarError } from "@hangar/common";
import { buildTestImage, type TestImage } from "./fixtures.js";
import { mountAt, unmountTree } from "./erofs.js";
import { LocalImageStore } from "./store.js";
import { mountCount, mountsUnder, REGISTRY_BINARY, resolveInChild, startRegistry, type TestRegistry } from "./testing.js";
import { run } from "./exec.js";
import { acquireLock } from "./lock.js";

const isRoot = process.getuid?.() === 0;

async function expectInvalid(p: Promise<unknown>, what: string, maxMs: number): Promise<HangarError> {
  const t0 = performance.now();
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  const ms = performance.now() - t0;
  expect(err, what).toBeInstanceOf(HangarError);
  expect((err as HangarError).code, `${what}: ${(err as Error).message}`).toBe("invalid_image");
  expect(ms, `${what} took ${ms} ms`).toBeLessThan(maxMs);
  return err as HangarError;
}

/** Everything in the store except lock files (which are kept, empty, by design). */
async function storeContents(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ["images", "refs", "tmp"]) {
    for (const f of await readdir(join(dir, sub)).catch(() => [] as string[])) out.push(`${sub}/${f}`);
  }
  return out.sort();
}

describe.skipIf(!isRoot)("importing images", { timeout: 120_000 }, () => {
  let work: string;
  let dir: string;
  let store: LocalImageStore;
  let img: TestImage;
  let registry: TestRegistry | undefined;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "hangar-images-"));
    dir = join(work, "store");
    img = await buildTestImage({ dir: join(work, "fixture"), env: { FOO: "bar", GREETING: "hello world" } });
    store = new LocalImageStore({ dir });
  }, 60_000);

  afterAll(async () => {
    await registry?.stop();
    if (!work) return;
    for (const rec of await store.list().catch(() => [])) await store.remove(rec.id);
    await unmountTree(work);
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  it("imports an OCI layout with its Env, WorkingDir and User, as a read-only EROFS mount", async () => {
    const r = await store.resolve(img.layoutRef);
    expect(r.id).toMatch(/^[a-f0-9]{64}$/);
    expect(r.ref).toBe(img.layoutRef);
    expect(r.config).toEqual({ workingDir: "/app", home: "/home/app", env: img.expect.env, uid: 1000, gid: 1000, shell: "/bin/bash", command: ["/bin/sh"] });
    expect(r.config.env).toMatchObject({ FOO: "bar", GREETING: "hello world", PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/home/app" });
    const m = await mountAt(r.lowerDir);
    expect(m?.fsType).toBe("erofs");
    expect(m?.options.split(",")).toContain("ro");
    expect(await readFile(join(r.lowerDir, "etc/os-release"), "utf8")).toContain("hangar-test");
    await expect(writeFile(join(r.lowerDir, "app/x"), "x")).rejects.toMatchObject({ code: "EROFS" });
    // glibc binaries of the image run from it.
    const out = execFileSync("chroot", [r.lowerDir, "/bin/bash", "-c", "echo ok; id -u"], { encoding: "utf8" });
    expect(out).toBe("ok\n0\n");

    const t0 = performance.now();
    const again = await store.resolve(img.layoutRef);
    expect(performance.now() - t0).toBeLessThan(20);
    expect(again).toEqual(r);
  });

  it("imports OCI archives and docker-archives; one digest is one image", async () => {
    const layout = await store.resolve(img.layoutRef);
    const ociTar = await store.resolve(img.ociArchiveRef);
    expect(ociTar.id).toBe(layout.id);
    expect(ociTar.lowerDir).toBe(layout.lowerDir);
    expect(await mountCount(layout.lowerDir)).toBe(1);
    const docker = await store.resolve(img.dockerArchiveRef);
    expect(docker.config).toEqual(layout.config);
    expect(await readFile(join(docker.lowerDir, "etc/passwd"), "utf8")).toContain("app:x:1000");
    // A fresh store (another process, a restart) finds everything by its references, without importing.
    const other = new LocalImageStore({ dir });
    const lines: string[] = [];
    expect((await other.resolve(img.dockerArchiveRef, (l) => lines.push(l))).id).toBe(docker.id);
    expect(lines).toEqual([]);
  });

  it("reuses a test fixture built earlier with the same options", async () => {
    const t0 = performance.now();
    const again = await buildTestImage({ dir: join(work, "fixture"), env: { FOO: "bar", GREETING: "hello world" } });
    expect(performance.now() - t0).toBeLessThan(100);
    expect(again).toEqual(img);
  });

  it("re-imports a local archive whose content changed", async () => {
    const first = await store.resolve(img.ociArchiveRef);
    const changed = await buildTestImage({ dir: join(work, "fixture2"), env: { FOO: "changed" } });
    await run("cp", [changed.ociArchiveRef.slice("oci-archive:".length), img.ociArchiveRef.slice("oci-archive:".length) + ".new"]);
    await run("mv", [img.ociArchiveRef.slice("oci-archive:".length) + ".new", img.ociArchiveRef.slice("oci-archive:".length)]);
    const second = await store.resolve(img.ociArchiveRef);
    expect(second.id).not.toBe(first.id);
    expect(second.config.env.FOO).toBe("changed");
  });

  it("re-mounts cached images after a restart, idempotently", async () => {
    const r = await store.resolve(img.layoutRef);
    await unmountTree(r.lowerDir); // as after a reboot
    expect(await mountCount(r.lowerDir)).toBe(0);
    const restarted = new LocalImageStore({ dir });
    await restarted.init();
    await restarted.init();
    expect(await mountCount(r.lowerDir)).toBe(1);
    expect((await restarted.resolve(img.layoutRef)).lowerDir).toBe(r.lowerDir);
    expect(await mountCount(r.lowerDir)).toBe(1);
    expect(existsSync(join(r.lowerDir, "usr/bin/bash"))).toBe(true);
  });

  it("two processes importing the same image at once import it once", async () => {
    const dir2 = join(work, "store-concurrent");
    const [a, b] = await Promise.all([resolveInChild(dir2, img.dockerArchiveRef), resolveInChild(dir2, img.dockerArchiveRef)]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.image!.id).toBe(b.image!.id);
    expect(a.image!.lowerDir).toBe(b.image!.lowerDir);
    const imported = [a, b].filter((c) => c.stderr.includes("unpacking"));
    expect(imported.length, a.stderr + b.stderr).toBe(1);
    expect(await mountCount(a.image!.lowerDir)).toBe(1);
    expect((await readdir(join(dir2, "images"))).length).toBe(1);
    expect(await readdir(join(dir2, "tmp"))).toEqual([]);
    const s2 = new LocalImageStore({ dir: dir2 });
    for (const rec of await s2.list()) await s2.remove(rec.id);
    expect(await mountsUnder(dir2)).toEqual([]);
  });

  it("rejects unknown images and malformed references fast, leaving nothing behind", async () => {
    await store.resolve(img.layoutRef);
    const before = await storeContents(dir);
    const mountsBefore = await mountsUnder(dir);
    const garbageFile = join(work, "garbage.tar");
    await writeFile(garbageFile, "this is not a tarball\n".repeat(100));
    const emptyDir = join(work, "empty-dir");
    await mkdir(emptyDir, { recursive: true });
    const layoutPath = img.layoutRef.slice("oci:".length).replace(/:test$/, "");
    const cases: [string, number][] = [
      ["nope/nope:1", 25_000], // Docker Hub, unreachable here (or the image does not exist)
      ["127.0.0.1:1/nope/nope:1", 5_000], // connection refused
      ["oci:/does/not/exist", 1_000],
      ["oci-archive:/does/not/exist.tar", 1_000],
      ["docker-archive:/does/not/exist.tar", 1_000],
      ["oci:/tmp/../etc", 1_000],
      [`oci:${layoutPath}/../fixture/layout`, 1_000],
      ["../../../etc/passwd", 1_000],
      ["oci:relative/layout", 1_000],
      ["!!garbage!!", 1_000],
      ["", 1_000],
      ["http://example.com/image", 1_000],
      [`oci:${emptyDir}`, 1_000],
      [`oci:${garbageFile}`, 1_000],
      [`oci:${layoutPath}:no-such-tag`, 1_000],
      [`oci-archive:${emptyDir}`, 1_000],
      [`oci-archive:${garbageFile}`, 5_000],
      [`docker-archive:${garbageFile}`, 5_000],
    ];
    for (const [ref, maxMs] of cases) {
      const err = await expectInvalid(store.resolve(ref), ref, maxMs);
      expect(err.message.length).toBeGreaterThan(10);
    }
    expect(await storeContents(dir)).toEqual(before);
    expect(await mountsUnder(dir)).toEqual(mountsBefore);
  });

  it("refuses an image whose User is not in its /etc/passwd, leaving nothing behind", async () => {
    const ghost = await buildTestImage({ dir: join(work, "fixture-ghost"), user: "ghost", files: { "/etc/ghost": "boo" } });
    const before = await storeContents(dir);
    const err = await expectInvalid(store.resolve(ghost.ociArchiveRef), "user ghost", 10_000);
    expect(err.message).toMatch(/ghost.*passwd/);
    expect(await storeContents(dir)).toEqual(before);
  });

  it("accepts local paths only under the configured import roots", async () => {
    const restricted = new LocalImageStore({ dir, localImportRoots: [join(work, "elsewhere")] });
    await expectInvalid(restricted.resolve(img.layoutRef), "outside roots", 1_000);
    // outside the roots, an existing and a missing path get the same answer (no probing the host)
    const a = await expectInvalid(restricted.resolve("oci-archive:/etc/shadow"), "existing", 1_000);
    const b = await expectInvalid(restricted.resolve("oci-archive:/root/no-such-file"), "missing", 1_000);
    const detail = (e: HangarError) => e.message.replace(/^image "[^"]*": /, "");
    expect(detail(a)).toBe(detail(b));
    expect(detail(a)).toMatch(/outside the allowed import directories/);
    const allowed = new LocalImageStore({ dir, localImportRoots: [work] });
    expect((await allowed.resolve(img.layoutRef)).config.uid).toBe(1000);
  });

  it.skipIf(!existsSync(REGISTRY_BINARY))("pulls from a registry on loopback, then serves it from the cache", async () => {
    registry = await startRegistry(join(work, "registry"));
    await run("skopeo", ["--insecure-policy", "copy", "-q", "--dest-tls-verify=false", img.layoutRef, `docker://${registry.host}/hangar/test:1`]);
    const ref = `${registry.host}/hangar/test:1`;
    const r = await store.resolve(ref);
    expect(r.ref).toBe(ref);
    expect(r.config).toMatchObject({ workingDir: "/app", uid: 1000, gid: 1000 });
    expect(r.config.env.FOO).toBe("bar");
    await expectInvalid(store.resolve(`${registry.host}/hangar/missing:1`), "missing repo", 5_000);
    await registry.stop();
    registry = undefined;
    // Cached by reference: no registry needed any more, in this process or another.
    expect((await new LocalImageStore({ dir }).resolve(ref)).id).toBe(r.id);
  });

  it("init() removes staging left by a crashed builder, but not a live builder's", async () => {
    await store.init();
    const crashed = join(dir, "tmp", "img-0123abcd-AbCdEf");
    const live = join(dir, "tmp", "ref-4567cdef-GhIjKl");
    await mkdir(join(crashed, "rootfs/etc"), { recursive: true });
    await mkdir(live, { recursive: true });
    const lock = await acquireLock(join(dir, "locks", "ref-4567cdef.lock"));
    try {
      await new LocalImageStore({ dir }).init();
      expect(existsSync(crashed)).toBe(false);
      expect(existsSync(live)).toBe(true);
    } finally {
      await lock.release();
    }
    await new LocalImageStore({ dir }).init();
    expect(existsSync(live)).toBe(false);
    await rm(join(dir, "locks", "img-0123abcd.lock"), { force: true });
    await rm(join(dir, "locks", "ref-4567cdef.lock"), { force: true });
  });

  it("removes an image: unmounted, deleted, references gone", async () => {
    const r = await store.resolve(img.layoutRef);
    await store.remove(r.id);
    expect(await mountCount(r.lowerDir)).toBe(0);
    expect(existsSync(join(dir, "images", r.id))).toBe(false);
    const again = await store.resolve(img.layoutRef);
    expect(again.id).toBe(r.id);
    expect(await mountCount(again.lowerDir)).toBe(1);
  });
});
