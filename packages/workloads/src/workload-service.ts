// Agents (and, later, functions) on the sandbox substrate: a workload is a stored spec; each
// change to what it runs is a revision; a revision runs as replica sandboxes started from its
// image with the image's command. A new revision takes the traffic only once a replica answers on
// its port (blue-green); the previous one then drains and goes. State lives in the store: a server
// that restarts finds its replicas again and resumes deployments it left unfinished.

import { HangarError, type Logger, TtlCache, describeNameProblem, randomId, silentLogger } from "@hangar/common";
import type { NodeSandboxSpec } from "@hangar/control-plane";
import type { ListQuery, Page, ReplicaRecord, RevisionRecord, SecretBox, Store, WorkloadRecord, WorkspaceRecord } from "@hangar/store";
import { StoreConflictError } from "@hangar/store";
import { type CallbackTarget, newCallbackSecret } from "./callbacks.js";
import { CODE_MODE_BASE_IMAGE, type RevisionSpec, type WorkloadRuntime, type WorkloadSpecDoc, appPort, isCodeModeImage, normalizeWorkloadSpec, revisionKey } from "./workload-spec.js";

/** What the workloads plane needs from the node that runs replicas. */
export interface ReplicaPort {
  readonly nodeName: string;
  /** Creates and starts a replica sandbox (the node's sandbox id is the replica id). */
  start(spec: NodeSandboxSpec): Promise<void>;
  /** Removes it; idempotent. */
  destroy(id: string): Promise<void>;
  has(id: string): boolean;
  /**
   * Starts the image's command as process "app" in the replica; throws when the image names none.
   * `mcpStdio`: the command speaks MCP on stdio, so Hangar's MCP bridge runs it and serves it on the port.
   * `codeMode`: the replica runs Hangar's code-mode MCP server (image blaxel/code-mode) instead.
   */
  startApp(id: string, opts?: AppOptions): Promise<void>;
  /** Replaces a running replica's egress policy (spec.network, secrets revealed): new access tokens of its connections. */
  setNetwork?(id: string, network: Record<string, unknown> | null): Promise<void>;
  /** Last time the replica was used (ms since the epoch), null when not on this node. */
  lastActivity(id: string): number | null;
  /** Sends one request to the replica's port (waking it and holding it awake); the answer collected (≤ 10 MiB kept). */
  request(id: string, port: number, call: { method: string; path: string; headers: Record<string, string>; body: Buffer }, timeoutMs: number): Promise<{ statusCode: number; body: string }>;
  /** The output of the replica's app (null when it runs none on this node). */
  appLogs(id: string): AppLogs | null;
  /** Resolves once `port` accepts connections in the replica; throws if the app exits first or at the deadline. */
  waitListening(id: string, port: number, timeoutMs: number): Promise<void>;
}

/**
 * Integration connections a workload is bound to (spec.integrationConnections): checked on apply;
 * per replica, the egress policy that injects their credentials and the env that goes with it.
 */
export interface ConnectionPort {
  /** Throws a 4xx for a name that is not a usable connection of the workspace; the built-in MCP server they call for, if any. */
  check(workspaceId: string, names: string[]): Promise<{ builtin: string | null }>;
  /** Egress rules (a failed connection's rule makes the proxy answer with its reason) and env; `problem` when one fails. */
  access(workspaceId: string, names: string[]): Promise<{ network: Record<string, unknown> | null; envs: Record<string, string>; problem: string | null }>;
}

/** The image Hangar's built-in MCP servers run on (it has node). */
export const BUILTIN_MCP_IMAGE = "blaxel/base-image:latest";

/** How a replica's app starts (see ReplicaPort.startApp). */
export type AppOptions = { mcpStdio?: boolean; codeMode?: boolean; builtin?: string };

/** How a revision's replicas start their app: a stdio MCP server behind the bridge, code mode, a built-in MCP server, or the image's command. */
function appOptions(rev: RevisionRecord | null | undefined): AppOptions | undefined {
  if (!rev) return undefined;
  if (isCodeModeImage(rev.image)) return { codeMode: true };
  if (rev.runtime.transport === "stdio") return { mcpStdio: true };
  if (typeof rev.runtime.builtin === "string") return { builtin: rev.runtime.builtin };
  return undefined;
}

/** API keys of workloads: what their SDK inside authenticates with (ApiKeyService). */
export interface WorkloadKeyPort {
  ensureKey(name: string, workspaceId: string, key: string): Promise<void>;
  revokeKey(key: string): Promise<void>;
}

/** A replica's app output: what is kept, and new output as it comes. */
export interface AppLogs {
  tail(): { stdout: string; stderr: string };
  /** `stream`: 1 stdout, 2 stderr (the sandbox API's log framing). */
  follow(onChunk: (c: { stream: number; data: Buffer }) => void, onEnd: () => void): { close(): void };
}

export interface WorkloadInput {
  metadata?: { name?: unknown; displayName?: unknown; labels?: unknown };
  spec?: unknown;
}

export interface WorkloadServiceOptions {
  store: Store;
  replicas: ReplicaPort;
  secrets: SecretBox;
  logger?: Logger;
  /** Refuses callback targets the host must not call (its own addresses, sandboxes, metadata). */
  checkCallback: (url: URL) => Promise<void>;
  /** How long a new revision may take to answer on its port (default 120 s). */
  readinessTimeoutMs?: number;
  /** How long an old revision's replicas may finish in-flight requests (default 30 s). */
  drainMs?: number;
  /** Revisions kept per workload (default 5, as Blaxel). */
  keepRevisions?: number;
  /** Issues each workload a key to its workspace (BL_API_KEY); absent: replicas get none. */
  keys?: WorkloadKeyPort;
  /** BL_REGION of replicas whose spec names no region. */
  region?: string;
  /** Requests in flight per replica above which another replica starts, up to maxScale (default 10). */
  targetConcurrency?: number;
  /** Replicas beyond minScale (and the first) idle this long are removed (default 5 min). */
  scaleDownIdleMs?: number;
  /** Why this node may not run a workload with these policies (location, flavor), or null when it may. */
  checkPlacement?: (workspaceId: string, policies: string[]) => Promise<string | null>;
  /** Integration connections (spec.integrationConnections); absent: workloads cannot name any. */
  connections?: ConnectionPort;
  /** How often replicas bound to connections get their tokens checked and refreshed (default 1 s). */
  connectionRefreshMs?: number;
  /** Removes what a workload made through the API and left behind (e.g. code mode's sandboxes) once it is deleted. */
  onDeleted?: (ws: WorkspaceRecord, kind: string, name: string) => Promise<void>;
}

/** A workload as the run plane routes to it. */
export interface Routing {
  workload: WorkloadRecord;
  public: boolean;
  port: number;
  /** READY replicas of the active revision. */
  replicas: string[];
  /** The canary revision's READY replicas and its share of the traffic (spec.revision). */
  canary: { revisionId: string; port: number; replicas: string[]; percent: number } | null;
  /** Seconds a client stays on the revision it reached (0: off). */
  stickyTtl: number;
  /** Where async calls' results go (the http-async trigger's callback), secret revealed. */
  callback: CallbackTarget | null;
  /** Functions: how the MCP server behind the port speaks (the bridge of a stdio one speaks http-stream and WebSocket). */
  mcp?: "http-stream" | "websocket" | "bridged";
}

/** Where one request goes. */
export interface ReplicaPick {
  replicaId: string;
  revisionId: string;
  port: number;
  done: () => void;
}

/** A record as apply() returns it: with the callback secrets it generated, shown this once. */
export type AppliedWorkload = WorkloadRecord & { newCallbackSecrets?: Record<number, string> };

/** Blaxel's singular of each kind, for BL_TYPE and messages. */
export const KIND_SINGULAR: Record<string, string> = { agents: "agent", functions: "function" };

const event = (status: string, message: string, revision?: string) => ({ type: "deployment", status, message, time: new Date().toISOString(), ...(revision ? { revision } : {}) });

export class WorkloadService {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly opts: Required<Omit<WorkloadServiceOptions, "logger">>;
  /** Per-workload chain: deployments of one workload never overlap. */
  private readonly chains = new Map<string, Promise<unknown>>();
  /** Requests in flight per replica (the router counts them), for least-outstanding picks and draining. */
  private readonly inflight = new Map<string, number>();
  /**
   * What the run plane needs per workload (the record, its port, its ready replicas), read from the
   * store at most once a second; every change made here clears it.
   */
  private readonly routes = new TtlCache<string, Routing | null>(1_000);
  /** Workloads a replica is being added to (one at a time each). */
  private readonly scaling = new Set<string>();
  private sweeper: NodeJS.Timeout | null = null;
  private refresher: NodeJS.Timeout | null = null;
  /** The egress policy last given to each replica bound to connections (JSON). */
  private readonly applied = new Map<string, string>();

  constructor(opts: WorkloadServiceOptions) {
    this.store = opts.store;
    this.log = opts.logger ?? silentLogger;
    this.opts = { readinessTimeoutMs: 120_000, drainMs: 30_000, keepRevisions: 5, region: "local-1", targetConcurrency: 10, scaleDownIdleMs: 300_000, connectionRefreshMs: 1_000, ...opts } as Required<Omit<WorkloadServiceOptions, "logger">>;
  }

  private serialize<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.chains.get(id) ?? Promise.resolve()).catch(() => undefined).then(fn);
    this.chains.set(id, next);
    void next.finally(() => this.chains.get(id) === next && this.chains.delete(id)).catch(() => undefined);
    return next;
  }

  // ---- resource

  async get(ws: WorkspaceRecord, kind: string, name: string): Promise<WorkloadRecord> {
    const rec = await this.store.workloads.get(ws.id, kind, name);
    if (!rec) throw new HangarError("not_found", `${KIND_SINGULAR[kind] ?? kind} '${name}' not found in workspace '${ws.name}'`);
    return rec;
  }

  list(ws: WorkspaceRecord, kind: string, query: ListQuery): Promise<Page<WorkloadRecord>> {
    return this.store.workloads.list(ws.id, kind, query);
  }

  /**
   * Creates (POST: 409 when it exists) or creates-or-updates (PUT) a workload. A change to what it
   * runs makes a revision and deploys it in the background; the record is returned DEPLOYING.
   */
  async apply(ws: WorkspaceRecord, kind: string, input: WorkloadInput, how: { name?: string; mustCreate?: boolean; image?: string; deferDeploy?: boolean } = {}): Promise<AppliedWorkload> {
    const md = input.metadata ?? {};
    const name = how.name ?? (typeof md.name === "string" ? md.name : undefined);
    if (!name) throw new HangarError("invalid_name", "metadata.name is required");
    const problem = describeNameProblem(name);
    if (problem) throw new HangarError("invalid_name", `metadata.name: ${problem}`);
    if (how.name && typeof md.name === "string" && md.name !== how.name) throw new HangarError("validation_failed", "metadata.name: a workload cannot be renamed");
    const labels = md.labels === undefined ? undefined : validLabels(md.labels);
    const spec = normalizeWorkloadSpec(input.spec);
    if (how.image) spec.runtime.image = how.image;
    const now = new Date().toISOString();
    const existing = await this.store.workloads.get(ws.id, kind, name);
    if (existing && how.mustCreate) throw new HangarError("already_exists", `${KIND_SINGULAR[kind]} '${name}' already exists in workspace '${ws.name}'`);
    const prev = existing ? (existing.spec as unknown as WorkloadSpecDoc) : null;
    if (spec.integrationConnections?.length) {
      if (!this.opts.connections) throw new HangarError("not_configured", "integration connections are not available on this server");
      const { builtin } = await this.opts.connections.check(ws.id, spec.integrationConnections);
      // an MCP function with no image of its own, bound to an integration Hangar has a server for, runs that server
      const keepsBuiltin = !!prev?.runtime.builtin && (!spec.runtime.image || spec.runtime.image === prev.runtime.image);
      if (kind === "functions" && builtin && (keepsBuiltin || (!spec.runtime.image && !prev?.runtime.image))) {
        spec.runtime.image = BUILTIN_MCP_IMAGE;
        spec.runtime.builtin = builtin;
      }
    }
    // an update that leaves the image out keeps the one it runs (e.g. built from source)
    if (!spec.runtime.image && prev?.runtime.image) spec.runtime.image = prev.runtime.image;
    const fresh = await this.callbackSecrets(spec, prev);
    const sealed = this.seal(spec, prev);
    // a deploy from source waits for its build (which calls apply again with the image)
    const changesRuntime = !how.deferDeploy && (!prev || revisionKey(this.reveal(prev).runtime, prev.integrationConnections) !== revisionKey(spec.runtime, spec.integrationConnections));
    const waitsForSource = how.deferDeploy || !spec.runtime.image;
    let rec: WorkloadRecord;
    if (!existing) {
      rec = {
        id: randomId(12),
        workspaceId: ws.id,
        kind,
        name,
        displayName: typeof md.displayName === "string" ? md.displayName : name,
        labels: labels ?? {},
        spec: sealed as unknown as Record<string, unknown>,
        status: waitsForSource ? "UPLOADING" : "DEPLOYING",
        events: [event(waitsForSource ? "UPLOADING" : "DEPLOYING", waitsForSource ? "waiting for the source to build" : "deployment started")],
        activeRevision: null,
        createdAt: now,
        updatedAt: now,
        version: 1,
      };
      try {
        await this.store.workloads.insert(rec);
      } catch (e) {
        if (e instanceof StoreConflictError) throw new HangarError("already_exists", `${KIND_SINGULAR[kind]} '${name}' is being created concurrently`);
        throw e;
      }
    } else {
      const redeploy = changesRuntime && !!spec.runtime.image;
      const status = how.deferDeploy ? { status: "UPLOADING", events: [...existing.events, event("UPLOADING", "waiting for the source to build")] } : redeploy ? { status: "DEPLOYING", events: [...existing.events, event("DEPLOYING", "new revision: deployment started")] } : {};
      rec =
        (await this.store.workloads.update(existing.id, {
          displayName: typeof md.displayName === "string" ? md.displayName : existing.displayName,
          labels: labels ?? existing.labels,
          spec: sealed as unknown as Record<string, unknown>,
          ...status,
          updatedAt: now,
        })) ?? existing;
    }
    this.routes.clear();
    if (changesRuntime && spec.runtime.image) {
      // a new revision takes the traffic only if what runs now is the latest revision (docs)
      const staged = existing ? await this.rolledBack(existing) : false;
      // secret env values stay sealed in the revision too
      const revision = await this.newRevision(rec, sealed.runtime, staged ? "STAGED" : "DEPLOYING", spec.integrationConnections);
      if (!staged) void this.deploy(rec.id, revision.id);
      else rec = (await this.addEvent(rec.id, "DEPLOYED", `revision ${revision.id} created with 0% traffic: the active revision is not the latest (set spec.revision.active to deploy it)`)) ?? rec;
    }
    if (existing) await this.steer(rec, spec.revision ?? {});
    return Object.keys(fresh).length ? { ...rec, newCallbackSecrets: fresh } : rec;
  }

  /**
   * Each http-async trigger with a callbackUrl gets a secret: kept (sealed) from the stored spec,
   * else a new one, returned so the caller shows it once. The callback target is checked now.
   */
  private async callbackSecrets(spec: WorkloadSpecDoc, prev: WorkloadSpecDoc | null): Promise<Record<number, string>> {
    const fresh: Record<number, string> = {};
    const before = prev?.triggers ?? [];
    for (const [i, t] of (spec.triggers ?? []).entries()) {
      const c = t.configuration;
      if (!c?.callbackUrl) continue;
      await this.opts.checkCallback(new URL(c.callbackUrl));
      const old = before.find((b) => b.configuration?.callbackUrl === c.callbackUrl && b.configuration?.callbackSecret)?.configuration?.callbackSecret;
      if (old) c.callbackSecret = old;
      else {
        fresh[i] = newCallbackSecret();
        c.callbackSecret = this.opts.secrets.seal(fresh[i]);
      }
    }
    return fresh;
  }

  /** A build made the workload's image: a new revision runs it. */
  async deployImage(workspaceId: string, kind: string, name: string, image: string): Promise<void> {
    const ws = await this.store.workspaces.getById(workspaceId);
    const rec = ws ? await this.store.workloads.get(ws.id, kind, name) : null;
    if (!ws || !rec) return;
    // the build's image makes the new revision; spec.revision as last sent steers nothing now
    const { revision: _steered, ...spec } = this.reveal(rec.spec as unknown as WorkloadSpecDoc);
    await this.apply(ws, kind, { metadata: { name, labels: rec.labels, displayName: rec.displayName }, spec }, { name, image });
  }

  /** A workload whose source is being built (upload flow): UPLOADING/BUILDING while what it runs keeps serving. */
  async setBuildStatus(workspaceId: string, kind: string, name: string, status: "UPLOADING" | "BUILDING" | "FAILED", message: string): Promise<void> {
    const rec = await this.store.workloads.get(workspaceId, kind, name);
    if (rec) await this.store.workloads.update(rec.id, { status, events: [...rec.events, event(status, message)], updatedAt: new Date().toISOString() });
    this.routes.clear();
  }

  async delete(ws: WorkspaceRecord, kind: string, name: string): Promise<WorkloadRecord> {
    const rec = await this.get(ws, kind, name);
    await this.serialize(rec.id, async () => {
      for (const r of await this.store.workloads.listReplicas(rec.id)) await this.removeReplica(r);
      await this.store.workloads.delete(rec.id);
      await this.opts.keys?.revokeKey(this.keyOf(rec));
      this.routes.clear();
    });
    await this.opts.onDeleted?.(ws, kind, name).catch((e: unknown) => this.log.warn({ err: e, workload: name }, "removing what the workload left behind failed"));
    return { ...rec, status: "DELETING" };
  }

  async revisions(ws: WorkspaceRecord, kind: string, name: string): Promise<Array<Record<string, unknown>>> {
    const rec = await this.get(ws, kind, name);
    const revs = await this.store.workloads.listRevisions(rec.id);
    const replicas = await this.store.workloads.listReplicas(rec.id);
    const previous = revs.find((r) => r.id !== rec.activeRevision && r.status === "RETIRED");
    const route = await this.routing(ws.id, kind, name);
    const canaryPct = (id: string) => (route?.canary?.revisionId === id ? route.canary.percent : 0);
    return revs.map((r) => ({
      id: r.id,
      active: r.id === rec.activeRevision,
      canary: route?.canary?.revisionId === r.id,
      previousActive: r.id === previous?.id,
      createdAt: r.createdAt,
      createdBy: "",
      status: r.status,
      image: r.image,
      replicas: replicas.filter((x) => x.revisionId === r.id).length,
      trafficPercent: r.id === rec.activeRevision ? 100 - (route?.canary?.percent ?? 0) : canaryPct(r.id),
    }));
  }

  /** The app output of each replica of a workload, with its revision (newest revisions first). */
  async appLogs(ws: WorkspaceRecord, kind: string, name: string): Promise<Array<{ replica: string; revision: string; status: string; logs: AppLogs }>> {
    const rec = await this.get(ws, kind, name);
    const out: Array<{ replica: string; revision: string; status: string; logs: AppLogs }> = [];
    for (const r of await this.store.workloads.listReplicas(rec.id)) {
      const logs = this.opts.replicas.appLogs(r.id);
      if (logs) out.push({ replica: r.id, revision: r.revisionId, status: r.status, logs });
    }
    return out;
  }

  // ---- revisions and replicas

  private async newRevision(w: WorkloadRecord, runtime: WorkloadRuntime, status: "DEPLOYING" | "STAGED" | "LAUNCHING", connections?: string[]): Promise<RevisionRecord> {
    const rev: RevisionRecord = {
      id: randomId(12),
      workloadId: w.id,
      image: runtime.image!,
      runtime: {
        memory: runtime.memory,
        envs: runtime.envs ?? [],
        port: appPort(runtime),
        minScale: runtime.minScale,
        ...(runtime.transport === "stdio" ? { transport: "stdio" } : {}),
        ...(connections?.length ? { integrationConnections: connections, ...(runtime.builtin ? { builtin: runtime.builtin } : {}) } : {}),
      },
      status,
      message: null,
      createdAt: new Date().toISOString(),
    };
    return this.store.workloads.insertRevision(rev);
  }

  /** True when the active revision is older than another that ran (the user rolled back). */
  private async rolledBack(w: WorkloadRecord): Promise<boolean> {
    if (!w.activeRevision) return false;
    const latest = (await this.store.workloads.listRevisions(w.id)).find((r) => r.status === "READY" || r.status === "RETIRED" || r.status === "STAGED");
    return !!latest && latest.id !== w.activeRevision;
  }

  private async addEvent(id: string, status: string, message: string, revision?: string): Promise<WorkloadRecord | null> {
    const w = await this.store.workloads.getById(id);
    return w ? this.store.workloads.update(id, { events: [...w.events, event(status, message, revision)], updatedAt: new Date().toISOString() }) : null;
  }

  /**
   * spec.revision as the user set it: `active` naming another revision rolls back (or forward) to
   * it; `canary` gets that revision's replicas up to take canaryPercent of the traffic.
   */
  private async steer(w: WorkloadRecord, r: RevisionSpec): Promise<void> {
    for (const [id, mode] of [[r.active, "switch"], [r.canary, "canary"]] as const) {
      if (!id || id === w.activeRevision) continue;
      const rev = await this.store.workloads.getRevision(id);
      if (!rev || rev.workloadId !== w.id) throw new HangarError("validation_failed", `spec.revision.${mode === "switch" ? "active" : "canary"}: no revision '${id}' of ${KIND_SINGULAR[w.kind]} '${w.name}' (GET …/revisions lists them)`);
      if (rev.status === "FAILED") throw new HangarError("validation_failed", `revision '${id}' failed to deploy: ${rev.message ?? ""}`);
      if (mode === "canary" && (await this.store.workloads.listReplicas(w.id)).some((x) => x.revisionId === id && x.status === "READY")) continue;
      void this.deploy(w.id, id, mode);
    }
    this.routes.clear();
  }

  /** The node spec of a replica: the revision's image, memory and envs, plus what Blaxel's runtime sets. */
  async replicaSpec(replica: ReplicaRecord): Promise<NodeSandboxSpec | null> {
    const [w, rev] = await Promise.all([this.store.workloads.getById(replica.workloadId), this.store.workloads.getRevision(replica.revisionId)]);
    if (!w || !rev) return null;
    const ws = await this.store.workspaces.getById(w.workspaceId);
    if (!ws) return null;
    const port = Number(rev.runtime.port);
    const envs = Object.fromEntries(((rev.runtime.envs ?? []) as Array<{ name: string; value: string; secret?: boolean }>).map((e) => [e.name, e.secret && e.value ? this.opts.secrets.open(e.value) : e.value]));
    const key = this.keyOf(w);
    // the first minScale replicas of a revision never park
    const minScale = Number(rev.runtime.minScale ?? 0);
    const siblings = minScale ? (await this.store.workloads.listReplicas(w.id)).filter((r) => r.revisionId === rev.id).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id)) : [];
    const keepAwake = siblings.findIndex((r) => r.id === replica.id) < minScale && minScale > 0;
    await this.opts.keys?.ensureKey(`${KIND_SINGULAR[w.kind] ?? w.kind}:${w.name}`, ws.id, key);
    const spec = w.spec as unknown as WorkloadSpecDoc;
    const access = await this.connectionAccess(w, rev);
    if (access?.network) this.applied.set(replica.id, JSON.stringify(access.network));
    return {
      id: replica.id,
      name: w.name,
      workspace: ws.name,
      // code mode runs on the base image (its server is Hangar's bundle, written at start)
      image: isCodeModeImage(rev.image) ? CODE_MODE_BASE_IMAGE : rev.image,
      memoryMb: Number(rev.runtime.memory),
      envs: {
        ...envs,
        ...(access?.envs ?? {}),
        HOST: "0.0.0.0",
        PORT: String(port),
        BL_SERVER_HOST: "0.0.0.0",
        BL_SERVER_PORT: String(port),
        BL_WORKSPACE: ws.name,
        BL_NAME: w.name,
        BL_TYPE: KIND_SINGULAR[w.kind] ?? w.kind,
        BL_REGION: spec.region ?? this.opts.region,
        // the SDK inside reaches Hangar (BL_API_URL, BL_RUN_URL set by the node) as its workspace
        ...(this.opts.keys ? { BL_API_KEY: key } : {}),
        // the MCP bridge of a stdio function prefixes its session ids with it (sessions stay on their replica)
        // (and code mode, also built from a function's files, names its execute sandbox after it)
        ...(w.kind === "functions" ? { HANGAR_REPLICA_ID: replica.id } : {}),
      },
      ports: [port],
      platform: true,
      ...(access?.network ? { network: access.network } : {}),
      ...(keepAwake ? { keepAwake } : {}),
    };
  }

  /** What a replica of the revision gets from its integration connections (fresh tokens), its failure noted on the workload. */
  private async connectionAccess(w: WorkloadRecord, rev: RevisionRecord): Promise<{ network: Record<string, unknown> | null; envs: Record<string, string> } | null> {
    const names = connectionsOf(rev);
    if (!names.length || !this.opts.connections) return null;
    const access = await this.opts.connections.access(w.workspaceId, names);
    await this.noteConnectionProblem(w.id, access.problem);
    return access;
  }

  /** A connection failing (or working again) shows in the workload's status and events, once per change. */
  private async noteConnectionProblem(workloadId: string, problem: string | null): Promise<void> {
    const w = await this.store.workloads.getById(workloadId);
    if (!w) return;
    const last = [...w.events].reverse().find((e) => e.message.startsWith(CONNECTION_EVENT));
    const failing = !!last && last.status === "FAILED";
    if (problem && (!failing || last.message !== `${CONNECTION_EVENT}${problem}`)) {
      await this.store.workloads.update(w.id, { status: "FAILED", events: [...w.events, event("FAILED", `${CONNECTION_EVENT}${problem}`)], updatedAt: new Date().toISOString() });
      this.routes.clear();
    } else if (problem && w.status !== "FAILED" && w.status !== "DEPLOYING") {
      // a deployment that finished since keeps showing the failure
      await this.store.workloads.update(w.id, { status: "FAILED", updatedAt: new Date().toISOString() });
      this.routes.clear();
    } else if (!problem && failing) {
      await this.store.workloads.update(w.id, { status: w.activeRevision ? "DEPLOYED" : w.status, events: [...w.events, event("DEPLOYED", `${CONNECTION_EVENT}its integration connections work again`)], updatedAt: new Date().toISOString() });
      this.routes.clear();
    }
  }

  /**
   * Replicas on this node bound to integration connections: their access tokens refreshed before
   * expiry and handed to the egress proxy when they changed.
   */
  async refreshConnections(): Promise<void> {
    if (!this.opts.connections || !this.opts.replicas.setNetwork) return;
    const revs = new Map<string, RevisionRecord | null>();
    for (const r of await this.store.workloads.listReplicas()) {
      if (r.node !== this.opts.replicas.nodeName || !this.opts.replicas.has(r.id)) continue;
      if (!revs.has(r.revisionId)) revs.set(r.revisionId, await this.store.workloads.getRevision(r.revisionId));
      const rev = revs.get(r.revisionId);
      if (!rev || !connectionsOf(rev).length) continue;
      const w = await this.store.workloads.getById(r.workloadId);
      if (!w) continue;
      try {
        const access = await this.connectionAccess(w, rev);
        const json = JSON.stringify(access?.network ?? null);
        if (this.applied.get(r.id) === json) continue;
        await this.opts.replicas.setNetwork(r.id, access?.network ?? null);
        this.applied.set(r.id, json);
      } catch (e) {
        this.log.warn({ err: e, replica: r.id }, "updating a replica's integration credentials failed");
      }
    }
  }

  /**
   * Deploys a revision: replicas up and answering (unless it has some already), then — to switch —
   * the traffic and the others drained; as a canary it only joins the routing.
   */
  deploy(workloadId: string, revisionId: string, mode: "switch" | "canary" = "switch"): Promise<void> {
    return this.serialize(workloadId, async () => {
      const rev = await this.store.workloads.getRevision(revisionId);
      if (!rev || rev.status === "FAILED") return;
      const running = (await this.store.workloads.listReplicas(workloadId)).filter((r) => r.revisionId === revisionId && r.status !== "DRAINING");
      if (!running.some((r) => r.status === "READY")) {
        for (const r of running) await this.removeReplica(r);
        if (rev.status !== "DEPLOYING") await this.store.workloads.updateRevision(revisionId, { status: "DEPLOYING" });
        if (!(await this.startReplicas(workloadId, rev))) return;
      }
      await this.store.workloads.updateRevision(revisionId, { status: "READY" });
      const w = await this.store.workloads.getById(workloadId);
      if (!w) return;
      if (mode === "canary") {
        await this.addEvent(w.id, w.status, `revision ${revisionId} is up as the canary`, revisionId);
        this.routes.clear();
        return;
      }
      const previous = w.activeRevision;
      await this.store.workloads.update(w.id, { activeRevision: revisionId, status: "DEPLOYED", events: [...w.events, event("DEPLOYED", `revision ${revisionId} takes the traffic`, revisionId)], updatedAt: new Date().toISOString() });
      this.routes.clear();
      if (previous && previous !== revisionId) await this.store.workloads.updateRevision(previous, { status: "RETIRED" });
      const canary = (w.spec as unknown as WorkloadSpecDoc).revision?.canary;
      await this.drainOthers(workloadId, [revisionId, ...(canary ? [canary] : [])]);
      await this.pruneRevisions(workloadId);
    });
  }

  /**
   * Starts a revision's replicas (minScale, at least one) and waits for each to answer; false when
   * it failed (the revision FAILED; the workload too unless `candidate`: its active revision serves on).
   */
  async startReplicas(workloadId: string, rev: RevisionRecord, candidate = false): Promise<boolean> {
    const started: ReplicaRecord[] = [];
    try {
      const target = await this.store.workloads.getById(workloadId);
      const policies = Array.isArray(target?.spec.policies) ? (target.spec.policies as string[]) : [];
      const refused = target && policies.length && this.opts.checkPlacement ? await this.opts.checkPlacement(target.workspaceId, policies) : null;
      if (refused) throw new HangarError("validation_failed", refused);
      const count = Math.max(1, Number(rev.runtime.minScale ?? 0));
      for (let i = 0; i < count; i++) started.push(await this.startReplica(workloadId, rev));
      return true;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      this.log.warn({ err: e, workload: workloadId, revision: rev.id }, "revision failed to deploy");
      for (const r of started) await this.removeReplica(r).catch(() => undefined);
      await this.store.workloads.updateRevision(rev.id, { status: "FAILED", message });
      const w = await this.store.workloads.getById(workloadId);
      if (w && candidate) await this.addEvent(w.id, w.status, `candidate revision ${rev.id} failed: ${message}`, rev.id);
      else if (w) await this.store.workloads.update(w.id, { status: "FAILED", events: [...w.events, event("FAILED", `revision ${rev.id} failed: ${message}`, rev.id)], updatedAt: new Date().toISOString() });
      this.routes.clear();
      return false;
    }
  }

  /** One replica of a revision, started and answering on its port (removed again if it does not). */
  private async startReplica(workloadId: string, rev: RevisionRecord): Promise<ReplicaRecord> {
    const replica: ReplicaRecord = { id: randomId(12), workloadId, revisionId: rev.id, node: this.opts.replicas.nodeName, status: "STARTING", createdAt: new Date().toISOString() };
    await this.store.workloads.insertReplica(replica);
    try {
      const spec = await this.replicaSpec(replica);
      if (!spec) throw new HangarError("not_found", "the workload went away during its deployment");
      await this.opts.replicas.start(spec);
      await this.opts.replicas.startApp(replica.id, appOptions(rev));
      await this.opts.replicas.waitListening(replica.id, Number(rev.runtime.port), this.opts.readinessTimeoutMs);
    } catch (e) {
      await this.removeReplica(replica).catch(() => undefined);
      throw e;
    }
    await this.store.workloads.updateReplica(replica.id, { status: "READY" });
    return { ...replica, status: "READY" };
  }

  /** Adds a replica to a revision that still serves (under load), unless one is being added or maxScale is reached. */
  private async scaleUp(workloadId: string, revisionId: string): Promise<void> {
    if (this.scaling.has(workloadId)) return;
    this.scaling.add(workloadId);
    try {
      const [w, rev, replicas] = await Promise.all([this.store.workloads.getById(workloadId), this.store.workloads.getRevision(revisionId), this.store.workloads.listReplicas(workloadId)]);
      if (!w || !rev || rev.status !== "READY") return;
      const mine = replicas.filter((r) => r.revisionId === revisionId && r.status !== "DRAINING");
      if (mine.length >= (w.spec as unknown as WorkloadSpecDoc).runtime.maxScale) return;
      const r = await this.startReplica(workloadId, rev);
      this.log.info({ workload: w.name, replica: r.id, replicas: mine.length + 1 }, "scaled up under load");
      this.routes.clear();
    } catch (e) {
      this.log.warn({ err: e, workload: workloadId }, "scaling up failed");
    } finally {
      this.scaling.delete(workloadId);
    }
  }

  /** Removes replicas beyond max(1, minScale) that have been idle for scaleDownIdleMs. */
  async scaleDown(): Promise<void> {
    const now = Date.now();
    for (const w of await this.store.workloads.listAll()) {
      const replicas = (await this.store.workloads.listReplicas(w.id)).filter((r) => r.revisionId === w.activeRevision && r.status === "READY");
      const rev = w.activeRevision ? await this.store.workloads.getRevision(w.activeRevision) : null;
      const keep = Math.max(1, Number(rev?.runtime.minScale ?? 0));
      // newest first: the oldest (the minScale ones) stay
      const extra = replicas.sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, Math.max(0, replicas.length - keep));
      for (const r of extra) {
        const last = this.opts.replicas.lastActivity(r.id);
        if ((this.inflight.get(r.id) ?? 0) > 0 || (last !== null && now - last < this.opts.scaleDownIdleMs)) continue;
        await this.serialize(w.id, async () => {
          await this.store.workloads.updateReplica(r.id, { status: "DRAINING" });
          this.routes.clear();
          if ((this.inflight.get(r.id) ?? 0) === 0) await this.removeReplica(r);
          else await this.store.workloads.updateReplica(r.id, { status: "READY" });
        });
        this.log.info({ workload: w.name, replica: r.id }, "scaled down: idle");
      }
    }
  }

  /** Starts the periodic scale-down. */
  start(): void {
    this.sweeper ??= setInterval(() => void this.scaleDown().catch((e) => this.log.warn({ err: e }, "scale-down failed")), Math.min(30_000, Math.max(500, this.opts.scaleDownIdleMs / 4)));
    this.sweeper.unref?.();
    if (this.opts.connections && !this.refresher) {
      let running = false;
      this.refresher = setInterval(() => {
        if (running) return;
        running = true;
        void this.refreshConnections()
          .catch((e) => this.log.warn({ err: e }, "refreshing integration connections failed"))
          .finally(() => (running = false));
      }, this.opts.connectionRefreshMs);
      this.refresher.unref?.();
    }
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    if (this.refresher) clearInterval(this.refresher);
    this.refresher = null;
  }

  // ---- for rolling replacements (replacements.ts)

  /** A revision a replacement moves to: the workload's runtime with another image (not deployed). */
  async candidateRevision(w: WorkloadRecord, image: string, memory?: number): Promise<RevisionRecord> {
    const spec = w.spec as unknown as WorkloadSpecDoc;
    return this.newRevision(w, { ...spec.runtime, image, ...(memory ? { memory } : {}) }, "LAUNCHING", spec.integrationConnections);
  }

  /**
   * The revision takes all the traffic; the others' replicas stop getting requests and, unless
   * `keepOthers` (a rollback window), go once their in-flight requests end. The stored spec names
   * the new image.
   */
  promote(workloadId: string, revisionId: string, keepOthers: boolean): Promise<void> {
    return this.serialize(workloadId, async () => {
      const [w, rev] = await Promise.all([this.store.workloads.getById(workloadId), this.store.workloads.getRevision(revisionId)]);
      if (!w || !rev) return;
      for (const r of await this.store.workloads.listReplicas(workloadId)) if (r.revisionId === revisionId && r.status === "DRAINING") await this.store.workloads.updateReplica(r.id, { status: "READY" });
      const spec = w.spec as unknown as WorkloadSpecDoc;
      const { canary: _dropped, ...revision } = spec.revision ?? {};
      await this.store.workloads.update(w.id, {
        activeRevision: revisionId,
        status: "DEPLOYED",
        spec: { ...spec, runtime: { ...spec.runtime, image: rev.image, memory: Number(rev.runtime.memory) }, revision: { ...revision, active: revisionId } } as unknown as Record<string, unknown>,
        events: [...w.events, event("DEPLOYED", `revision ${revisionId} takes the traffic`, revisionId)],
        updatedAt: new Date().toISOString(),
      });
      if (w.activeRevision && w.activeRevision !== revisionId) await this.store.workloads.updateRevision(w.activeRevision, { status: "RETIRED" });
      await this.store.workloads.updateRevision(revisionId, { status: "READY" });
      this.routes.clear();
      if (!keepOthers) await this.drainOthers(workloadId, [revisionId]);
      else {
        for (const r of await this.store.workloads.listReplicas(workloadId)) if (r.revisionId !== revisionId) await this.store.workloads.updateReplica(r.id, { status: "DRAINING" });
        this.routes.clear();
      }
      await this.pruneRevisions(workloadId);
    });
  }

  /** Removes a revision's replicas (after their in-flight requests, within the drain time). */
  retire(workloadId: string, revisionId: string): Promise<void> {
    return this.serialize(workloadId, async () => {
      const w = await this.store.workloads.getById(workloadId);
      if (w) await this.drainOthers(workloadId, (await this.store.workloads.listRevisions(workloadId)).map((r) => r.id).filter((id) => id !== revisionId));
    });
  }

  /** Replicas of other revisions: no new requests reach them; they go once their in-flight ones finish. */
  private async drainOthers(workloadId: string, keep: string[]): Promise<void> {
    const old = (await this.store.workloads.listReplicas(workloadId)).filter((r) => !keep.includes(r.revisionId));
    for (const r of old) await this.store.workloads.updateReplica(r.id, { status: "DRAINING" });
    this.routes.clear();
    const deadline = Date.now() + this.opts.drainMs;
    while (old.some((r) => (this.inflight.get(r.id) ?? 0) > 0) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    for (const r of old) await this.removeReplica(r);
  }

  private async removeReplica(r: ReplicaRecord): Promise<void> {
    await this.opts.replicas.destroy(r.id);
    this.applied.delete(r.id);
    await this.store.workloads.deleteReplica(r.id);
    this.inflight.delete(r.id);
    this.routes.clear();
  }

  /** Keeps the newest revisions (and always the active one). */
  private async pruneRevisions(workloadId: string): Promise<void> {
    const w = await this.store.workloads.getById(workloadId);
    const revs = await this.store.workloads.listRevisions(workloadId);
    for (const r of revs.slice(this.opts.keepRevisions)) if (r.id !== w?.activeRevision) await this.store.workloads.deleteRevision(r.id);
  }

  /** After a restart: deployments left mid-way start again (their half-started replicas go first). */
  async resume(): Promise<void> {
    for (const w of await this.store.workloads.listAll()) {
      const deploying = (await this.store.workloads.listRevisions(w.id)).find((r) => r.status === "DEPLOYING");
      if (!deploying) continue;
      for (const r of await this.store.workloads.listReplicas(w.id)) if (r.revisionId === deploying.id && r.status !== "READY") await this.removeReplica(r);
      void this.deploy(w.id, deploying.id, (w.spec as unknown as WorkloadSpecDoc).revision?.canary === deploying.id ? "canary" : "switch");
    }
  }

  /** Replicas the node had to start again after a restart (their sandbox was gone): their app starts again too. */
  async restarted(ids: string[]): Promise<void> {
    const replicas = new Map((await this.store.workloads.listReplicas()).map((r) => [r.id, r]));
    for (const id of ids.filter((i) => replicas.has(i))) {
      const rev = await this.store.workloads.getRevision(replicas.get(id)!.revisionId);
      await this.opts.replicas.startApp(id, appOptions(rev)).catch((e) => this.log.warn({ err: e, replica: id }, "restarting a replica's app failed"));
    }
  }

  /** Images revisions still name (kept by the builds plane's garbage collection). */
  async imagesInUse(): Promise<string[]> {
    const out: string[] = [];
    for (const w of await this.store.workloads.listAll()) for (const r of await this.store.workloads.listRevisions(w.id)) out.push(r.image);
    return out;
  }

  /** Every replica's node spec, for the node to adopt after a restart. */
  async nodeSpecs(): Promise<NodeSandboxSpec[]> {
    const out: NodeSandboxSpec[] = [];
    for (const r of await this.store.workloads.listReplicas()) {
      const spec = await this.replicaSpec(r);
      if (spec) out.push(spec);
    }
    return out;
  }

  // ---- routing

  /** How the run plane reaches a workload of a workspace (null: no such workload), cached for a second. */
  routing(workspaceId: string, kind: string, name: string): Promise<Routing | null> {
    return this.routes.getOrLoad(`${workspaceId}/${kind}/${name}`, async () => {
      const w = await this.store.workloads.get(workspaceId, kind, name);
      if (!w) return null;
      const spec = w.spec as unknown as WorkloadSpecDoc;
      const all = w.activeRevision ? await this.store.workloads.listReplicas(w.id) : [];
      const ready = (revisionId: string) => all.filter((r) => r.revisionId === revisionId && r.status === "READY").map((r) => r.id);
      const rev = w.activeRevision ? await this.store.workloads.getRevision(w.activeRevision) : null;
      const c = spec.triggers?.find((t) => t.type === "http-async" && t.enabled !== false && t.configuration?.callbackUrl)?.configuration;
      const callback = c?.callbackUrl && c.callbackSecret ? { url: c.callbackUrl, secret: this.opts.secrets.open(c.callbackSecret) } : null;
      const mcp = w.kind !== "functions" ? undefined : rev?.runtime.transport === "stdio" ? "bridged" : spec.runtime.transport === "websocket" && !(rev && isCodeModeImage(rev.image)) ? "websocket" : "http-stream";
      const r = spec.revision;
      const canaryRev = rev && r?.canary && r.canary !== rev.id && (r.canaryPercent ?? 0) > 0 ? await this.store.workloads.getRevision(r.canary) : null;
      const canary = canaryRev && ready(canaryRev.id).length ? { revisionId: canaryRev.id, port: Number(canaryRev.runtime.port), replicas: ready(canaryRev.id), percent: r!.canaryPercent! } : null;
      return { workload: w, public: spec.public === true, port: Number(rev?.runtime.port ?? 0), replicas: rev ? ready(rev.id) : [], canary, stickyTtl: r?.stickySessionTtl ?? 0, callback, ...(mcp ? { mcp } : {}) };
    });
  }

  /**
   * The replica a request goes to: the revision first (the one a sticky client was on, else the
   * canary for canaryPercent of requests, else the active one), then its READY replica on this
   * node with the fewest requests in flight. The caller calls `done()` when the request ends.
   * `pinned`: the replica holding the client's MCP session (named in the session id), always
   * taken; 404 when it is gone.
   */
  pick(r: Routing, stickyRevision?: string, prefer?: string, pinned?: string): ReplicaPick {
    const w = r.workload;
    if (!w.activeRevision) {
      throw new HangarError("sandbox_unavailable", `${KIND_SINGULAR[w.kind]} '${w.name}' has no running revision yet (${w.status})`, { retryable: true });
    }
    const pinnedOn = pinned ? (r.canary?.replicas.includes(pinned) ? "canary" : r.replicas.includes(pinned) ? "active" : null) : null;
    // the session lived on a replica that is gone: the MCP answer is 404, and the client starts a new session
    if (pinned && (!pinnedOn || !this.opts.replicas.has(pinned))) throw new HangarError("mcp_session_not_found", `the replica that held MCP session '${pinned}.…' is gone: initialize a new session`);
    const onCanary = r.canary && (pinnedOn ? pinnedOn === "canary" : stickyRevision ? stickyRevision === r.canary.revisionId : Math.random() * 100 < r.canary.percent);
    const [revisionId, port, replicas] = onCanary ? [r.canary!.revisionId, r.canary!.port, r.canary!.replicas] : [w.activeRevision, r.port, r.replicas];
    const ready = replicas.filter((id) => this.opts.replicas.has(id));
    if (!ready.length) throw new HangarError("sandbox_unavailable", `${KIND_SINGULAR[w.kind]} '${w.name}' has no ready replica`, { retryable: true });
    const load = (id: string) => this.inflight.get(id) ?? 0;
    const least = ready.reduce((a, b) => (load(b) < load(a) ? b : a));
    // a connection already open to a replica keeps it unless another is much less busy
    const best = pinned ? pinned : prefer && ready.includes(prefer) && load(prefer) <= 2 * load(least) + 1 ? prefer : least;
    this.inflight.set(best, load(best) + 1);
    // even the least busy replica is over the target: one more, up to maxScale
    if (load(least) > this.opts.targetConcurrency && ready.length < (w.spec as unknown as WorkloadSpecDoc).runtime.maxScale) void this.scaleUp(w.id, revisionId);
    let done = false;
    return {
      replicaId: best,
      revisionId,
      port,
      done: () => {
        if (done) return;
        done = true;
        this.inflight.set(best, Math.max(0, (this.inflight.get(best) ?? 1) - 1));
      },
    };
  }

  /** The workload's own API key: derived from its id with the data-dir key, never stored in clear. */
  private keyOf(w: WorkloadRecord): string {
    return `hgr_${this.opts.secrets.derive(`workload-key:${w.id}`)}`;
  }

  // ---- secrets

  /** Seals env values marked secret; a masked value sent back ("") keeps the stored one. */
  private seal(spec: WorkloadSpecDoc, prev: WorkloadSpecDoc | null): WorkloadSpecDoc {
    const before = new Map((prev?.runtime.envs ?? []).map((e) => [e.name, e]));
    const envs = spec.runtime.envs?.map((e) => {
      if (!e.secret) return e;
      const old = before.get(e.name);
      if (e.value === "" && old?.secret) return { ...e, value: old.value };
      return { ...e, value: e.value === "" ? "" : this.opts.secrets.seal(e.value) };
    });
    return { ...spec, runtime: { ...spec.runtime, ...(envs ? { envs } : {}) } };
  }

  reveal(spec: WorkloadSpecDoc): WorkloadSpecDoc {
    const envs = spec.runtime.envs?.map((e) => (e.secret && e.value ? { ...e, value: this.opts.secrets.open(e.value) } : e));
    const triggers = spec.triggers?.map((t) => (t.configuration?.callbackSecret ? { ...t, configuration: { ...t.configuration, callbackSecret: this.opts.secrets.open(t.configuration.callbackSecret) } } : t));
    return { ...spec, runtime: { ...spec.runtime, ...(envs ? { envs } : {}) }, ...(triggers ? { triggers } : {}) };
  }
}

/** Prefix of the events about integration connections. */
const CONNECTION_EVENT = "integration connection: ";

/** The integration connections a revision is bound to. */
function connectionsOf(rev: RevisionRecord): string[] {
  const c = rev.runtime.integrationConnections;
  return Array.isArray(c) ? (c as string[]) : [];
}

function validLabels(raw: unknown): Record<string, string> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new HangarError("validation_failed", "metadata.labels: an object of strings");
  for (const [k, v] of Object.entries(raw)) if (typeof v !== "string") throw new HangarError("validation_failed", `metadata.labels.${k}: a string`);
  return raw as Record<string, string>;
}
