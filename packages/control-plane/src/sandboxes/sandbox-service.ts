// The sandbox resource: create/get/list/update/delete over the store and the node runtime.

import { HangarError, type Logger, type ResourceMetadata, TtlCache, randomId, silentLogger, validateMetadata } from "@hangar/common";
import {
  type ListQuery,
  type Page,
  type SandboxEvent,
  type SandboxRecord,
  type SecretBox,
  type Store,
  StoreConflictError,
  StoreCursorError,
  type WorkspaceRecord,
} from "@hangar/store";
import type { NodeSandboxSpec, SandboxNodePort } from "../node-port.js";
import { asOf } from "./expiry.js";
import { type EnvSpec, type SandboxSpecDoc, computeExpiry, normalizeSpec } from "./sandbox-spec.js";
import { envsDiffer, revealEnvs, revealSpec, sealSpec } from "./secrets.js";

/** Statuses after which a name may be reused by a new create (a sandbox past its expiry reads TERMINATED). */
const REPLACEABLE = new Set(["FAILED", "TERMINATED"]);

/** The region of a node that does not say (HANGAR_REGIONS unset). */
export const DEFAULT_REGION = "local-1";

export interface SandboxInput {
  metadata?: { name?: unknown; displayName?: unknown; labels?: unknown; externalId?: unknown };
  spec?: unknown;
}

export interface CreateOptions {
  /** Return the existing sandbox instead of 409 (Blaxel's createIfNotExist). */
  createIfNotExist?: boolean;
  onProgress?: (line: string) => void;
  /** Starts the runtime side instead of node.start (e.g. from a snapshot: a fork). */
  start?: (spec: NodeSandboxSpec) => Promise<void>;
}

export interface SandboxServiceDeps {
  store: Store;
  node: SandboxNodePort;
  secrets: SecretBox;
  logger?: Logger;
  /**
   * Runtime class of a sandbox created without spec.runtime.runtimeClass (the node's
   * HANGAR_RUNTIME_CLASS). Written into the stored spec, so the API states the class used.
   */
  defaultRuntimeClass?: "default" | "gvisor";
  /**
   * Regions this node offers (HANGAR_REGIONS); the first is the region of sandboxes created
   * without spec.region. Default: [DEFAULT_REGION].
   */
  regions?: readonly string[];
  /**
   * Checks spec.volumes before anything is stored (unknown volume 404, one in use 409); the claim
   * itself happens when the sandbox starts.
   */
  checkVolumes?: (ws: WorkspaceRecord, volumes: unknown[], sandboxName: string) => Promise<void>;
}

function event(status: string, message: string): SandboxEvent {
  return { type: "deployment", status, message, time: new Date().toISOString() };
}

export class SandboxService {
  private readonly store: Store;
  private readonly node: SandboxNodePort;
  private readonly secrets: SecretBox;
  private readonly log: Logger;
  private readonly defaultRuntimeClass: "default" | "gvisor" | undefined;
  private readonly checkVolumes: SandboxServiceDeps["checkVolumes"];
  /** Regions this node offers; the first is the default. */
  readonly regions: readonly string[];
  /** Creations in flight in this process, so concurrent createIfNotExist calls wait for the winner. */
  private readonly inflight = new Map<string, Promise<SandboxRecord>>();
  /** Records read by data-plane requests in the last second; dropped on every change made here. */
  private readonly recent = new TtlCache<string, SandboxRecord>(1_000);

  constructor(deps: SandboxServiceDeps) {
    this.store = deps.store;
    this.node = deps.node;
    this.secrets = deps.secrets;
    this.log = deps.logger ?? silentLogger;
    this.defaultRuntimeClass = deps.defaultRuntimeClass;
    this.regions = deps.regions?.length ? [...deps.regions] : [DEFAULT_REGION];
    this.checkVolumes = deps.checkVolumes;
  }

  /**
   * The record as it stands now: one past its expiry reads TERMINATED at once, before the reaper
   * ends it (the same computation as the reaper's, with the node's freshest activity).
   */
  private current(rec: SandboxRecord): SandboxRecord {
    return asOf(rec, Date.now(), (id) => this.node.lastActivity(id));
  }

  /**
   * Puts a new sandbox in a region: the one asked for if this node offers it, else the default.
   * With `prev` (an update), the region stays what it was; a different one is refused.
   */
  private placeRegion(spec: SandboxSpecDoc, prev?: SandboxSpecDoc): void {
    if (prev?.region) {
      if (spec.region !== undefined && spec.region !== prev.region) {
        throw new HangarError("validation_failed", `spec.region: a sandbox cannot move from ${prev.region} to ${spec.region}; create a new sandbox there`, { field: "spec.region" });
      }
      spec.region = prev.region;
      return;
    }
    const region = spec.region ?? this.regions[0]!;
    if (!this.regions.includes(region)) {
      throw new HangarError("validation_failed", `spec.region: unknown region ${JSON.stringify(region)}; this server offers ${this.regions.join(", ")}`, {
        field: "spec.region",
        allowed: [...this.regions],
      });
    }
    spec.region = region;
  }

  /** The plain-text environment of a stored spec (an admin's show_secrets). */
  revealEnvs(spec: SandboxSpecDoc): EnvSpec[] {
    return revealEnvs(this.secrets, spec);
  }

  /** The runtime's view of a record: secrets revealed. */
  nodeSpec(rec: SandboxRecord, ws: WorkspaceRecord): NodeSandboxSpec {
    const spec = revealSpec(this.secrets, rec.spec as unknown as SandboxSpecDoc);
    const out: NodeSandboxSpec = {
      id: rec.id,
      name: rec.name,
      workspace: ws.name,
      image: spec.runtime.image,
      memoryMb: spec.runtime.memory,
      envs: Object.fromEntries((spec.runtime.envs ?? []).map((e) => [e.name, e.value])),
      ports: (spec.runtime.ports ?? []).map((p) => p.target),
    };
    if (spec.runtime.runtimeClass === "gvisor" || spec.runtime.runtimeClass === "default") out.runtimeClass = spec.runtime.runtimeClass;
    if (spec.network) out.network = spec.network;
    if (Array.isArray(spec.volumes) && spec.volumes.length) out.volumes = spec.volumes as NonNullable<NodeSandboxSpec["volumes"]>;
    return out;
  }

  async create(ws: WorkspaceRecord, input: SandboxInput, opts: CreateOptions = {}): Promise<SandboxRecord> {
    const md = validateMetadata(input.metadata);
    const spec = normalizeSpec(input.spec);
    if (spec.runtime.runtimeClass === undefined && this.defaultRuntimeClass) spec.runtime.runtimeClass = this.defaultRuntimeClass;
    this.placeRegion(spec);
    const name = md.name ?? `sandbox-${randomId(8)}`;
    // images built from source belong to their workspace
    if (spec.runtime.image.startsWith("built:") && !spec.runtime.image.startsWith(`built:${ws.id}/`)) {
      throw new HangarError("invalid_image", `image "${spec.runtime.image}": no such built image in workspace '${ws.name}'`);
    }
    // Resolve the image first: a bad reference is a 400 and nothing is created.
    await this.node.ensureImage(spec.runtime.image, opts.onProgress);
    if (spec.volumes?.length && this.checkVolumes) await this.checkVolumes(ws, spec.volumes, md.name ?? "");

    const rec = this.newRecord(ws, name, md, spec, "DEPLOYING", "sandbox creation started");

    for (let attempt = 0; ; attempt++) {
      try {
        await this.store.sandboxes.insert(rec);
        break;
      } catch (e) {
        if (!(e instanceof StoreConflictError)) throw e;
        const stored = await this.store.sandboxes.get(ws.id, name);
        if (!stored) {
          if (attempt < 5) continue; // deleted between the insert and the read
          throw new HangarError("conflict", `sandbox '${name}' is being replaced concurrently; retry`);
        }
        const existing = this.current(stored);
        if (REPLACEABLE.has(existing.status) && attempt < 5) {
          // A failed, terminated or expired sandbox frees its name: clear it (runtime, files,
          // previews, record) and try again. An expired one is one the reaper would end now.
          await this.purge(existing);
          continue;
        }
        if (opts.createIfNotExist && existing.status !== "DELETING") return this.settled(existing);
        throw new HangarError("sandbox_already_exists", `sandbox '${name}' already exists in workspace '${ws.name}'`, {
          sandbox_name: name,
          workspace: ws.name,
          ...(existing.status === "DEPLOYING" ? { reason: "CREATION_IN_PROGRESS" } : {}),
        });
      }
    }

    const started = this.startRecord(rec, ws, opts.start);
    this.inflight.set(rec.id, started);
    try {
      return await started;
    } finally {
      this.inflight.delete(rec.id);
    }
  }

  private async startRecord(rec: SandboxRecord, ws: WorkspaceRecord, start?: (spec: NodeSandboxSpec) => Promise<void>): Promise<SandboxRecord> {
    try {
      await (start ? start(this.nodeSpec(rec, ws)) : this.node.start(this.nodeSpec(rec, ws)));
    } catch (e) {
      const err = e instanceof HangarError ? e : new HangarError("runtime_failed", `sandbox '${rec.name}' failed to start`, undefined, { cause: e });
      this.log.error({ err: e, sandbox: rec.name }, "sandbox start failed");
      await this.node.destroy(rec.id).catch(() => undefined);
      await this.store.sandboxes.update(rec.id, {
        status: "FAILED",
        state: "RUNNING",
        events: [...rec.events, event("FAILED", err.message)],
        updatedAt: new Date().toISOString(),
      });
      throw err;
    }
    const updated = await this.store.sandboxes.update(rec.id, {
      status: "DEPLOYED",
      events: [...rec.events, event("DEPLOYED", "sandbox is running")],
      updatedAt: new Date().toISOString(),
    });
    this.recent.clear();
    if (!updated) {
      // deleted meanwhile: what was just started has no record left to own it
      await this.node.destroy(rec.id).catch((e) => this.log.warn({ err: e, sandbox: rec.name }, "removing an orphaned sandbox failed"));
      throw new HangarError("conflict", `sandbox '${rec.name}' was deleted while it was being started`);
    }
    return updated;
  }

  /** Waits for a sandbox that another request is creating to settle, then returns it. */
  private async settled(rec: SandboxRecord): Promise<SandboxRecord> {
    const mine = this.inflight.get(rec.id);
    if (mine) return mine.catch(() => this.store.sandboxes.getById(rec.id).then((r) => r ?? rec));
    let cur: SandboxRecord | null = rec;
    const deadline = Date.now() + 120_000;
    while (cur && cur.status === "DEPLOYING" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      cur = await this.store.sandboxes.getById(rec.id);
    }
    if (!cur) throw new HangarError("sandbox_not_found", `sandbox '${rec.name}' was deleted while it was being created`);
    return cur;
  }

  /**
   * Like get(), with the stored record served from a one-second cache: for the data plane's
   * per-request lookup. Expiry is judged on every call, so a cached record never outlives it.
   */
  async getForRequest(ws: WorkspaceRecord, name: string): Promise<SandboxRecord> {
    return this.current(await this.recent.getOrLoad(`${ws.id}/${name}`, () => this.stored(ws, name)));
  }

  /** A record by id from the same one-second cache, or null: for the preview path's per-request lookup. */
  async getByIdForRequest(id: string): Promise<SandboxRecord | null> {
    const key = `#${id}`;
    const hit = this.recent.get(key);
    if (hit) return this.current(hit);
    const rec = await this.store.sandboxes.getById(id);
    if (rec) this.recent.set(key, rec);
    return rec ? this.current(rec) : null;
  }

  private async stored(ws: WorkspaceRecord, name: string): Promise<SandboxRecord> {
    const rec = await this.store.sandboxes.get(ws.id, name);
    if (!rec) throw new HangarError("sandbox_not_found", `sandbox '${name}' not found in workspace '${ws.name}'`, { sandbox_name: name });
    return rec;
  }

  async get(ws: WorkspaceRecord, name: string): Promise<SandboxRecord> {
    return this.current(await this.stored(ws, name));
  }

  /** The most recent sandbox with the external id that is not terminated (nor past its expiry). */
  async getByExternalId(ws: WorkspaceRecord, externalId: string): Promise<SandboxRecord> {
    const notFound = () => new HangarError("sandbox_not_found", `no sandbox with externalId '${externalId}' in workspace '${ws.name}'`);
    const rec = await this.store.sandboxes.getByExternalId(ws.id, externalId);
    if (!rec) throw notFound();
    const cur = this.current(rec);
    if (!cur.terminatedAt) return cur;
    // expired, not yet reaped: an older live sandbox with the same id answers instead
    const page = await this.store.sandboxes.list(ws.id, { sort: "createdAt:desc", limit: 50, externalId });
    const live = page.items.map((r) => this.current(r)).find((r) => !r.terminatedAt);
    if (!live) throw notFound();
    return live;
  }

  /**
   * A page of sandboxes as they stand now: those past their expiry read TERMINATED and are left
   * out unless terminated ones are asked for (by showTerminated or a status filter).
   */
  async list(ws: WorkspaceRecord, query: ListQuery): Promise<Page<SandboxRecord>> {
    let page: Page<SandboxRecord>;
    try {
      page = await this.store.sandboxes.list(ws.id, query);
    } catch (e) {
      if (e instanceof StoreCursorError) throw new HangarError("invalid_cursor", e.message);
      throw e;
    }
    const statuses = query.statuses?.length ? new Set(query.statuses) : null;
    const items = page.items
      .map((r) => ({ stored: r, cur: this.current(r) }))
      .filter(({ stored, cur }) => cur === stored || (statuses ? statuses.has(cur.status) : query.showTerminated === true))
      .map(({ cur }) => cur);
    return { ...page, items };
  }

  /**
   * Applies a full-object PUT. Labels, display name, external id, TTL, lifecycle and network
   * change in place (files and processes kept); a memory change restarts the processes (files
   * kept); an environment change reboots the sandbox on a fresh filesystem (see reboot()). Env
   * values sent back masked keep their stored values.
   */
  async update(ws: WorkspaceRecord, name: string, input: SandboxInput): Promise<SandboxRecord> {
    this.recent.clear();
    const rec = await this.get(ws, name);
    if (rec.status === "DELETING" || rec.status === "TERMINATED") {
      throw new HangarError("conflict", `sandbox '${name}' is ${rec.status} and cannot be updated`);
    }
    const md = validateMetadata(input.metadata);
    if (md.name !== undefined && md.name !== name) throw new HangarError("validation_failed", "metadata.name: a sandbox cannot be renamed");
    const prev = rec.spec as unknown as SandboxSpecDoc;
    const next = input.spec === undefined ? prev : normalizeSpec(input.spec);
    // a PUT that leaves the class out keeps the one the sandbox runs under (e.g. the node's default)
    if (next.runtime.runtimeClass === undefined && prev.runtime.runtimeClass !== undefined) next.runtime.runtimeClass = prev.runtime.runtimeClass;
    if (next.runtime.image !== prev.runtime.image) {
      throw new HangarError("validation_failed", "spec.runtime.image: the image of a sandbox cannot change; create a new sandbox");
    }
    if ((next.runtime.runtimeClass ?? "default") !== (prev.runtime.runtimeClass ?? "default")) {
      throw new HangarError("validation_failed", "spec.runtime.runtimeClass: the isolation of a sandbox cannot change; create a new sandbox");
    }
    this.placeRegion(next, prev);
    // no spec: the stored one stays as it is (already sealed)
    const sealed = input.spec === undefined ? prev : sealSpec(this.secrets, next, prev);
    const envChanged = envsDiffer(this.secrets, sealed, prev);
    const memoryChanged = sealed.runtime.memory !== prev.runtime.memory;
    const networkChanged = JSON.stringify(sealed.network ?? null) !== JSON.stringify(prev.network ?? null);
    const reboot = rec.status === "DEPLOYED" && envChanged;

    const now = new Date().toISOString();
    const events = [...rec.events];
    if (reboot) events.push(event("DEPLOYING", "environment changed: rebooting on a fresh filesystem"));
    else if (envChanged || memoryChanged) events.push(event("DEPLOYING", envChanged ? "environment changed" : "memory changed: restarting processes"));
    const updated = await this.store.sandboxes.update(
      rec.id,
      {
        ...(reboot ? { status: "DEPLOYING" } : {}),
        displayName: md.displayName ?? rec.displayName,
        labels: md.labels ?? (input.metadata && "labels" in input.metadata ? {} : rec.labels),
        externalId: md.externalId === undefined ? rec.externalId : md.externalId,
        spec: sealed as unknown as Record<string, unknown>,
        expiresAt: computeExpiry(next, rec.createdAt, rec.lastUsedAt)?.toISOString() ?? null,
        events,
        updatedAt: now,
      },
      rec.version,
    );
    if (!updated) throw new HangarError("conflict", `sandbox '${name}' changed while it was being updated; retry`);

    if (reboot) return this.reboot(updated, ws);
    if (rec.status === "DEPLOYED" && memoryChanged) {
      await this.node.restart(this.nodeSpec(updated, ws));
      return (await this.store.sandboxes.update(rec.id, { events: [...events, event("DEPLOYED", "processes restarted")] })) ?? updated;
    }
    if (rec.status === "DEPLOYED" && networkChanged) await this.node.updateNetwork(this.nodeSpec(updated, ws));
    return updated;
  }

  /**
   * Starts a DEPLOYING sandbox again from its image on a fresh filesystem, as Blaxel does when its
   * environment changes: files, processes and process logs are gone; new processes get the new
   * environment. Kept: the record (id, name, URL, labels, external id, creation time and so its
   * TTL), its previews and their tokens. Its network address may change.
   */
  private async reboot(rec: SandboxRecord, ws: WorkspaceRecord): Promise<SandboxRecord> {
    await this.node.destroy(rec.id);
    return this.startRecord(rec, ws);
  }

  /**
   * Replaces a sandbox's runtime side (restore of a snapshot, unarchive): DEPLOYING with `message`,
   * the old instance destroyed, `start` makes the new one; DEPLOYED, or FAILED if it cannot start.
   * Only from one of `from` (409 otherwise).
   */
  async relaunch(rec: SandboxRecord, ws: WorkspaceRecord, from: string[], message: string, start: (spec: NodeSandboxSpec) => Promise<void>): Promise<SandboxRecord> {
    const deploying = await this.transition(rec.id, from, "DEPLOYING", message);
    if (!deploying) throw new HangarError("conflict", `sandbox '${rec.name}' is ${(await this.store.sandboxes.getById(rec.id))?.status ?? "gone"}; retry once it is ${from.join(" or ")}`);
    await this.node.destroy(rec.id);
    return this.startRecord(deploying, ws, start);
  }

  /** Moves a sandbox from one of `from` to `status` with an event; null when it was not in `from`. */
  async transition(id: string, from: string[], status: string, message: string): Promise<SandboxRecord | null> {
    this.recent.clear();
    for (let i = 0; i < 5; i++) {
      const rec = await this.store.sandboxes.getById(id);
      if (!rec || !from.includes(rec.status) || rec.terminatedAt) return null;
      const next = await this.store.sandboxes.update(id, { status, events: [...rec.events, event(status, message)], updatedAt: new Date().toISOString() }, rec.version);
      if (next) return next;
    }
    return null;
  }

  /** Marks the sandbox DELETING and removes it in the background; returns the DELETING record. */
  async delete(ws: WorkspaceRecord, name: string): Promise<SandboxRecord> {
    this.recent.clear();
    const rec = await this.get(ws, name);
    if (rec.terminatedAt) throw new HangarError("sandbox_not_found", `sandbox '${name}' not found in workspace '${ws.name}'`);
    const deleting =
      rec.status === "DELETING"
        ? rec
        : ((await this.store.sandboxes.update(rec.id, {
            status: "DELETING",
            events: [...rec.events, event("DELETING", "deletion requested")],
            updatedAt: new Date().toISOString(),
          })) ?? rec);
    void this.purge(deleting).catch((e) => this.log.error({ err: e, sandbox: name }, "sandbox deletion failed; the reaper retries"));
    return deleting;
  }

  /** Destroys the runtime side and removes the record. */
  async purge(rec: SandboxRecord): Promise<void> {
    this.recent.clear();
    await this.node.destroy(rec.id);
    await this.store.previews.deleteForSandbox(rec.id);
    await this.store.sandboxes.delete(rec.id);
  }

  // ---- sandboxes built from source (`?upload=true`: bl deploy, the SDK's ImageInstance.build)

  /**
   * Stores a sandbox whose image will be built from uploaded source: a new one waits in UPLOADING
   * (nothing runs yet); an existing one keeps running what it runs until the build is deployed.
   */
  async prepareUpload(ws: WorkspaceRecord, input: SandboxInput, name?: string): Promise<SandboxRecord> {
    this.recent.clear();
    const md = validateMetadata(input.metadata);
    if (name !== undefined && md.name !== undefined && md.name !== name) throw new HangarError("validation_failed", "metadata.name: a sandbox cannot be renamed");
    const target = name ?? md.name ?? `sandbox-${randomId(8)}`;
    const spec = normalizeSpec(input.spec);
    if (spec.runtime.runtimeClass === undefined && this.defaultRuntimeClass) spec.runtime.runtimeClass = this.defaultRuntimeClass;
    const now = new Date().toISOString();
    const stored = await this.store.sandboxes.get(ws.id, target);
    const existing = stored ? this.current(stored) : null;
    if (!existing || REPLACEABLE.has(existing.status)) this.placeRegion(spec);
    if (existing && !REPLACEABLE.has(existing.status)) {
      if (existing.status === "DELETING") throw new HangarError("conflict", `sandbox '${target}' is being deleted`);
      const prev = existing.spec as unknown as SandboxSpecDoc;
      const next = { ...prev, runtime: { ...prev.runtime, memory: spec.runtime.memory, envs: spec.runtime.envs ?? prev.runtime.envs, ports: spec.runtime.ports ?? prev.runtime.ports } };
      const updated = await this.store.sandboxes.update(existing.id, {
        status: "UPLOADING",
        labels: md.labels ?? existing.labels,
        spec: sealSpec(this.secrets, next as SandboxSpecDoc, prev) as unknown as Record<string, unknown>,
        events: [...existing.events, event("UPLOADING", "waiting for the source to build")],
        updatedAt: now,
      });
      return updated ?? existing;
    }
    if (existing) await this.purge(existing);
    const rec = this.newRecord(ws, target, md, spec, "UPLOADING", "waiting for the source to build");
    try {
      return await this.store.sandboxes.insert(rec);
    } catch (e) {
      if (e instanceof StoreConflictError) throw new HangarError("conflict", `sandbox '${target}' is being created concurrently; retry`);
      throw e;
    }
  }

  /** A new record in `status`, its spec sealed, with one event saying why. */
  private newRecord(ws: WorkspaceRecord, name: string, md: ResourceMetadata, spec: SandboxSpecDoc, status: string, message: string): SandboxRecord {
    const now = new Date().toISOString();
    return {
      id: randomId(12),
      workspaceId: ws.id,
      name,
      externalId: md.externalId ?? null,
      displayName: md.displayName ?? name,
      labels: md.labels ?? {},
      status,
      state: "RUNNING",
      spec: sealSpec(this.secrets, spec) as unknown as Record<string, unknown>,
      events: [event(status, message)],
      node: this.node.nodeName,
      createdAt: now,
      updatedAt: now,
      lastUsedAt: now,
      expiresAt: computeExpiry(spec, now, now)?.toISOString() ?? null,
      terminatedAt: null,
      version: 1,
    };
  }

  /** The sandbox's build started. */
  async buildStarted(id: string): Promise<void> {
    await this.setStatus(id, "BUILDING", "building the image from source");
  }

  /** The sandbox's build failed: it says so; what it ran before (if anything) keeps running. */
  async buildFailed(id: string, message: string): Promise<void> {
    await this.setStatus(id, "FAILED", `build failed: ${message}`);
  }

  /** Moves the sandbox onto its freshly built image: a new sandbox from that image (files start afresh). */
  async deployBuilt(id: string, image: string): Promise<SandboxRecord> {
    this.recent.clear();
    const rec = await this.store.sandboxes.getById(id);
    if (!rec || rec.status === "DELETING" || rec.terminatedAt) throw new HangarError("sandbox_not_found", `sandbox ${id} is gone`);
    const ws = await this.store.workspaces.getById(rec.workspaceId);
    if (!ws) throw new HangarError("workspace_not_found", `workspace of sandbox ${rec.name} is gone`);
    const prev = rec.spec as unknown as SandboxSpecDoc;
    const spec = { ...prev, runtime: { ...prev.runtime, image } };
    const deploying = await this.store.sandboxes.update(rec.id, {
      status: "DEPLOYING",
      spec: spec as unknown as Record<string, unknown>,
      events: [...rec.events, event("DEPLOYING", `starting on the built image ${image}`)],
      updatedAt: new Date().toISOString(),
    });
    if (!deploying) throw new HangarError("sandbox_not_found", `sandbox ${id} is gone`);
    await this.node.destroy(rec.id);
    return this.startRecord(deploying, ws);
  }

  private async setStatus(id: string, status: string, message: string): Promise<void> {
    this.recent.clear();
    for (let i = 0; i < 5; i++) {
      const rec = await this.store.sandboxes.getById(id);
      if (!rec || rec.status === "DELETING" || rec.terminatedAt) return;
      if (await this.store.sandboxes.update(id, { status, events: [...rec.events, event(status, message)], updatedAt: new Date().toISOString() }, rec.version)) return;
    }
  }

  /** Appends an event to a sandbox (e.g. the node recovered it); retried on a concurrent change. */
  async recordEvent(id: string, status: string, message: string): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const rec = await this.store.sandboxes.getById(id);
      if (!rec) return;
      if (await this.store.sandboxes.update(id, { events: [...rec.events, event(status, message)] }, rec.version)) return;
    }
  }

  /** Records activity (throttled by the caller). */
  async touch(id: string, at = new Date()): Promise<void> {
    const rec = await this.store.sandboxes.getById(id);
    if (!rec || rec.terminatedAt) return;
    const spec = rec.spec as unknown as SandboxSpecDoc;
    await this.store.sandboxes.update(id, { lastUsedAt: at.toISOString(), expiresAt: computeExpiry(spec, rec.createdAt, at.toISOString())?.toISOString() ?? null });
  }
}
