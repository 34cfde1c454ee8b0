// The local image store: images are EROFS files, each mounted read-only once at a stable path
// that sandboxes use as their overlay lower. Layout under `dir`:
//
//   images/<id>/image.erofs   the image (immutable once present)
//   images/<id>/meta.json     id, ref, ImageConfig, digest, size (written before the commit rename)
//   images/<id>/rootfs/       where image.erofs is mounted (ResolvedImage.lowerDir)
//   refs/<hash>.json          an imported reference → image id (+ a fingerprint of local sources)
//   locks/<key>.lock          flock files: img-<id> (build/mount/remove), ref-<hash> (import)
//   tmp/<key>-<random>/       staging; renamed into images/ when complete, removed otherwise
//
// Every build happens in tmp/ under the image's lock and becomes visible by one rename, so
// concurrent processes never build twice nor see a half-built image.

import { createHash } from "node:crypto";
import { lstat, mkdir, mkdtemp, readdir, readFile, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve as resolvePath } from "node:path";
import { HangarError, isHangarError, silentLogger, type Logger } from "@hangar/common";
import type { ImageConfig } from "../driver.js";
import type { ImageStore, ResolvedImage } from "./types.js";
import { BASE_SUITE, baseImageId, BASE_CONFIG, debootstrap, finishBaseRootfs, hostAptMirror } from "./base.js";
import { mkfsErofs, mountAt, mountErofs, removeTree, unmountTree, type ErofsCompression } from "./erofs.js";
import { tryLock, withLock } from "./lock.js";
import { checkPlatform, imageConfigFromOci, readLayoutImage, skopeoCopy, skopeoInspect, umociUnpack, type OciImageConfig } from "./oci.js";
import { BASE_REF, isLoopbackRegistry, parseImageRef, skopeoSource, type LocalRef, type ParsedRef, type RegistryRef } from "./refs.js";

export interface LocalImageStoreOptions {
  /** Where images live, e.g. `<data-dir>/images` or a machine-wide cache like /var/cache/hangar/images. */
  dir: string;
  logger?: Logger;
  /** EROFS compression of new images (default "none": fastest reads, see README). */
  compression?: ErofsCompression;
  /**
   * Directories that oci:, oci-archive: and docker-archive: references may read from (after
   * resolving symlinks). Undefined allows any path; [] disables local imports.
   */
  localImportRoots?: string[];
  /** Registries reached over plain HTTP / unverified TLS besides loopback ones (host[:port]). */
  insecureRegistries?: string[];
  /** How long reaching a registry may take before it counts as unreachable (default 20 s). */
  registryTimeoutMs?: number;
}

/** What meta.json records about an image. */
export interface ImageRecord {
  id: string;
  /** The reference it was first built or imported from (canonical). */
  ref: string;
  /** The OCI manifest digest for imported images. */
  digest?: string;
  config: ImageConfig;
  sizeBytes: number;
  compression: ErofsCompression;
  createdAt: string;
  buildMs: number;
}

interface RefRecord {
  ref: string;
  id: string;
  fingerprint: string;
}

type Progress = (line: string) => void;

/**
 * Serves registry names the store must not pull (e.g. Hangar's hub images `blaxel/<name>`, built
 * from Dockerfiles on first use). `owns` is checked before any registry is contacted.
 */
export interface ImageProvider {
  owns(ref: RegistryRef): boolean;
  /** The image for `ref` (throws invalid_image for a name it owns but does not have). */
  resolve(ref: RegistryRef, onProgress: Progress): Promise<ResolvedImage>;
}

const IMPORT_TIMEOUT_MS = 30 * 60_000;
const ID_RE = /^[a-z0-9]+$/;

function shortHash(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 32);
}

function invalidImage(ref: string, why: string, cause?: unknown): HangarError {
  return new HangarError("invalid_image", `image "${ref}": ${why}`, undefined, { cause });
}

/** A copy callers may modify without touching the cache. */
function copyImage(image: ResolvedImage): ResolvedImage {
  return { ...image, config: { ...image.config, env: { ...image.config.env } } };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class LocalImageStore implements ImageStore {
  private readonly opts: LocalImageStoreOptions;
  private readonly log: Logger;
  private root: string | undefined;
  private readyPromise: Promise<string> | undefined;
  /** Resolved images by canonical ref (with the local source's fingerprint). */
  private readonly memo = new Map<string, { fingerprint: string; image: ResolvedImage }>();
  /** In-flight resolves by canonical ref, so concurrent callers in this process share one. */
  private readonly inflight = new Map<string, Promise<ResolvedImage>>();
  /** Image ids known to be mounted by this process. */
  private readonly mounted = new Set<string>();
  private provider: ImageProvider | undefined;

  constructor(opts: LocalImageStoreOptions) {
    this.opts = opts;
    this.log = opts.logger ?? silentLogger;
  }

  /** Creates the directory layout once; returns the store's real path (as /proc/self/mountinfo shows it). */
  private ready(): Promise<string> {
    this.readyPromise ??= (async () => {
      await mkdir(this.opts.dir, { recursive: true, mode: 0o755 });
      const root = await realpath(this.opts.dir);
      for (const d of ["images", "refs", "locks"]) await mkdir(join(root, d), { recursive: true, mode: 0o755 });
      await mkdir(join(root, "tmp"), { recursive: true, mode: 0o700 });
      this.root = root;
      return root;
    })();
    this.readyPromise.catch(() => (this.readyPromise = undefined));
    return this.readyPromise;
  }

  private path(...parts: string[]): string {
    return join(this.root!, ...parts);
  }

  private lockFile(key: string): string {
    return this.path("locks", `${key}.lock`);
  }

  /** Plugs in the provider of names this store does not pull (set once at start-up). */
  setProvider(provider: ImageProvider): void {
    this.provider = provider;
  }

  /**
   * The image a `built:` reference names, made by `build` only when no process has made it yet:
   * concurrent callers (in this or another process sharing the store) wait for one build.
   */
  async buildOnce(ref: string, build: () => Promise<ResolvedImage>, onWait?: () => void): Promise<ResolvedImage> {
    const parsed = parseImageRef(ref);
    if (parsed.kind !== "built") throw new HangarError("invalid_image", `${ref} is not a built: reference`);
    await this.ready();
    const known = async () => {
      const r = await this.readRef(ref);
      return r && (await this.readRecord(r.id)) ? this.finish(ref, "", r.id) : undefined;
    };
    return (await known()) ?? withLock(this.lockFile(`once-${shortHash(ref)}`), async () => (await known()) ?? build(), onWait ? { onWait } : {});
  }

  async init(): Promise<void> {
    const root = await this.ready();
    // Remove staging left by a crashed build, unless a live builder holds its lock.
    for (const name of await readdir(join(root, "tmp"))) {
      const key = name.slice(0, name.lastIndexOf("-"));
      if (!/^(img|ref)-[a-z0-9]+$/.test(key)) continue;
      const lock = await tryLock(this.lockFile(key));
      if (!lock) continue;
      try {
        await removeTree(join(root, "tmp", name));
      } finally {
        await lock.release();
      }
    }
    for (const rec of await this.list()) {
      try {
        await this.ensureMounted(rec.id);
      } catch (err) {
        this.log.warn({ err, image: rec.id }, "could not mount cached image");
      }
    }
  }

  resolve(ref: string, onProgress?: Progress): Promise<ResolvedImage> {
    let parsed: ParsedRef;
    try {
      parsed = parseImageRef(ref);
    } catch (err) {
      return Promise.reject(err);
    }
    const progress: Progress = onProgress ?? (() => {});
    if (parsed.kind === "base" || parsed.kind === "registry") {
      const hit = this.memo.get(parsed.canonical);
      if (hit) return Promise.resolve(copyImage(hit.image));
    }
    const key = parsed.canonical;
    const running = this.inflight.get(key);
    if (running) return running.then(copyImage);
    const p = this.resolveParsed(parsed, progress)
      .catch((err: unknown) => {
        // Failures that are not the reference's fault (disk full, a broken mirror) are runtime errors.
        if (isHangarError(err)) throw err;
        this.log.error({ err, ref: key }, "image resolve failed");
        throw new HangarError("runtime_failed", `image "${key}" could not be prepared: ${message(err)}`, undefined, { cause: err });
      })
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async resolveParsed(parsed: ParsedRef, progress: Progress): Promise<ResolvedImage> {
    await this.ready();
    if (parsed.kind === "base") {
      const id = baseImageId();
      await this.ensureImage(id, progress, (staging, imageDir) => this.buildBase(id, staging, imageDir, progress));
      return this.finish(parsed.canonical, "", id);
    }
    if (parsed.kind === "registry") {
      if (this.provider?.owns(parsed)) return this.provider.resolve(parsed, progress);
      return this.resolveRegistry(parsed, progress);
    }
    if (parsed.kind === "built") {
      const known = await this.readRef(parsed.canonical);
      if (known && (await this.readRecord(known.id))) return this.finish(parsed.canonical, "", known.id);
      throw invalidImage(parsed.canonical, "no such built image here (builds make them; deploy again)");
    }
    return this.resolveLocal(parsed, progress);
  }

  /** Every `built:` reference in the store and the image it names. */
  async builtRefs(): Promise<Array<{ ref: string; id: string }>> {
    await this.ready();
    const out: Array<{ ref: string; id: string }> = [];
    for (const f of await readdir(this.path("refs"))) {
      const rec = JSON.parse(await readFile(this.path("refs", f), "utf8").catch(() => "{}")) as Partial<RefRecord>;
      if (rec.ref?.startsWith("built:") && rec.id && ID_RE.test(rec.id)) out.push({ ref: rec.ref, id: rec.id });
    }
    return out;
  }

  /** Forgets a reference (its image stays, maybe named by others). */
  async removeRef(ref: string): Promise<void> {
    await this.ready();
    await rm(this.refFile(ref), { force: true });
    this.memo.delete(ref);
  }

  /** True when image `id` is complete in the store. */
  async has(id: string): Promise<boolean> {
    await this.ready();
    return ID_RE.test(id) && !!(await this.readRecord(id));
  }

  /**
   * Adds an image a build made under its `built:` reference: `id` is the builder's image id, `oci`
   * its config, and `writeErofs(file)` writes its root filesystem as EROFS — called only when the
   * store does not have that image yet (an unchanged rebuild reuses it).
   */
  async addBuilt(ref: string, id: string, oci: OciImageConfig, writeErofs: (file: string) => Promise<void>, onProgress?: Progress): Promise<ResolvedImage> {
    const parsed = parseImageRef(ref);
    if (parsed.kind !== "built") throw new HangarError("invalid_image", `${ref} is not a built: reference`);
    if (!ID_RE.test(id)) throw new HangarError("invalid_image", `"${id}" is not an image id`);
    await this.ready();
    await this.ensureImage(id, onProgress ?? (() => {}), async (staging, imageDir) => {
      const file = join(imageDir, "image.erofs");
      await writeErofs(file);
      // how processes run (user, home, shell) comes from the image's own /etc/passwd
      const mp = join(staging, "peek");
      await mkdir(mp);
      await mountErofs(file, mp);
      try {
        return { id, ref, config: await imageConfigFromOci(mp, oci) };
      } finally {
        await unmountTree(mp);
      }
    });
    await this.writeRef({ ref, id, fingerprint: "" });
    return this.finish(ref, "", id);
  }

  /** Mounts the image and remembers it under `ref`. */
  private async finish(ref: string, fingerprint: string, id: string): Promise<ResolvedImage> {
    const rec = await this.readRecord(id);
    if (!rec) throw new HangarError("runtime_failed", `image ${id} vanished while resolving ${ref}`);
    const lowerDir = await this.ensureMounted(id);
    const image: ResolvedImage = { id, ref, lowerDir, config: rec.config };
    this.memo.set(ref, { fingerprint, image });
    return copyImage(image);
  }

  // ---- records, refs, mounts ----

  private async readRecord(id: string): Promise<ImageRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.path("images", id, "meta.json"), "utf8")) as ImageRecord;
    } catch {
      return undefined;
    }
  }

  private refFile(canonical: string): string {
    return this.path("refs", `${shortHash(canonical)}.json`);
  }

  private async readRef(canonical: string): Promise<RefRecord | undefined> {
    try {
      const r = JSON.parse(await readFile(this.refFile(canonical), "utf8")) as RefRecord;
      return r.ref === canonical && ID_RE.test(r.id) ? r : undefined;
    } catch {
      return undefined;
    }
  }

  private async writeRef(rec: RefRecord): Promise<void> {
    const file = this.refFile(rec.ref);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(rec));
    await rename(tmp, file);
  }

  /** Mounts images/<id>/image.erofs at images/<id>/rootfs unless it already is; returns the mount point. */
  private async ensureMounted(id: string): Promise<string> {
    const mp = this.path("images", id, "rootfs");
    if (this.mounted.has(id)) return mp;
    if ((await mountAt(mp))?.fsType !== "erofs") {
      await withLock(this.lockFile(`img-${id}`), async () => {
        if ((await mountAt(mp))?.fsType === "erofs") return;
        const t0 = performance.now();
        const how = await mountErofs(this.path("images", id, "image.erofs"), mp);
        this.log.info({ image: id, ms: Math.round(performance.now() - t0), how }, "mounted image");
      });
    }
    this.mounted.add(id);
    return mp;
  }

  /**
   * Returns the record of image `id`, building it first when missing: `build` fills
   * `imageDir` (with image.erofs) inside a private staging dir, and one rename publishes it.
   */
  private async ensureImage(
    id: string,
    progress: Progress,
    build: (staging: string, imageDir: string) => Promise<Omit<ImageRecord, "buildMs" | "createdAt" | "sizeBytes" | "compression">>,
  ): Promise<ImageRecord> {
    const existing = await this.readRecord(id);
    if (existing) return existing;
    const key = `img-${id}`;
    return withLock(
      this.lockFile(key),
      async () => {
        const again = await this.readRecord(id);
        if (again) return again;
        await this.removeStaging(key);
        const staging = await mkdtemp(this.path("tmp", `${key}-`));
        const t0 = performance.now();
        try {
          const imageDir = join(staging, "image");
          await mkdir(join(imageDir, "rootfs"), { recursive: true, mode: 0o755 });
          const partial = await build(staging, imageDir);
          const rec: ImageRecord = {
            ...partial,
            sizeBytes: (await stat(join(imageDir, "image.erofs"))).size,
            compression: this.opts.compression ?? "none",
            createdAt: new Date().toISOString(),
            buildMs: Math.round(performance.now() - t0),
          };
          await writeFile(join(imageDir, "meta.json"), JSON.stringify(rec, null, 2) + "\n");
          const final = this.path("images", id);
          if (await lstat(final).catch(() => undefined)) await removeTree(final); // debris without meta.json
          await rename(imageDir, final);
          this.log.info({ image: id, ref: rec.ref, ms: rec.buildMs, bytes: rec.sizeBytes }, "image built");
          return rec;
        } finally {
          await removeTree(staging);
        }
      },
      { onWait: () => progress(`waiting for another process to finish building image ${id.slice(0, 12)}…`) },
    );
  }

  /** Removes staging dirs of `key` left by crashed builders (the caller holds key's lock). */
  private async removeStaging(key: string): Promise<void> {
    for (const name of await readdir(this.path("tmp"))) {
      if (name.startsWith(`${key}-`)) await removeTree(this.path("tmp", name));
    }
  }

  // ---- base image ----

  private async buildBase(id: string, staging: string, imageDir: string, progress: Progress) {
    const mirror = await hostAptMirror();
    const rootfs = join(staging, "rootfs");
    progress(`building base image ${BASE_REF} (Debian ${BASE_SUITE} from ${mirror.debian}); this takes about a minute, once`);
    let t = performance.now();
    await debootstrap(rootfs, mirror, progress);
    const debootstrapMs = Math.round(performance.now() - t);
    await finishBaseRootfs(rootfs, mirror);
    progress(`debootstrap done in ${(debootstrapMs / 1000).toFixed(1)} s; writing the EROFS image…`);
    t = performance.now();
    await mkfsErofs(join(imageDir, "image.erofs"), rootfs, this.opts.compression);
    const size = (await stat(join(imageDir, "image.erofs"))).size;
    progress(`EROFS image written in ${((performance.now() - t) / 1000).toFixed(1)} s (${(size / 1e6).toFixed(0)} MB)`);
    return { id, ref: BASE_REF, config: BASE_CONFIG };
  }

  // ---- imports ----

  private async resolveRegistry(ref: RegistryRef, progress: Progress): Promise<ResolvedImage> {
    // A tag is pulled once and then served from the cache (use a digest reference to pin content).
    const known = await this.readRef(ref.canonical);
    if (known && (await this.readRecord(known.id))) return this.finish(ref.canonical, "", known.id);
    const insecure = isLoopbackRegistry(ref.domain) || (this.opts.insecureRegistries ?? []).includes(ref.domain);
    const timeoutMs = this.opts.registryTimeoutMs ?? 20_000;
    // Fail fast, before taking locks or creating anything, when the image cannot be reached.
    try {
      await skopeoInspect(skopeoSource(ref), { insecure, tmpDir: this.path("tmp"), timeoutMs });
    } catch (err) {
      throw invalidImage(ref.canonical, `cannot be pulled from ${ref.domain}: ${message(err)}`, err);
    }
    return this.importRef(ref, "", progress, { insecure });
  }

  private async resolveLocal(ref: LocalRef, progress: Progress): Promise<ResolvedImage> {
    const { realPath, fingerprint } = await this.checkLocalSource(ref);
    const hit = this.memo.get(ref.canonical);
    if (hit && hit.fingerprint === fingerprint) return copyImage(hit.image);
    const known = await this.readRef(ref.canonical);
    if (known && known.fingerprint === fingerprint && (await this.readRecord(known.id))) {
      return this.finish(ref.canonical, fingerprint, known.id);
    }
    return this.importRef(ref, fingerprint, progress, { realPath });
  }

  /** Validates a local source quickly and fingerprints it (cheap: stat, or index.json's hash). */
  private async checkLocalSource(ref: LocalRef): Promise<{ realPath: string; fingerprint: string }> {
    const roots = this.opts.localImportRoots;
    const outside = () => invalidImage(ref.canonical, "local image paths outside the allowed import directories are not accepted");
    // a path outside the import directories gets the same answer whether or not it exists
    const lexical = resolvePath(ref.path);
    if (roots !== undefined && !roots.some((r) => lexical === r || lexical.startsWith(r.endsWith("/") ? r : r + "/"))) throw outside();
    let realPath: string;
    try {
      realPath = await realpath(ref.path);
    } catch {
      throw invalidImage(ref.canonical, `${ref.path} does not exist`);
    }
    if (roots !== undefined) {
      const allowed = await Promise.all(roots.map((r) => realpath(r).catch(() => undefined)));
      if (!allowed.some((r) => r !== undefined && (realPath === r || realPath.startsWith(r.endsWith("/") ? r : r + "/")))) {
        throw outside();
      }
    }
    if (/[^A-Za-z0-9._\-+@/=,~]/.test(realPath)) throw invalidImage(ref.canonical, "the resolved path contains unsupported characters");
    const st = await stat(realPath);
    if (ref.kind === "oci") {
      if (!st.isDirectory()) throw invalidImage(ref.canonical, `${ref.path} is not a directory (an OCI image layout)`);
      let index: { manifests?: { annotations?: Record<string, string> }[] };
      let text: string;
      try {
        text = await readFile(join(realPath, "index.json"), "utf8");
        index = JSON.parse(text) as typeof index;
        await stat(join(realPath, "oci-layout"));
      } catch {
        throw invalidImage(ref.canonical, `${ref.path} is not an OCI image layout (no valid index.json and oci-layout)`);
      }
      const manifests = Array.isArray(index.manifests) ? index.manifests : [];
      const names = manifests.map((m) => m.annotations?.["org.opencontainers.image.ref.name"]).filter((n): n is string => !!n);
      if (ref.tag !== undefined && !names.includes(ref.tag)) {
        throw invalidImage(ref.canonical, `no tag "${ref.tag}" in the layout (tags: ${names.join(", ") || "none"})`);
      }
      if (ref.tag === undefined && manifests.length !== 1) {
        throw invalidImage(ref.canonical, `the layout holds ${manifests.length} images; name one with :<tag> (tags: ${names.join(", ") || "none"})`);
      }
      return { realPath, fingerprint: `index:${shortHash(text)}` };
    }
    if (!st.isFile()) throw invalidImage(ref.canonical, `${ref.path} is not a file (a ${ref.kind === "oci-archive" ? "tar of an OCI layout" : "docker save tarball"})`);
    return { realPath, fingerprint: `file:${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}` };
  }

  /** Copies the source to a staging layout (skopeo), then builds the image by its digest once. */
  private async importRef(
    ref: LocalRef | RegistryRef,
    fingerprint: string,
    progress: Progress,
    how: { realPath?: string; insecure?: boolean },
  ): Promise<ResolvedImage> {
    const key = `ref-${shortHash(ref.canonical)}`;
    const id = await withLock(
      this.lockFile(key),
      async () => {
        const known = await this.readRef(ref.canonical);
        if (known && known.fingerprint === fingerprint && (await this.readRecord(known.id))) return known.id;
        await this.removeStaging(key);
        const staging = await mkdtemp(this.path("tmp", `${key}-`));
        try {
          const layout = join(staging, "layout");
          const tmpDir = join(staging, "tmp");
          await mkdir(tmpDir);
          const source = ref.kind === "registry" ? skopeoSource(ref) : `${ref.kind}:${how.realPath}${ref.tag !== undefined ? ":" + ref.tag : ""}`;
          progress(`importing ${ref.canonical}…`);
          const t0 = performance.now();
          try {
            await skopeoCopy(source, layout, { insecure: how.insecure, tmpDir, timeoutMs: IMPORT_TIMEOUT_MS, onLine: progress });
          } catch (err) {
            throw invalidImage(ref.canonical, `could not be read: ${message(err)}`, err);
          }
          let image;
          try {
            image = await readLayoutImage(layout);
            checkPlatform(image.config);
          } catch (err) {
            throw invalidImage(ref.canonical, message(err), err);
          }
          const id = image.digest.slice("sha256:".length);
          await this.ensureImage(id, progress, async (bstaging, imageDir) => {
            const bundle = join(bstaging, "bundle");
            progress(`unpacking ${image.digest.slice(0, 19)}…`);
            try {
              await umociUnpack(layout, bundle, IMPORT_TIMEOUT_MS);
            } catch (err) {
              throw invalidImage(ref.canonical, `layers could not be unpacked: ${message(err)}`, err);
            }
            let config: ImageConfig;
            try {
              config = await imageConfigFromOci(join(bundle, "rootfs"), image.config);
            } catch (err) {
              throw invalidImage(ref.canonical, message(err), err);
            }
            progress("writing the EROFS image…");
            await mkfsErofs(join(imageDir, "image.erofs"), join(bundle, "rootfs"), this.opts.compression);
            return { id, ref: ref.canonical, digest: image.digest, config };
          });
          await this.writeRef({ ref: ref.canonical, id, fingerprint });
          progress(`imported ${ref.canonical} as ${id.slice(0, 12)} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
          return id;
        } finally {
          await removeTree(staging);
        }
      },
      { onWait: () => progress(`waiting for another process importing ${ref.canonical}…`) },
    );
    return this.finish(ref.canonical, fingerprint, id);
  }

  // ---- housekeeping ----

  /** Every complete image in the store. */
  async list(): Promise<ImageRecord[]> {
    const root = await this.ready();
    const out: ImageRecord[] = [];
    for (const id of await readdir(join(root, "images"))) {
      if (!ID_RE.test(id)) continue;
      const rec = await this.readRecord(id);
      if (rec) out.push(rec);
    }
    return out;
  }

  /**
   * Unmounts and deletes an image and the references that point to it. Sandboxes still using it
   * keep their (lazily unmounted) lower until they end.
   */
  async remove(id: string): Promise<void> {
    if (!ID_RE.test(id)) throw new HangarError("invalid_image", `"${id}" is not an image id`);
    await this.ready();
    await withLock(this.lockFile(`img-${id}`), async () => {
      const dir = this.path("images", id);
      if (!(await lstat(dir).catch(() => undefined))) return;
      await unmountTree(dir);
      for (const f of await readdir(this.path("refs"))) {
        const rec = JSON.parse(await readFile(this.path("refs", f), "utf8").catch(() => "{}")) as Partial<RefRecord>;
        if (rec.id === id) await removeTree(this.path("refs", f));
      }
      await removeTree(dir);
    });
    this.mounted.delete(id);
    for (const [ref, m] of this.memo) if (m.image.id === id) this.memo.delete(ref);
  }

  /** The id the base image has (or will have once built) on this node. */
  static baseImageId(): string {
    return baseImageId();
  }
}

/** The machine-wide cache tests, CI and prebuild use by default. */
export const DEFAULT_IMAGE_CACHE_DIR = "/var/cache/hangar/images";

/**
 * Builds (once) and mounts the base image in `dir`; for scripts that prebuild it, e.g.
 * `node packages/runtime/dist/images/prebuild.js /var/cache/hangar/images`.
 */
export async function buildBaseImage(dir: string, onProgress?: Progress): Promise<ResolvedImage> {
  return new LocalImageStore({ dir }).resolve(BASE_REF, onProgress);
}
