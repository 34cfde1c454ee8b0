// The store's hooks for images it does not pull: a provider owning registry names (Hangar's hub
// images), and buildOnce, which makes concurrent first uses (two stores on one directory stand
// for two server processes) build an image once. Needs root (mounts).

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HangarError } from "@hangar/common";
import { mkfsErofs } from "./erofs.js";
import { LocalImageStore, type ImageProvider } from "./store.js";
import type { ResolvedImage } from "./types.js";

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)("images the store does not pull", { timeout: 60_000 }, () => {
  let work: string;
  let dir: string;
  const ids: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "hangar-build-once-"));
    dir = join(work, "store");
  });

  afterAll(async () => {
    const store = new LocalImageStore({ dir });
    for (const id of ids) await store.remove(id).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  /** An image build that takes a while and counts its runs. */
  function slowBuild(store: LocalImageStore, ref: string, runs: { n: number }) {
    return async (): Promise<ResolvedImage> => {
      runs.n++;
      await new Promise((r) => setTimeout(r, 300));
      const root = await mkdtemp(join(work, "rootfs-"));
      await mkdir(join(root, "etc"));
      await writeFile(join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
      const id = "feedface" + Math.random().toString(16).slice(2, 10);
      ids.push(id);
      return store.addBuilt(ref, id, { config: { Cmd: ["/bin/true"] } }, (file) => mkfsErofs(file, root));
    };
  }

  it("builds once when two stores on one directory ask at the same time, then serves it from the cache", async () => {
    const a = new LocalImageStore({ dir });
    const b = new LocalImageStore({ dir });
    const ref = "built:hub/hub/demo:0123456789abcdef";
    const runs = { n: 0 };
    let waited = 0;
    const [x, y] = await Promise.all([a.buildOnce(ref, slowBuild(a, ref, runs), () => waited++), b.buildOnce(ref, slowBuild(b, ref, runs), () => waited++)]);
    expect(runs.n).toBe(1);
    expect(waited).toBe(1);
    expect(x.id).toBe(y.id);
    expect(x.config.command).toEqual(["/bin/true"]);
    // a third store (a later server) finds it without building
    const c = new LocalImageStore({ dir });
    const z = await c.buildOnce(ref, slowBuild(c, ref, runs));
    expect(runs.n).toBe(1);
    expect(z.lowerDir).toBe(x.lowerDir);
  });

  it("asks the provider for the names it owns, before any registry", async () => {
    const store = new LocalImageStore({ dir });
    const asked: string[] = [];
    const provider: ImageProvider = {
      owns: (ref) => ref.repository.startsWith("blaxel/"),
      resolve: async (ref) => {
        asked.push(ref.canonical);
        throw new HangarError("invalid_image", `no ${ref.repository} here`);
      },
    };
    store.setProvider(provider);
    const t0 = Date.now();
    await expect(store.resolve("blaxel/nothing:latest")).rejects.toMatchObject({ code: "invalid_image", message: "no blaxel/nothing here" });
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(asked).toEqual(["docker.io/blaxel/nothing:latest"]);
    // the built-in base keeps its alias and is never the provider's
    expect(provider.owns({ kind: "registry", canonical: "docker.io/library/x:latest", domain: "docker.io", repository: "library/x", tag: "latest", digest: undefined })).toBe(false);
  });
});
