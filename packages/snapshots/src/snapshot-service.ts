// Snapshots, forks and archives of sandboxes over the store and the node runtime. A capture is a
// directory under the data dir (files.tar, and img/ + meta.json when it holds processes and
// memory); its record is written `pending` with a lease before the capture starts, so a server
// that dies mid-capture leaves a record the next start fails visibly (recover()).

import { promises as fs } from "node:fs";
import { join } from "node:path";
import { HangarError, type Logger, describeNameProblem, randomId, silentLogger } from "@hangar/common";
import { type NodeSandboxSpec, type SandboxService, type SandboxSpecDoc, revealSpec } from "@hangar/control-plane";
import { type ListQuery, type Page, type SandboxRecord, type SecretBox, type SnapshotRecord, type Store, StoreConflictError, StoreCursorError, type WorkspaceRecord } from "@hangar/store";

/** What the snapshot service needs from the node runtime (LocalNode implements it). */
export interface SnapshotNodePort {
  /** Captures a running sandbox into `dir` without stopping it: files, and processes when asked and possible. */
  snapshot(id: string, dir: string, opts: { processes: boolean }): Promise<{ processes: boolean; bytes: number; reason?: string }>;
  /** Creates and starts a sandbox from a capture; says whether its processes came along. */
  startFrom(spec: NodeSandboxSpec, dir: string, opts: { processes: boolean }): Promise<{ processes: boolean; reason?: string }>;
  destroy(id: string): Promise<void>;
}

export interface SnapshotServiceDeps {
  store: Store;
  sandboxes: SandboxService;
  node: SnapshotNodePort;
  secrets: SecretBox;
  /** Where captures live (`<dataDir>/snapshots`). */
  dir: string;
  logger?: Logger;
}

export interface SnapshotInput {
  name?: unknown;
  source?: { name?: unknown; kind?: unknown } | null;
}

export interface ForkInput {
  targetName?: unknown;
  targetType?: unknown;
  snapshotId?: unknown;
  envs?: unknown;
}

export interface ForkResult {
  name: string;
  type: "sandbox";
  snapshotId?: string;
  /** Whether the fork started with the source's processes and memory (else with its files only). */
  processes: boolean;
}

/** How long a capture may run before its record counts as abandoned. */
const LEASE_MS = 10 * 60_000;
/** Archive records of sandboxes that no longer exist are removed this often. */
const SWEEP_MS = 60_000;

export class SnapshotService {
  private readonly store: Store;
  private readonly sandboxes: SandboxService;
  private readonly node: SnapshotNodePort;
  private readonly secrets: SecretBox;
  private readonly root: string;
  private readonly log: Logger;
  /** This process's lease owner id. */
  readonly owner = `snap-${randomId(10)}`;
  private timer: NodeJS.Timeout | null = null;

  constructor(deps: SnapshotServiceDeps) {
    this.store = deps.store;
    this.sandboxes = deps.sandboxes;
    this.node = deps.node;
    this.secrets = deps.secrets;
    this.root = deps.dir;
    this.log = deps.logger ?? silentLogger;
  }

  /** Directory of a capture. */
  dirOf(id: string): string {
    return join(this.root, id);
  }

  private lease(): { leaseOwner: string; leaseExpiresAt: string } {
    return { leaseOwner: this.owner, leaseExpiresAt: new Date(Date.now() + LEASE_MS).toISOString() };
  }

  /** A capture of `sb` about to be taken: pending, under this server's lease. */
  private pending(ws: WorkspaceRecord, sb: SandboxRecord, kind: SnapshotRecord["kind"], name: string, displayName: string): SnapshotRecord {
    const now = new Date().toISOString();
    return {
      id: randomId(12),
      workspaceId: ws.id,
      name,
      displayName,
      labels: {},
      kind,
      sourceName: sb.name,
      sourceId: sb.id,
      status: "pending",
      spec: sb.spec,
      processes: false,
      sizeBytes: null,
      error: null,
      ...this.lease(),
      createdAt: now,
      updatedAt: now,
    };
  }

  // ---- snapshots

  /** Captures a sandbox (files always; processes and memory where the runtime can). */
  async create(ws: WorkspaceRecord, input: SnapshotInput, sourceName?: string): Promise<SnapshotRecord> {
    if (input !== null && typeof input !== "object") throw new HangarError("validation_failed", "body: must be an object");
    const source = sourceName ?? input.source?.name;
    if (typeof source !== "string" || !source) throw new HangarError("validation_failed", "source.name: the sandbox to capture is required", { field: "source.name" });
    if (input.source?.kind !== undefined && input.source.kind !== "sandbox") throw new HangarError("validation_failed", 'source.kind: only "sandbox" can be captured', { field: "source.kind" });
    let name: string;
    if (input.name !== undefined && input.name !== null && input.name !== "") {
      if (typeof input.name !== "string") throw new HangarError("invalid_name", "name: must be a string");
      const problem = describeNameProblem(input.name);
      if (problem) throw new HangarError("invalid_name", `name: ${problem}`);
      name = input.name;
    } else name = `${source.slice(0, 36)}-${randomId(8)}`;
    const sb = await this.sandboxes.get(ws, source);
    if (sb.status !== "DEPLOYED") throw new HangarError("conflict", `sandbox '${source}' is ${sb.status}; only a deployed sandbox can be captured`);
    const rec = this.pending(ws, sb, "snapshot", name, name);
    try {
      await this.store.snapshots.insert(rec);
    } catch (e) {
      if (e instanceof StoreConflictError) throw new HangarError("snapshot_already_exists", `snapshot '${name}' already exists in workspace '${ws.name}'`);
      throw e;
    }
    return this.capture(rec, sb, true);
  }

  /** Takes the capture of a pending record: ready with what it holds, or failed (and the error thrown). */
  private async capture(rec: SnapshotRecord, sb: SandboxRecord, processes: boolean): Promise<SnapshotRecord> {
    const dir = this.dirOf(rec.id);
    try {
      const cap = await this.node.snapshot(sb.id, dir, { processes });
      if (cap.reason) this.log.info({ snapshot: rec.name, sandbox: sb.name, why: cap.reason }, "snapshot holds files only");
      const done = await this.store.snapshots.update(
        rec.id,
        { status: "ready", processes: cap.processes, sizeBytes: cap.bytes, leaseOwner: null, leaseExpiresAt: null, updatedAt: new Date().toISOString() },
        ["pending"],
      );
      if (!done) throw new HangarError("conflict", `snapshot '${rec.name}' was deleted while it was being taken`);
      return done;
    } catch (e) {
      const message = (e as Error).message;
      await this.store.snapshots.update(rec.id, { status: "failed", error: message, leaseOwner: null, leaseExpiresAt: null, updatedAt: new Date().toISOString() }).catch(() => null);
      await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
  }

  /** A snapshot of the workspace by id or name; archives are not snapshots. */
  async get(ws: WorkspaceRecord, idOrName: string): Promise<SnapshotRecord> {
    const rec = await this.store.snapshots.find(ws.id, idOrName);
    if (!rec || rec.kind !== "snapshot") throw new HangarError("snapshot_not_found", `snapshot '${idOrName}' not found in workspace '${ws.name}'`);
    return rec;
  }

  async list(ws: WorkspaceRecord, query: ListQuery): Promise<Page<SnapshotRecord>> {
    try {
      return await this.store.snapshots.list(ws.id, query);
    } catch (e) {
      if (e instanceof StoreCursorError) throw new HangarError("invalid_cursor", e.message);
      throw e;
    }
  }

  /** Snapshots captured from the sandbox named so (404 when there is no such sandbox). */
  async listForSandbox(ws: WorkspaceRecord, sandboxName: string): Promise<SnapshotRecord[]> {
    await this.sandboxes.get(ws, sandboxName);
    return this.store.snapshots.listForSource(ws.id, sandboxName);
  }

  /** Removes a snapshot and its files; with `sandboxName`, only one captured from that sandbox. */
  async delete(ws: WorkspaceRecord, idOrName: string, sandboxName?: string): Promise<void> {
    const rec = await this.get(ws, idOrName);
    if (sandboxName !== undefined && rec.sourceName !== sandboxName) throw new HangarError("snapshot_not_found", `snapshot '${idOrName}' was not captured from sandbox '${sandboxName}'`);
    if (rec.status === "pending") throw new HangarError("snapshot_not_ready", `snapshot '${rec.name}' is still being taken`);
    await this.store.snapshots.delete(rec.id);
    await fs.rm(this.dirOf(rec.id), { recursive: true, force: true });
  }

  /** Whether the sandbox a snapshot came from is gone. */
  async sourceDeleted(rec: SnapshotRecord): Promise<boolean> {
    const sb = await this.store.sandboxes.getById(rec.sourceId);
    return !sb || sb.status === "DELETING" || sb.status === "TERMINATED";
  }

  private ready(rec: SnapshotRecord): void {
    if (rec.status !== "ready") throw new HangarError("snapshot_not_ready", `snapshot '${rec.name}' is ${rec.status}`);
  }

  /**
   * Restores a sandbox to one of its snapshots: its instance is torn down and started again from
   * the capture (files, and processes where the capture holds them); name, URL and previews stay.
   */
  async restore(ws: WorkspaceRecord, sandboxName: string, idOrName: string): Promise<{ name: string; snapshotId: string; processes: boolean }> {
    const sb = await this.sandboxes.get(ws, sandboxName);
    const snap = await this.get(ws, idOrName);
    if (snap.sourceName !== sb.name) throw new HangarError("validation_failed", `snapshot '${snap.name}' was captured from '${snap.sourceName}', not from '${sb.name}'; fork it instead`);
    this.ready(snap);
    const image = (snap.spec as unknown as SandboxSpecDoc).runtime?.image;
    if (image !== (sb.spec as unknown as SandboxSpecDoc).runtime.image) throw new HangarError("validation_failed", `snapshot '${snap.name}' was taken on image ${image}; the sandbox now runs another`);
    let got: { processes: boolean; reason?: string } = { processes: false };
    await this.sandboxes.relaunch(sb, ws, ["DEPLOYED"], `restoring snapshot '${snap.name}'`, async (spec) => {
      got = await this.node.startFrom(spec, this.dirOf(snap.id), { processes: snap.processes });
    });
    await this.sandboxes.recordEvent(sb.id, "DEPLOYED", got.processes ? `restored snapshot '${snap.name}' with its processes and memory` : `restored the files of snapshot '${snap.name}'${got.reason ? ` (${got.reason})` : ""}`);
    return { name: sb.name, snapshotId: snap.id, processes: got.processes };
  }

  // ---- forks

  /**
   * A new sandbox named `targetName` from a snapshot, or from a live sandbox (captured now, without
   * stopping it): the same image, memory, ports, environment (plus `envs`), network policy and
   * region; its own name, id, address and network identity. Processes and memory come along where
   * the capture holds them; otherwise it starts on the files, and its events say why.
   */
  async fork(ws: WorkspaceRecord, from: { sandbox: string } | { snapshot: string }, body: ForkInput): Promise<ForkResult> {
    if (body === null || typeof body !== "object") throw new HangarError("validation_failed", "body: must be an object");
    const target = body.targetName;
    if (typeof target !== "string" || !target) throw new HangarError("validation_failed", "targetName: the name of the new sandbox is required", { field: "targetName" });
    const problem = describeNameProblem(target);
    if (problem) throw new HangarError("invalid_name", `targetName: ${problem}`);
    if (body.targetType !== undefined && body.targetType !== "sandbox") throw new HangarError("validation_failed", 'targetType: only "sandbox" forks are supported', { field: "targetType" });
    const envs = parseEnvs(body.envs);
    const existing = await this.store.sandboxes.get(ws.id, target);
    if (existing && existing.status !== "FAILED" && existing.status !== "TERMINATED" && !existing.terminatedAt) {
      throw new HangarError("sandbox_already_exists", `sandbox '${target}' already exists in workspace '${ws.name}'`, { sandbox_name: target });
    }
    const snapshotId = "snapshot" in from ? from.snapshot : typeof body.snapshotId === "string" && body.snapshotId ? body.snapshotId : null;
    if (snapshotId !== null) {
      if ("sandbox" in from) await this.sandboxes.get(ws, from.sandbox);
      const snap = await this.get(ws, snapshotId);
      this.ready(snap);
      const processes = await this.startFork(ws, target, snap.spec, envs, this.dirOf(snap.id), snap.processes, `snapshot '${snap.name}'`);
      return { name: target, type: "sandbox", snapshotId: snap.id, processes };
    }
    const sb = await this.sandboxes.get(ws, (from as { sandbox: string }).sandbox);
    if (sb.status !== "DEPLOYED") throw new HangarError("conflict", `sandbox '${sb.name}' is ${sb.status}; only a deployed sandbox can be forked`);
    // a capture of its own, removed once the fork runs
    const dir = join(this.root, `tmp-${randomId(10)}`);
    try {
      const cap = await this.node.snapshot(sb.id, dir, { processes: true });
      const processes = await this.startFork(ws, target, sb.spec, envs, dir, cap.processes, `sandbox '${sb.name}'`, cap.reason);
      return { name: target, type: "sandbox", processes };
    } finally {
      await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private async startFork(ws: WorkspaceRecord, target: string, sealed: Record<string, unknown>, envs: { name: string; value: string }[], dir: string, processes: boolean, what: string, why?: string): Promise<boolean> {
    const spec = forkSpec(revealSpec(this.secrets, sealed as unknown as SandboxSpecDoc), envs);
    let got: { processes: boolean; reason?: string } = { processes: false, ...(why ? { reason: why } : {}) };
    const rec = await this.sandboxes.create(
      ws,
      { metadata: { name: target }, spec },
      {
        start: async (s) => {
          got = await this.node.startFrom(s, dir, { processes });
          if (!processes && why) got.reason = why;
        },
      },
    );
    await this.sandboxes.recordEvent(rec.id, "DEPLOYED", got.processes ? `forked from ${what} with its processes and memory` : `forked from ${what} with its files${got.reason ? `; processes not kept: ${got.reason}` : ""}`);
    return got.processes;
  }

  // ---- archives

  /**
   * Archives a deployed sandbox: its files go to disk, then its instance (container, network slot,
   * memory) is removed; it reads ARCHIVED. Processes are not kept.
   */
  async archive(ws: WorkspaceRecord, name: string): Promise<SandboxRecord> {
    const sb = await this.sandboxes.get(ws, name);
    if (sb.status === "ARCHIVED" || sb.status === "ARCHIVING") return sb;
    const archiving = await this.sandboxes.transition(sb.id, ["DEPLOYED"], "ARCHIVING", "archiving: writing the files to disk");
    if (!archiving) throw new HangarError("conflict", `sandbox '${name}' is ${sb.status}; only a deployed sandbox can be archived`);
    const old = await this.store.snapshots.find(ws.id, archiveName(sb.id));
    if (old) {
      await this.store.snapshots.delete(old.id);
      await fs.rm(this.dirOf(old.id), { recursive: true, force: true });
    }
    const rec = this.pending(ws, sb, "archive", archiveName(sb.id), sb.name);
    await this.store.snapshots.insert(rec);
    let done: SnapshotRecord;
    try {
      done = await this.capture(rec, sb, false);
    } catch (e) {
      await this.store.snapshots.delete(rec.id).catch(() => false);
      await this.sandboxes.transition(sb.id, ["ARCHIVING"], "DEPLOYED", `archive failed, the sandbox keeps running: ${(e as Error).message}`);
      throw e;
    }
    await this.node.destroy(sb.id);
    const archived = await this.sandboxes.transition(sb.id, ["ARCHIVING"], "ARCHIVED", `archived: ${done.sizeBytes ?? 0} bytes of files kept on disk; container, network and memory freed`);
    return archived ?? (await this.sandboxes.get(ws, name));
  }

  /** Starts an archived sandbox again on its archived files (fresh processes); it reads DEPLOYED. */
  async unarchive(ws: WorkspaceRecord, name: string): Promise<SandboxRecord> {
    const sb = await this.sandboxes.get(ws, name);
    if (sb.status === "DEPLOYED") return sb;
    if (sb.status !== "ARCHIVED") throw new HangarError("conflict", `sandbox '${name}' is ${sb.status}; only an archived sandbox can be unarchived`);
    const arc = await this.store.snapshots.find(ws.id, archiveName(sb.id));
    if (!arc || arc.status !== "ready") throw new HangarError("conflict", `the archive of sandbox '${name}' is missing`);
    const rec = await this.sandboxes.relaunch(sb, ws, ["ARCHIVED"], "unarchiving: starting on the archived files", async (spec) => {
      await this.node.startFrom(spec, this.dirOf(arc.id), { processes: false });
    });
    await this.store.snapshots.delete(arc.id);
    await fs.rm(this.dirOf(arc.id), { recursive: true, force: true });
    return rec;
  }

  // ---- recovery

  /**
   * After a restart, before sandboxes are adopted: captures left pending by a dead server are
   * failed (snapshots) or undone (archives: the sandbox is DEPLOYED again and adopted); a sandbox
   * left ARCHIVING with its archive written becomes ARCHIVED, one left UNARCHIVING is ARCHIVED
   * again (its half-made instance is removed by adoption). `sole`: no other server shares the
   * store (the data-dir lock), so every pending capture is abandoned.
   */
  async recover(sole = true): Promise<{ failed: number; archives: number }> {
    const now = new Date().toISOString();
    const stale = sole ? (await this.store.snapshots.listStale("9999")).filter((r) => r.leaseOwner !== this.owner) : await this.store.snapshots.listStale(now);
    let failed = 0;
    for (const rec of stale) {
      await fs.rm(this.dirOf(rec.id), { recursive: true, force: true }).catch(() => undefined);
      if (rec.kind === "archive") {
        await this.store.snapshots.delete(rec.id);
        await this.sandboxes.transition(rec.sourceId, ["ARCHIVING"], "DEPLOYED", "archive interrupted (the server stopped); the sandbox keeps running");
      } else {
        await this.store.snapshots.update(rec.id, { status: "failed", error: "the server stopped while the snapshot was being taken; take it again", leaseOwner: null, leaseExpiresAt: null, updatedAt: now }, ["pending"]);
      }
      failed++;
    }
    let archives = 0;
    for (const sb of await this.store.sandboxes.listAll()) {
      if (sb.status !== "ARCHIVING" && sb.status !== "UNARCHIVING" && sb.status !== "DEPLOYING") continue;
      const arc = await this.store.snapshots.find(sb.workspaceId, archiveName(sb.id));
      if (!arc || arc.status !== "ready") continue;
      // archive written: the sandbox is archived (a DEPLOYING one was being unarchived)
      await this.sandboxes.transition(sb.id, [sb.status], "ARCHIVED", sb.status === "ARCHIVING" ? "archive completed after a restart" : "unarchive interrupted (the server stopped); still archived");
      archives++;
    }
    for (const n of await fs.readdir(this.root).catch(() => [] as string[])) {
      if (n.startsWith("tmp-")) await fs.rm(join(this.root, n), { recursive: true, force: true }).catch(() => undefined);
    }
    await this.sweepArchives();
    return { failed, archives };
  }

  /** Removes archives whose sandbox is gone (deleted or expired while archived). */
  async sweepArchives(): Promise<void> {
    for (const arc of await this.archives()) {
      if (await this.store.sandboxes.getById(arc.sourceId)) continue;
      await this.store.snapshots.delete(arc.id);
      await fs.rm(this.dirOf(arc.id), { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Ready archives (found through the capture directories). */
  private async archives(): Promise<SnapshotRecord[]> {
    const out: SnapshotRecord[] = [];
    // every capture has a directory named by its id
    for (const n of await fs.readdir(this.root).catch(() => [] as string[])) {
      const rec = await this.store.snapshots.getById(n);
      if (rec?.kind === "archive" && rec.status === "ready") out.push(rec);
    }
    return out;
  }

  /** Sweeps orphaned archives every minute. */
  start(): void {
    this.timer ??= setInterval(() => void this.sweepArchives().catch((e) => this.log.warn({ err: e }, "archive sweep failed")), SWEEP_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/** Name of the archive record of a sandbox (one per sandbox). */
export function archiveName(sandboxId: string): string {
  return `archive-${sandboxId}`;
}

function parseEnvs(v: unknown): { name: string; value: string }[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new HangarError("validation_failed", "envs: must be an array of {name, value}", { field: "envs" });
  return v.map((e, i) => {
    const o = e as { name?: unknown; value?: unknown };
    if (!o || typeof o.name !== "string" || !o.name || typeof o.value !== "string") throw new HangarError("validation_failed", `envs[${i}]: must be {name, value} strings`, { field: "envs" });
    return { name: o.name, value: o.value };
  });
}

/**
 * The spec a fork is created with: the source's (revealed) without its expiry dates or volumes,
 * the extra variables over its environment.
 */
function forkSpec(src: SandboxSpecDoc, envs: { name: string; value: string }[]): Record<string, unknown> {
  const { ttl: _ttl, expires: _expires, ...runtime } = src.runtime as SandboxSpecDoc["runtime"] & { ttl?: unknown; expires?: unknown };
  const merged = [...(runtime.envs ?? []).filter((e) => !envs.some((x) => x.name === e.name)), ...envs];
  const { volumes: _v, ...rest } = src as SandboxSpecDoc & { volumes?: unknown };
  return { ...rest, runtime: { ...runtime, envs: merged } };
}
