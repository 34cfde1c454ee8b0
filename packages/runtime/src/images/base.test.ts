// The built-in base image, in the machine-wide cache (built once per machine, left for reuse).
// HANGAR_IMAGE_CACHE_DIR overrides the cache directory.

import { execFileSync } from "node:child_process";
import { lstat, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BASE_CONFIG, baseImageId } from "./base.js";
import { mountAt } from "./erofs.js";
import { BASE_REF } from "./refs.js";
import { DEFAULT_IMAGE_CACHE_DIR, LocalImageStore } from "./store.js";
import { mountCount, resolveInChild } from "./testing.js";

const isRoot = process.getuid?.() === 0;
const CACHE = process.env.HANGAR_IMAGE_CACHE_DIR || DEFAULT_IMAGE_CACHE_DIR;

describe.skipIf(!isRoot)("base image", { timeout: 15 * 60_000 }, () => {
  it("two processes resolving it at once build it at most once", async () => {
    const [a, b] = await Promise.all([resolveInChild(CACHE, "blaxel/base-image:latest"), resolveInChild(CACHE, "hangar/base")]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.image!.id).toBe(baseImageId());
    expect(b.image!.id).toBe(a.image!.id);
    expect(b.image!.lowerDir).toBe(a.image!.lowerDir);
    const builders = [a, b].filter((c) => c.stderr.includes("building base image"));
    expect(builders.length, a.stderr + b.stderr).toBeLessThanOrEqual(1);
    expect(await mountCount(a.image!.lowerDir)).toBe(1);
    const tmp = (await readdir(join(CACHE, "tmp"))).filter((n) => n.startsWith(`img-${baseImageId()}-`));
    expect(tmp).toEqual([]);
  });

  it("resolves every alias to one image, instantly once warm", async () => {
    const store = new LocalImageStore({ dir: CACHE });
    const first = await store.resolve("blaxel/base-image:latest");
    expect(first.ref).toBe(BASE_REF);
    expect(first.config).toEqual(BASE_CONFIG);
    for (const alias of ["blaxel/base-image", "hangar/base", "hangar/base:latest", "docker.io/blaxel/base-image:latest"]) {
      const t0 = performance.now();
      const r = await store.resolve(alias);
      expect(performance.now() - t0, alias).toBeLessThan(5);
      expect(r).toEqual(first);
    }
    // The config is a copy: callers cannot corrupt the cache.
    first.config.env.PATH = "/nope";
    expect((await store.resolve("hangar/base")).config.env.PATH).toBe(BASE_CONFIG.env.PATH);
  });

  it("has the tools agents expect, and they run", async () => {
    const { lowerDir } = await new LocalImageStore({ dir: CACHE }).resolve(BASE_REF);
    const tools = ["bash", "python3", "curl", "wget", "git", "rg", "node", "jq", "less", "unzip", "xz", "tar", "gzip", "file", "ssh", "nc", "ping", "ip", "ps", "find", "grep", "sed", "vi", "nano"];
    // (The host-side mount is nodev, so no /dev/null here; sandboxes get their own /dev.)
    const script = `for t in ${tools.join(" ")}; do p=$(command -v $t) || echo "missing $t"; done\n` +
      "bash --version | head -1; python3 --version; node --version; git --version; rg --version | head -1; curl --version | head -1";
    const out = execFileSync("chroot", [lowerDir, "/bin/bash", "-c", script], { encoding: "utf8", env: BASE_CONFIG.env });
    expect(out).not.toMatch(/missing/);
    expect(out).toMatch(/GNU bash/);
    expect(out).toMatch(/Python 3\./);
    expect(out).toMatch(/v\d+\./);
    expect(out).toMatch(/ripgrep/);
    // ca-certificates are there for HTTPS.
    expect((await lstat(join(lowerDir, "etc/ssl/certs/ca-certificates.crt"))).size).toBeGreaterThan(1000);
  });

  it("follows Blaxel's layout, with clean apt caches and files the driver can bind-mount over", async () => {
    const { lowerDir, config } = await new LocalImageStore({ dir: CACHE }).resolve(BASE_REF);
    expect(config).toMatchObject({ workingDir: "/blaxel", home: "/blaxel", uid: 0, gid: 0, shell: "/bin/bash" });
    expect((await lstat(join(lowerDir, "blaxel"))).isDirectory()).toBe(true);
    for (const f of ["etc/resolv.conf", "etc/hostname", "etc/hosts"]) {
      const st = await lstat(join(lowerDir, f));
      expect(st.isFile(), f).toBe(true);
      expect(st.size, f).toBe(0);
    }
    const lists = (await readdir(join(lowerDir, "var/lib/apt/lists")).catch(() => [] as string[])).filter((n) => n !== "partial" && n !== "lock");
    expect(lists).toEqual([]);
    expect((await readdir(join(lowerDir, "var/cache/apt/archives"))).filter((n) => n.endsWith(".deb"))).toEqual([]);
    expect(await readFile(join(lowerDir, "etc/apt/sources.list"), "utf8")).toMatch(/^deb \S+ bookworm main$/m);
    expect(await readFile(join(lowerDir, "etc/passwd"), "utf8")).toMatch(/^root:x:0:0:[^:]*:[^:]*:\/bin\/bash$/m);
  });

  it("is a read-only EROFS mount that init() re-mounts idempotently", async () => {
    const store = new LocalImageStore({ dir: CACHE });
    const { lowerDir } = await store.resolve(BASE_REF);
    const m = await mountAt(lowerDir);
    expect(m?.fsType).toBe("erofs");
    expect(m?.options.split(",")).toContain("ro");
    expect(m?.source).toBe(join(lowerDir, "..", "image.erofs"));
    await expect(writeFile(join(lowerDir, "blaxel/x"), "x")).rejects.toMatchObject({ code: "EROFS" });
    await store.init();
    await new LocalImageStore({ dir: CACHE }).init();
    expect(await mountCount(lowerDir)).toBe(1);
  });
});
