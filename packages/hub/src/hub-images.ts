// Serves `blaxel/<name>` image references from the hub's own Dockerfiles: the first sandbox that
// needs one builds it with the node's builder (rootless buildah, FROM Hangar's Debian base) and the
// image lands in the image store under `built:hub/hub/<name>:<content hash>`. The image store is
// the machine-wide cache, so every data dir on the machine reuses it; an edited Dockerfile (or a
// new base image) has another hash and builds again. Concurrent first uses build once: the store
// holds a kernel lock on the reference while one of them builds (other processes included).

import { createHash, randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { basename, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { HangarError, silentLogger, type Logger } from "@hangar/common";
import { prepareDockerfile, type BuildahBuilder } from "@hangar/builds";
import { LocalImageStore, parseImageRef, type ImageProvider, type RegistryRef, type ResolvedImage } from "@hangar/runtime";
import { HUB, hubEntry, type HubEntry, type HubService } from "./catalog.js";

/** The hub's Dockerfiles (a folder per image), shipped with this package. */
export const HUB_IMAGES_DIR = fileURLToPath(new URL("../images", import.meta.url));

/** The builder's workspace (its own layer cache) and the kind in the images' built: references. */
const HUB_WORKSPACE = "hub";

export interface HubImagesOptions {
  images: LocalImageStore;
  builder: BuildahBuilder;
  /** Where build contexts are staged (readable by the build user), e.g. the builder's tmp/. */
  stagingDir: string;
  /** Folder of the Dockerfiles (default HUB_IMAGES_DIR). */
  dir?: string;
  logger?: Logger;
}

/** What a finished first-use build took, for logs and benchmarks. */
export interface HubBuildTiming {
  name: string;
  hash: string;
  ms: number;
}

export class HubImages implements ImageProvider {
  private readonly dir: string;
  private readonly log: Logger;
  /** Builds finished by this process (newest last). */
  readonly builds: HubBuildTiming[] = [];

  constructor(private readonly opts: HubImagesOptions) {
    this.dir = opts.dir ?? HUB_IMAGES_DIR;
    this.log = opts.logger ?? silentLogger;
  }

  /** `blaxel/<anything>` on Docker Hub is the hub's: never pulled. */
  owns(ref: RegistryRef): boolean {
    return ref.domain === "docker.io" && ref.repository.startsWith("blaxel/");
  }

  async resolve(ref: RegistryRef, onProgress: (line: string) => void): Promise<ResolvedImage> {
    const entry = this.entryOf(ref);
    const hash = await this.contentHash(entry.name);
    const builtRef = `built:${HUB_WORKSPACE}/hub/${entry.name}:${hash}`;
    return this.opts.images.buildOnce(builtRef, () => this.build(entry, hash, onProgress), () =>
      onProgress(`waiting for another server building blaxel/${entry.name}…`),
    );
  }

  /** The catalog entry a reference names; invalid_image (400) for names the hub does not have. */
  private entryOf(ref: RegistryRef): HubEntry {
    const name = ref.repository.slice("blaxel/".length);
    const entry = hubEntry(name);
    if (!entry) {
      const known = HUB.map((e) => `blaxel/${e.name}`).join(", ");
      throw new HangarError("invalid_image", `image "${ref.canonical}": blaxel/${name} is not in this server's sandbox hub (it has ${known}; see GET /v0/sandbox/hub)`);
    }
    // (blaxel/base-image:latest is the built-in base and never comes here)
    if (!entry.dockerfile || ref.digest || (ref.tag !== undefined && ref.tag !== "latest")) {
      throw new HangarError("invalid_image", `image "${ref.canonical}": hub images have one version here, blaxel/${name}:latest`);
    }
    return entry;
  }

  /** A hash of the image's folder (every file's path and bytes) and of the base image it starts from. */
  async contentHash(name: string): Promise<string> {
    const root = join(this.dir, name);
    const h = createHash("sha256").update(`hub-v1\0base:${LocalImageStore.baseImageId()}\0`);
    for (const file of await listFiles(root)) h.update(`${relative(root, file)}\0`).update(await fs.readFile(file)).update("\0");
    return h.digest("hex").slice(0, 32);
  }

  /** Builds the image of `entry` (the caller holds the store's lock for its reference). */
  private async build(entry: HubEntry, hash: string, onProgress: (line: string) => void): Promise<ResolvedImage> {
    const t0 = performance.now();
    // progress goes to the caller (the server log when it has no better place); the outcome to the log
    const say = onProgress;
    say(`building hub image blaxel/${entry.name} (${hash.slice(0, 12)}) on first use; later sandboxes on this machine reuse it`);
    const context = join(this.opts.stagingDir, `hub-${entry.name}-${randomBytes(4).toString("hex")}`);
    await fs.mkdir(this.opts.stagingDir, { recursive: true });
    await fs.cp(join(this.dir, entry.name), context, { recursive: true, filter: (src) => !IGNORED.has(basename(src)) });
    // the last lines of the build's output go into the error when it fails
    const tail: string[] = [];
    try {
      const prepared = prepareDockerfile(await fs.readFile(join(context, "Dockerfile"), "utf8"), {});
      const dockerfile = ".hangar.Dockerfile";
      await fs.writeFile(join(context, dockerfile), prepared.text);
      const out = await this.opts.builder.build({
        id: hash,
        workspace: HUB_WORKSPACE,
        kind: "hub",
        name: entry.name,
        contextDir: context,
        dockerfile,
        images: prepared.images,
        buildArgs: {},
        // buildah's step lines and the builder's own; RUN output only at debug level
        onLog: (line) => {
          tail.push(line);
          if (tail.length > 12) tail.shift();
          if (/^(STEP \d|COMMIT|timing:|writing image|image .* unchanged|Error|error)/.test(line)) say(`blaxel/${entry.name}: ${line}`);
          else this.log.debug({ image: entry.name }, line);
        },
      });
      const image = await this.opts.images.resolve(out.ref);
      const ms = Math.round(performance.now() - t0);
      this.builds.push({ name: entry.name, hash, ms });
      this.log.info({ image: `blaxel/${entry.name}`, ms }, `hub image blaxel/${entry.name} built in ${(ms / 1000).toFixed(1)} s`);
      return image;
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      this.log.error({ err: e, image: entry.name }, "building a hub image failed");
      if (e instanceof HangarError && e.code !== "build_failed") throw e;
      throw new HangarError("runtime_failed", `hub image blaxel/${entry.name} could not be built: ${why}${tail.length ? ` | last output: ${tail.join(" | ")}` : ""}`, undefined, { cause: e });
    } finally {
      await fs.rm(context, { recursive: true, force: true });
    }
  }
}

/** Left out of an image's context and hash: what tools leave beside the sources. */
const IGNORED = new Set(["__pycache__", "node_modules", ".DS_Store"]);

/** Every regular file under `dir`, sorted. */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await fs.readdir(dir, { withFileTypes: true })) {
    if (IGNORED.has(d.name)) continue;
    const p = join(dir, d.name);
    if (d.isDirectory()) out.push(...(await listFiles(p)));
    else if (d.isFile()) out.push(p);
  }
  return out.sort();
}

/** The service a sandbox of `image` starts with, when it is a hub image that has one. */
export function hubServiceOf(image: string): HubService | undefined {
  try {
    const ref = parseImageRef(image);
    if (ref.kind !== "registry" || ref.domain !== "docker.io" || !ref.repository.startsWith("blaxel/")) return undefined;
    return hubEntry(ref.repository.slice("blaxel/".length))?.service;
  } catch {
    return undefined;
  }
}
