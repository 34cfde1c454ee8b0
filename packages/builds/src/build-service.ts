// Builds from source as Blaxel's tools drive them: a resource asks for an upload, the zip arrives
// on a single-use URL (checked and unpacked at once, so a hostile archive is a 4xx), and a worker
// claims the build from the store with a lease, builds it behind the sandbox wall and hands the
// image to the resource. State and logs live in the store: a server killed mid-build leaves a
// lease that runs out, and the next server (or another one) claims the build again.

import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, promises as fs } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { HangarError, randomId, silentLogger, type Logger } from "@hangar/common";
import type { LocalImageStore } from "@hangar/runtime";
import type { BuildRecord, Store, WorkspaceRecord } from "@hangar/store";
import { extractZip } from "./archive.js";
import { SEVERITY, type BuildahBuilder, type BuildOutput } from "./buildah.js";
import { planBuild } from "./detect.js";
import { prepareDockerfile } from "./dockerfile.js";

/** What a kind of resource does as its build moves along (sandboxes, agents, functions, jobs). */
export interface BuildTarget {
  /** The build started: the resource reads BUILDING. */
  building(build: BuildRecord): Promise<void>;
  /** The build made an image: the resource moves to it (DEPLOYING, then DEPLOYED). */
  deploy(build: BuildRecord, image: BuildOutput): Promise<void>;
  /** The build failed: the resource says so and keeps what it ran before. */
  failed(build: BuildRecord, message: string): Promise<void>;
  /** How to plan the build (a code-mode function's files); default: detected. */
  planOptions?(build: BuildRecord): Promise<{ codeMode?: boolean }>;
}

export interface BuildServiceOptions {
  store: Store;
  builder: BuildahBuilder;
  /** Durable per-build files (the upload, the unpacked context), e.g. <data-dir>/builds. */
  dir: string;
  /** Where contexts are staged for the builder (readable by its user). */
  stagingDir: string;
  logger?: Logger;
  targets: Record<string, BuildTarget>;
  uploadTtlMs?: number;
  uploadLimitBytes?: number;
  leaseMs?: number;
  /** Builds run at once by this server. */
  concurrency?: number;
  /** How long BUILDING stays visible at least when nobody read it (`bl` polls every 3 s). */
  minBuildingMs?: number;
  /** Attempts before a build whose server kept dying is failed. */
  maxAttempts?: number;
  /** The image store built images go to, for garbage collection. */
  images?: LocalImageStore | null;
  /** Images resources use now (e.g. every live sandbox's spec image); the rest of the built ones may go. */
  imagesInUse?: () => Promise<Set<string>>;
  /** A workspace's build cache is pruned past this many bytes (default 10 GiB). */
  cacheLimitBytes?: number;
}

const now = () => new Date().toISOString();
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

export class BuildService {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly owner = `srv-${randomBytes(6).toString("hex")}`;
  private readonly opts: Required<Omit<BuildServiceOptions, "logger">>;
  private running = new Map<string, AbortController>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private pumping = false;

  constructor(opts: BuildServiceOptions) {
    this.store = opts.store;
    this.log = opts.logger ?? silentLogger;
    this.opts = {
      uploadTtlMs: 15 * 60_000,
      uploadLimitBytes: 512 * 1024 * 1024,
      leaseMs: 30_000,
      concurrency: 1,
      minBuildingMs: 3_500,
      maxAttempts: 3,
      images: null,
      imagesInUse: async () => new Set<string>(),
      cacheLimitBytes: 10 * 1024 ** 3,
      ...opts,
    } as Required<Omit<BuildServiceOptions, "logger">>;
  }

  // ---- uploads

  /** A new build of a resource waiting for its source; returns the single-use upload token. */
  async createUpload(ws: WorkspaceRecord, resourceType: string, resourceName: string): Promise<{ build: BuildRecord; token: string }> {
    if (!this.opts.targets[resourceType] && resourceType !== "images") throw new HangarError("validation_failed", `cannot build ${resourceType}`);
    const token = randomBytes(32).toString("base64url");
    const t = now();
    const build: BuildRecord = {
      id: randomId(),
      workspaceId: ws.id,
      resourceType,
      resourceName,
      status: "UPLOADING",
      uploadExpiresAt: new Date(Date.now() + this.opts.uploadTtlMs).toISOString(),
      sourceDigest: null,
      sourceBytes: null,
      image: null,
      error: null,
      attempts: 0,
      leaseOwner: null,
      leaseExpiresAt: null,
      observedAt: null,
      stats: {},
      createdAt: t,
      updatedAt: t,
      startedAt: null,
      finishedAt: null,
    };
    await this.store.builds.insert(build, sha256(token));
    return { build, token };
  }

  /**
   * Takes the zip PUT to an upload URL: stored under the build (at most uploadLimitBytes), then
   * unpacked and checked. A bad archive fails the build with a 4xx; nothing is kept of it.
   */
  async receiveUpload(token: string, body: Readable): Promise<BuildRecord> {
    const build = await this.store.builds.findByUploadToken(sha256(token), now());
    if (!build) throw new HangarError("not_found", "this upload URL is unknown, used or expired; ask for a new one");
    // single use: the token is spent before the bytes are read
    const claimed = await this.store.builds.update(build.id, { uploadTokenHash: null, updatedAt: now() }, ["UPLOADING"]);
    if (!claimed) throw new HangarError("not_found", "this upload URL was used already");
    const dir = join(this.opts.dir, build.id);
    const zip = join(dir, "source.zip");
    const context = join(dir, "context");
    try {
      await fs.mkdir(context, { recursive: true, mode: 0o700 });
      const hash = createHash("sha256");
      let bytes = 0;
      const limit = this.opts.uploadLimitBytes;
      body.on("data", (b: Buffer) => {
        bytes += b.length;
        hash.update(b);
        if (bytes > limit) body.destroy(new HangarError("payload_too_large", `the upload is larger than ${Math.round(limit / 1048576)} MiB`));
      });
      await pipeline(body, createWriteStream(zip, { mode: 0o600 }));
      const counts = await extractZip(zip, context);
      await fs.rm(zip, { force: true });
      const queued = await this.store.builds.update(build.id, { status: "QUEUED", sourceDigest: hash.digest("hex"), sourceBytes: bytes, updatedAt: now() }, ["UPLOADING"]);
      await this.appendLog(build.id, `source received: ${bytes} bytes, ${counts.files} files`);
      await this.target(build)?.building(queued ?? build);
      this.kick();
      return queued ?? build;
    } catch (e) {
      await fs.rm(dir, { recursive: true, force: true });
      const message = e instanceof Error ? e.message : String(e);
      await this.fail(build, `upload refused: ${message}`);
      throw e;
    }
  }

  // ---- the worker

  /**
   * Builds left BUILDING by a server that is gone become claimable now instead of when their lease
   * runs out. Only for a store no other server uses (the embedded one, behind the data dir lock).
   */
  async releaseOrphans(): Promise<number> {
    let n = 0;
    for (const b of await this.store.builds.listByStatus(["BUILDING"])) {
      if (b.leaseOwner !== this.owner && (await this.store.builds.update(b.id, { leaseExpiresAt: new Date(0).toISOString() }, ["BUILDING"]))) n++;
    }
    return n;
  }

  /** Starts claiming builds (also ones whose server died mid-build). */
  start(): void {
    this.timer = setInterval(() => this.kick(), 1_000);
    this.timer.unref();
    this.kick();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const c of this.running.values()) c.abort();
  }

  /** Claims and runs builds while there is room. */
  kick(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    void (async () => {
      try {
        await this.expireUploads();
        while (!this.closed && this.running.size < this.opts.concurrency) {
          const t = Date.now();
          const build = await this.store.builds.claim(this.owner, new Date(t).toISOString(), new Date(t + this.opts.leaseMs).toISOString());
          if (!build) break;
          const ctl = new AbortController();
          this.running.set(build.id, ctl);
          void this.run(build, ctl.signal).finally(() => {
            this.running.delete(build.id);
            this.kick();
          });
        }
      } catch (e) {
        this.log.warn({ err: e }, "claiming builds failed");
      } finally {
        this.pumping = false;
      }
    })();
  }

  /** Uploads that never came: the build fails and says so on its resource. */
  private async expireUploads(): Promise<void> {
    const t = now();
    for (const b of await this.store.builds.listByStatus(["UPLOADING"])) {
      if (b.uploadExpiresAt <= t) await this.fail(b, "the source was never uploaded (the upload URL expired)");
    }
  }

  private async run(build: BuildRecord, signal: AbortSignal): Promise<void> {
    const t0 = Date.now();
    const renew = setInterval(() => {
      void this.store.builds.renew(build.id, this.owner, new Date(Date.now() + this.opts.leaseMs).toISOString()).then((held) => {
        if (!held) this.running.get(build.id)?.abort();
      });
    }, Math.max(1_000, this.opts.leaseMs / 3));
    renew.unref();
    const logs = this.logBuffer(build.id);
    try {
      if (build.attempts > this.opts.maxAttempts) throw new HangarError("build_failed", `the build was interrupted ${build.attempts - 1} times (server restarts)`);
      if (build.attempts > 1) logs.push(`resuming the build after a server restart (attempt ${build.attempts})`, SEVERITY.info);
      await this.store.builds.update(build.id, { startedAt: build.startedAt ?? now(), updatedAt: now() });
      await this.target(build)?.building(build);
      const out = await this.buildImage(build, logs.push, signal);
      await this.holdBuildingVisible(build.id, t0);
      const done = (await this.store.builds.update(build.id, { status: "BUILT", image: out.ref, stats: { ms: Date.now() - t0, reused: out.reused }, finishedAt: now(), updatedAt: now() }, ["BUILDING"])) ?? build;
      logs.push(`built ${out.ref} in ${((Date.now() - t0) / 1000).toFixed(1)} s`, SEVERITY.info);
      await logs.flush();
      // unused images go before the deploy is seen (the one just built is kept), so what a client
      // does once the resource is deployed finds the collection done
      await this.collectGarbage(out.ref).catch((e) => this.log.warn({ err: e }, "collecting unused built images failed"));
      await this.target(build)?.deploy(done, out);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      await logs.flush();
      // aborted: this server stops or lost the lease; the build stays claimable and resumes elsewhere
      if (!signal.aborted) await this.fail(build, message);
    } finally {
      clearInterval(renew);
      await logs.flush();
      if (![...this.running.keys()].some((id) => id !== build.id)) {
        await this.opts.builder.prune(build.workspaceId, this.opts.cacheLimitBytes).catch((e) => this.log.warn({ err: e }, "pruning the build cache failed"));
      }
    }
  }

  /**
   * Removes built images of this store's workspaces that nothing uses: not a live resource's image,
   * not the latest push of an image (bl push), not `keepAlso`. Images other refs still name stay.
   */
  async collectGarbage(keepAlso?: string): Promise<number> {
    const images = this.opts.images;
    if (!images) return 0;
    const inUse = await this.opts.imagesInUse();
    if (keepAlso) inUse.add(keepAlso);
    const mine = new Set((await this.store.workspaces.list()).map((w) => w.id));
    const refs = await images.builtRefs();
    const keep = new Set(inUse);
    for (const b of await this.store.builds.listByStatus(["BUILT"])) {
      if (b.resourceType !== "images") continue;
      const [latest] = await this.store.builds.listForResource(b.workspaceId, b.resourceType, b.resourceName, 1);
      if (latest?.image) keep.add(latest.image);
    }
    let removed = 0;
    for (const r of refs) {
      const ws = /^built:([^/]+)\//.exec(r.ref)?.[1];
      if (!ws || !mine.has(ws) || keep.has(r.ref)) continue;
      await images.removeRef(r.ref);
      removed++;
    }
    if (!removed) return 0;
    const named = new Set((await images.builtRefs()).map((r) => r.id));
    for (const id of new Set(refs.map((r) => r.id))) if (!named.has(id)) await images.remove(id);
    return removed;
  }

  /** Unpacked context → Dockerfile (the user's or detected) → buildah → image store. */
  private async buildImage(build: BuildRecord, log: (line: string, severity: number) => void, signal: AbortSignal): Promise<BuildOutput> {
    const source = join(this.opts.dir, build.id, "context");
    const context = join(this.opts.stagingDir, `ctx-${build.id}`);
    await fs.rm(context, { recursive: true, force: true });
    await fs.cp(source, context, { recursive: true });
    try {
      const plan = await planBuild(context, (await this.opts.targets[build.resourceType]?.planOptions?.(build)) ?? {});
      log(plan.summary, SEVERITY.info);
      const prepared = prepareDockerfile(plan.dockerfile, plan.buildArgs);
      for (const n of prepared.notes) log(n, SEVERITY.info);
      const dockerfile = ".hangar.Dockerfile";
      await fs.writeFile(join(context, dockerfile), prepared.text);
      return await this.opts.builder.build({
        id: build.id,
        workspace: build.workspaceId,
        kind: build.resourceType,
        name: build.resourceName,
        contextDir: context,
        dockerfile,
        images: prepared.images,
        buildArgs: plan.buildArgs,
        onLog: log,
        signal,
      });
    } finally {
      await fs.rm(context, { recursive: true, force: true });
    }
  }

  /** `bl` must see BUILDING in one of its 3 s polls: hold it until a client read it, or minBuildingMs. */
  private async holdBuildingVisible(id: string, since: number): Promise<void> {
    while (Date.now() - since < this.opts.minBuildingMs) {
      const b = await this.store.builds.get(id);
      if (!b || b.observedAt) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async fail(build: BuildRecord, message: string): Promise<void> {
    const failed = await this.store.builds.update(build.id, { status: "FAILED", error: message, uploadTokenHash: null, finishedAt: now(), updatedAt: now() }, ["UPLOADING", "QUEUED", "BUILDING"]);
    if (!failed) return;
    await this.appendLog(build.id, `build failed: ${message}`, SEVERITY.error);
    await this.target(build)?.failed(failed, message).catch((e) => this.log.warn({ err: e, build: build.id }, "marking the resource failed did not work"));
  }

  private target(build: BuildRecord): BuildTarget | undefined {
    return this.opts.targets[build.resourceType];
  }

  // ---- reading

  /** Marks the resource's running build as seen by a client (it may now leave BUILDING). */
  async observe(workspaceId: string, resourceType: string, resourceName: string): Promise<void> {
    const [b] = await this.store.builds.listForResource(workspaceId, resourceType, resourceName, 1);
    if (b && !b.observedAt && (b.status === "QUEUED" || b.status === "BUILDING")) await this.store.builds.update(b.id, { observedAt: now() });
  }

  latest(workspaceId: string, resourceType: string, resourceName: string): Promise<BuildRecord | null> {
    return this.store.builds.listForResource(workspaceId, resourceType, resourceName, 1).then((l) => l[0] ?? null);
  }

  /** Log lines of a resource's builds since `since` (ISO), oldest first. */
  async logsOf(workspaceId: string, resourceType: string, resourceName: string, since?: string): Promise<Array<{ time: string; severity: number; message: string; buildId: string }>> {
    const builds = (await this.store.builds.listForResource(workspaceId, resourceType, resourceName, 5)).reverse();
    const out: Array<{ time: string; severity: number; message: string; buildId: string }> = [];
    for (const b of builds) {
      if (since && b.finishedAt && b.finishedAt < since) continue;
      for (const l of await this.store.builds.logs(b.id)) if (!since || l.time >= since) out.push({ ...l, buildId: b.id });
    }
    return out;
  }

  private appendLog(buildId: string, message: string, severity: number = SEVERITY.info): Promise<void> {
    return this.store.builds.appendLogs(buildId, [{ time: now(), severity, message }]).catch(() => undefined);
  }

  /** Collects log lines and writes them to the store in batches (every 200 ms). */
  private logBuffer(buildId: string): { push: (line: string, severity: number) => void; flush: () => Promise<void> } {
    let pending: Array<{ time: string; severity: number; message: string }> = [];
    let writing: Promise<void> = Promise.resolve();
    let timer: NodeJS.Timeout | null = null;
    const flush = () => {
      if (timer) clearTimeout(timer);
      timer = null;
      const lines = pending;
      pending = [];
      writing = writing.then(() => (lines.length ? this.store.builds.appendLogs(buildId, lines).catch((e) => this.log.warn({ err: e }, "writing build logs failed")) : undefined));
      return writing;
    };
    return {
      push: (line, severity) => {
        pending.push({ time: now(), severity, message: line.slice(0, 8192) });
        timer ??= setTimeout(() => void flush(), 200);
      },
      flush,
    };
  }

}
