// The hub's catalog and references: which names it serves, what an unknown one answers, when an
// image must be rebuilt (its content hash), and which sandboxes start a service.

import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { BuildahBuilder } from "@hangar/builds";
import { LocalImageStore, parseImageRef, type RegistryRef } from "@hangar/runtime";
import { HUB, sandboxDefinition, templateView } from "./catalog.js";
import { HUB_IMAGES_DIR, HubImages, hubServiceOf } from "./hub-images.js";

const registry = (ref: string) => parseImageRef(ref) as RegistryRef;

function hub(dir = HUB_IMAGES_DIR): HubImages {
  // resolve() of an unknown name fails before the builder or the store are touched
  return new HubImages({ images: new LocalImageStore({ dir: "/nonexistent" }), builder: {} as BuildahBuilder, stagingDir: "/nonexistent", dir });
}

describe("the hub catalog", () => {
  it("has a Dockerfile FROM Hangar's base for every image but base-image", () => {
    for (const e of HUB) {
      const file = join(HUB_IMAGES_DIR, e.name, "Dockerfile");
      expect(existsSync(file), e.name).toBe(e.dockerfile);
    }
    expect(HUB.map((e) => e.name)).toEqual(["base-image", "node", "py-app", "nextjs", "vite", "expo", "jupyter-server"]);
  });

  it("lists entries in the SDK's SandboxDefinition and Template shapes", () => {
    const d = sandboxDefinition(HUB.find((e) => e.name === "jupyter-server")!);
    expect(d).toMatchObject({ name: "jupyter-server", image: "blaxel/jupyter-server:latest", ports: [{ name: "jupyter", target: 8888, protocol: "HTTP" }], enterprise: false, coming_soon: false });
    expect(d.categories).toEqual([{ name: "data-science" }]);
    expect(templateView(HUB[1]!, "abc")).toMatchObject({ name: "node", sha: "abc", topics: ["sandbox", "backend"] });
  });

  it("starts services only for the images that have one", () => {
    expect(hubServiceOf("blaxel/nextjs:latest")).toEqual({ process: "dev-server", port: 3000, workingDir: "/blaxel/app" });
    expect(hubServiceOf("docker.io/blaxel/jupyter-server")?.port).toBe(8888);
    expect(hubServiceOf("blaxel/vite")?.port).toBe(5173);
    expect(hubServiceOf("blaxel/node:latest")).toBeUndefined();
    expect(hubServiceOf("blaxel/base-image:latest")).toBeUndefined();
    expect(hubServiceOf("example.com/blaxel/nextjs:latest")).toBeUndefined();
    expect(hubServiceOf("not a ref")).toBeUndefined();
  });
});

describe("hub references", () => {
  it("owns blaxel/ names on Docker Hub only", () => {
    const h = hub();
    expect(h.owns(registry("blaxel/node:latest"))).toBe(true);
    expect(h.owns(registry("blaxel/whatever"))).toBe(true);
    expect(h.owns(registry("library/node:20"))).toBe(false);
    expect(h.owns(registry("ghcr.io/blaxel/node:latest"))).toBe(false);
  });

  it("answers invalid_image for an unknown name, another tag or a digest", async () => {
    const h = hub();
    await expect(h.resolve(registry("blaxel/nope:latest"), () => {})).rejects.toMatchObject({ code: "invalid_image", message: expect.stringContaining("blaxel/jupyter-server") });
    await expect(h.resolve(registry("blaxel/node:20"), () => {})).rejects.toMatchObject({ code: "invalid_image", message: expect.stringContaining("blaxel/node:latest") });
    await expect(h.resolve(registry(`blaxel/node@sha256:${"a".repeat(64)}`), () => {})).rejects.toMatchObject({ code: "invalid_image" });
    // base-image at another tag is not a Dockerfile image
    await expect(h.resolve(registry("blaxel/base-image:v2"), () => {})).rejects.toMatchObject({ code: "invalid_image" });
  });

  it("hashes an image's whole folder: an edited Dockerfile or an added file is a new image", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hangar-hub-"));
    try {
      await cp(HUB_IMAGES_DIR, dir, { recursive: true });
      const h = hub(dir);
      const before = await h.contentHash("vite");
      expect(before).toMatch(/^[0-9a-f]{32}$/);
      expect(await h.contentHash("vite")).toBe(before);
      expect(await h.contentHash("node")).not.toBe(before);
      await writeFile(join(dir, "vite", "Dockerfile"), "FROM hangar/base:latest\n# edited\n", { flag: "a" });
      const edited = await h.contentHash("vite");
      expect(edited).not.toBe(before);
      await writeFile(join(dir, "vite", "app", "src", "extra.js"), "export {};\n");
      const added = await h.contentHash("vite");
      expect(added).not.toBe(edited);
      // what tools leave beside the sources does not count
      await mkdir(join(dir, "vite", "app", "__pycache__"));
      await writeFile(join(dir, "vite", "app", "__pycache__", "x.pyc"), "x");
      expect(await h.contentHash("vite")).toBe(added);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
