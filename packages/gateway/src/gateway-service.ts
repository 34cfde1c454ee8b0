// The model gateway's control-plane state: integration connections (provider credentials, sealed,
// write-only), models (one endpoint per provider model) and policies. Plain service over the store.

import { randomUUID } from "node:crypto";
import { HangarError, describeNameProblem } from "@hangar/common";
import { type GatewayResourceRecord, type ListQuery, type Page, type SecretBox, type Store, StoreConflictError, type WorkspaceRecord } from "@hangar/store";
import { type NodePlacement, type PolicySpec, normalizePolicy, placementAllowed } from "./policies.js";
import { MCP_INTEGRATIONS } from "./integrations.js";
import { MODEL_TYPES, PROVIDERS, type ProviderDef } from "./providers/index.js";
import { checkUpstream } from "./upstream-guard.js";

export const KINDS = { connections: "connections", models: "models", policies: "policies" } as const;
type Kind = (typeof KINDS)[keyof typeof KINDS];
const SINGULAR: Record<Kind, string> = { connections: "integration connection", models: "model", policies: "policy" };
/** Revisions kept per model. */
const KEEP_REVISIONS = 10;

export interface ResourceInput {
  metadata?: { name?: unknown; displayName?: unknown; labels?: unknown };
  spec?: unknown;
}

export interface ConnectionSpec {
  integration: string;
  config: Record<string, string>;
  /** Sealed values. */
  secret: Record<string, string>;
  sandbox?: boolean;
}

export interface ModelRuntime {
  type: string;
  model?: string;
  endpointName?: string;
  organization?: string;
  generation?: "mk3" | "mk2";
}

export interface ModelSpec {
  enabled?: boolean;
  runtime: ModelRuntime;
  integrationConnections?: string[];
  policies?: string[];
  flavors?: { type: string; name: string }[];
  sandbox?: boolean;
}

/** Everything the run plane needs to forward a model's requests, or why it cannot. */
export interface ResolvedModel {
  workspaceId: string;
  name: string;
  spec: ModelSpec;
  /** Set when the model cannot serve (disabled, no connection, placement refused). */
  unavailable?: string;
  provider?: ProviderDef;
  /** The connection's base URL (origin + path prefix, no trailing '/'). */
  baseUrl?: string;
  config?: Record<string, string>;
  /** Headers that authenticate with the provider (the connection's key). */
  authHeaders?: Record<string, string>;
  /** maxToken policies attached to the model. */
  budgets: { name: string; spec: PolicySpec }[];
}

export interface GatewayServiceOptions {
  store: Store;
  secrets: SecretBox;
  /** Where this node is and what it runs on (location and flavor policies). */
  placement: NodePlacement;
  /** Called after every change (run-plane caches forget what they hold). */
  onChange?: () => void;
}

function bad(message: string): never {
  throw new HangarError("validation_failed", message);
}

function stringMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) bad(`${field}: must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (typeof val !== "string") bad(`${field}.${k}: must be a string`);
    out[k] = val;
  }
  return out;
}

function stringList(v: unknown, field: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) bad(`${field}: must be a list of names`);
  return v as string[];
}

/** The base URL of a connection: config.url (or endpoint, baseUrl), else the provider's. */
export function connectionBaseUrl(provider: ProviderDef, config: Record<string, string>): string | undefined {
  const raw = config.url ?? config.endpoint ?? config.baseUrl ?? provider.baseUrl;
  return raw?.replace(/\/+$/, "");
}

export class GatewayService {
  constructor(private readonly opts: GatewayServiceOptions) {}

  get placement(): NodePlacement {
    return this.opts.placement;
  }

  // ---- generic ---------------------------------------------------------------------------

  async get(ws: WorkspaceRecord, kind: Kind, name: string): Promise<GatewayResourceRecord> {
    const rec = await this.opts.store.gateway.get(ws.id, kind, name);
    if (!rec) throw new HangarError("not_found", `${SINGULAR[kind]} '${name}' not found in workspace '${ws.name}'`);
    return rec;
  }

  list(ws: WorkspaceRecord, kind: Kind, query: ListQuery): Promise<Page<GatewayResourceRecord>> {
    return this.opts.store.gateway.list(ws.id, kind, query);
  }

  listAll(ws: WorkspaceRecord, kind: Kind): Promise<GatewayResourceRecord[]> {
    return this.opts.store.gateway.listAll(ws.id, kind);
  }

  /** Create-or-update of a document whose spec `normalize` checks (given the stored one, if any). */
  private async apply(
    ws: WorkspaceRecord,
    kind: Kind,
    input: ResourceInput,
    how: { name?: string; mustCreate?: boolean },
    normalize: (spec: unknown, existing: GatewayResourceRecord | null) => Promise<Record<string, unknown>>,
  ): Promise<GatewayResourceRecord> {
    if (!input || typeof input !== "object") bad("body: must be an object with metadata and spec");
    const bodyName = input.metadata?.name;
    if (bodyName !== undefined && typeof bodyName !== "string") bad("metadata.name: must be a string");
    if (how.name && bodyName && bodyName !== how.name) bad(`metadata.name '${bodyName}' differs from the name in the path '${how.name}'`);
    const name = how.name ?? bodyName;
    if (!name) bad("metadata.name: required");
    const problem = describeNameProblem(name);
    if (problem) throw new HangarError("invalid_name", problem);
    const displayName = input.metadata?.displayName;
    if (displayName !== undefined && typeof displayName !== "string") bad("metadata.displayName: must be a string");
    const labels = input.metadata?.labels === undefined ? undefined : stringMap(input.metadata.labels, "metadata.labels");
    const now = new Date().toISOString();
    const existing = await this.opts.store.gateway.get(ws.id, kind, name);
    if (existing && how.mustCreate) throw new HangarError("already_exists", `${SINGULAR[kind]} '${name}' already exists`);
    const spec = await normalize(input.spec, existing);
    let rec: GatewayResourceRecord | null;
    if (!existing) {
      const revisions = kind === "models" ? [{ id: randomUUID(), createdAt: now, status: "DEPLOYED" }] : [];
      try {
        rec = await this.opts.store.gateway.insert({
          id: randomUUID(),
          workspaceId: ws.id,
          kind,
          name,
          displayName: displayName ?? name,
          labels: labels ?? {},
          spec,
          status: "DEPLOYED",
          events: [{ type: "deployment", status: "DEPLOYED", message: `${SINGULAR[kind]} created`, time: now }],
          revisions,
          createdAt: now,
          updatedAt: now,
          version: 1,
        });
      } catch (e) {
        if (e instanceof StoreConflictError) throw new HangarError("already_exists", `${SINGULAR[kind]} '${name}' already exists`);
        throw e;
      }
    } else {
      const changed = JSON.stringify(existing.spec) !== JSON.stringify(spec);
      const revisions = kind === "models" && changed ? [{ id: randomUUID(), createdAt: now, status: "DEPLOYED" }, ...existing.revisions].slice(0, KEEP_REVISIONS) : existing.revisions;
      const events = changed ? [...existing.events, { type: "deployment", status: "DEPLOYED", message: `${SINGULAR[kind]} updated`, time: now }].slice(-20) : existing.events;
      rec = await this.opts.store.gateway.update(existing.id, { displayName: displayName ?? existing.displayName, labels: labels ?? existing.labels, spec, revisions, events, updatedAt: now }, existing.version);
      if (!rec) throw new HangarError("conflict", `${SINGULAR[kind]} '${name}' was changed by another request; retry`);
    }
    this.opts.onChange?.();
    return rec;
  }

  async delete(ws: WorkspaceRecord, kind: Kind, name: string): Promise<GatewayResourceRecord> {
    const rec = await this.get(ws, kind, name);
    if (kind === "connections") {
      const users = (await this.listAll(ws, "models")).filter((m) => this.connectionNamesOf(m).includes(name)).map((m) => m.name);
      if (users.length) throw new HangarError("conflict", `integration connection '${name}' is used by model(s) ${users.join(", ")}`);
      const fns = (await this.opts.store.workloads.listAll()).filter((w) => w.workspaceId === ws.id && Array.isArray(w.spec.integrationConnections) && (w.spec.integrationConnections as unknown[]).includes(name)).map((w) => w.name);
      if (fns.length) throw new HangarError("conflict", `integration connection '${name}' is used by function(s) ${fns.join(", ")}`);
      await this.opts.store.connectionTokens.delete(ws.id, name);
    }
    if (kind === "policies") {
      const users = (await this.listAll(ws, "models")).filter((m) => ((m.spec as unknown as ModelSpec).policies ?? []).includes(name)).map((m) => m.name);
      if (users.length) throw new HangarError("conflict", `policy '${name}' is attached to model(s) ${users.join(", ")}`);
    }
    await this.opts.store.gateway.delete(rec.id);
    this.opts.onChange?.();
    return { ...rec, status: "DELETING" };
  }

  // ---- integration connections -----------------------------------------------------------

  /** `how.admin`: the caller holds an admin key (may point a connection at loopback or private addresses). */
  applyConnection(ws: WorkspaceRecord, input: ResourceInput, how: { name?: string; mustCreate?: boolean; admin?: boolean }): Promise<GatewayResourceRecord> {
    return this.apply(ws, "connections", input, how, async (raw, existing) => {
      const s = (raw ?? {}) as Record<string, unknown>;
      if (typeof s !== "object" || Array.isArray(s)) bad("spec: must be an object");
      const integration = s.integration ?? (existing?.spec as ConnectionSpec | undefined)?.integration;
      if (typeof integration === "string" && MCP_INTEGRATIONS.has(integration)) return this.mcpConnectionSpec(integration, s, existing, how.admin === true);
      if (typeof integration !== "string" || !PROVIDERS.has(integration)) bad(`spec.integration: must be one of ${[...PROVIDERS.keys(), ...MCP_INTEGRATIONS.keys()].join(", ")} (got ${JSON.stringify(integration)})`);
      const provider = PROVIDERS.get(integration)!;
      const config = stringMap(s.config, "spec.config");
      const url = connectionBaseUrl(provider, config);
      if (!url) bad(`spec.config.url: the ${provider.displayName} integration needs the URL of its endpoint`);
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        bad(`spec.config.url: ${JSON.stringify(url)} is not a URL`);
      }
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") bad("spec.config.url: must be an http(s) URL");
      await checkUpstream(parsed, how.admin === true);
      // secrets are write-only: values left out (or sent back empty, as responses show them) keep the stored ones
      const stored = existing && (existing.spec as unknown as ConnectionSpec).integration === integration ? (existing.spec as unknown as ConnectionSpec).secret : {};
      const given = stringMap(s.secret, "spec.secret");
      const secret: Record<string, string> = { ...stored };
      for (const [k, v] of Object.entries(given)) if (v !== "") secret[k] = this.opts.secrets.seal(v);
      for (const k of provider.secretKeys) if (!secret[k]) bad(`spec.secret.${k}: the ${provider.displayName} integration needs it`);
      const spec: ConnectionSpec = { integration, config, secret };
      if (typeof s.sandbox === "boolean") spec.sandbox = s.sandbox;
      return spec as unknown as Record<string, unknown>;
    });
  }

  /** The spec of a connection to an MCP integration (gmail…): its OAuth secrets sealed, endpoint overrides checked. */
  private async mcpConnectionSpec(integration: string, s: Record<string, unknown>, existing: GatewayResourceRecord | null, admin: boolean): Promise<Record<string, unknown>> {
    const def = MCP_INTEGRATIONS.get(integration)!;
    const config = stringMap(s.config, "spec.config");
    for (const k of ["tokenUrl", "apiUrl"] as const) {
      if (config[k] === undefined) continue;
      let u: URL;
      try {
        u = new URL(config[k]);
      } catch {
        bad(`spec.config.${k}: ${JSON.stringify(config[k])} is not a URL`);
      }
      if (u.protocol !== "https:" && u.protocol !== "http:") bad(`spec.config.${k}: must be an http(s) URL`);
      await checkUpstream(u, admin);
    }
    const stored = existing && (existing.spec as unknown as ConnectionSpec).integration === integration ? (existing.spec as unknown as ConnectionSpec).secret : {};
    const secret: Record<string, string> = { ...stored };
    for (const [k, v] of Object.entries(stringMap(s.secret, "spec.secret"))) if (v !== "") secret[k] = this.opts.secrets.seal(v);
    for (const k of def.secretKeys) if (!secret[k]) bad(`spec.secret.${k}: the ${def.displayName} integration needs it`);
    const spec: ConnectionSpec = { integration, config, secret };
    if (typeof s.sandbox === "boolean") spec.sandbox = s.sandbox;
    return spec as unknown as Record<string, unknown>;
  }

  /** A connection's secrets in clear (for the run plane only). */
  revealSecrets(rec: GatewayResourceRecord): Record<string, string> {
    const sealed = (rec.spec as unknown as ConnectionSpec).secret ?? {};
    return Object.fromEntries(Object.entries(sealed).map(([k, v]) => [k, this.opts.secrets.open(v)]));
  }

  // ---- models ------------------------------------------------------------------------------

  private connectionNamesOf(m: GatewayResourceRecord): string[] {
    return (m.spec as unknown as ModelSpec).integrationConnections ?? [];
  }

  applyModel(ws: WorkspaceRecord, input: ResourceInput, how: { name?: string; mustCreate?: boolean }): Promise<GatewayResourceRecord> {
    return this.apply(ws, "models", input, how, async (raw) => {
      const s = (raw ?? {}) as Record<string, unknown>;
      if (typeof s !== "object" || Array.isArray(s)) bad("spec: must be an object");
      const r = (s.runtime ?? {}) as Record<string, unknown>;
      if (typeof r !== "object" || Array.isArray(r)) bad("spec.runtime: must be an object");
      if (typeof r.type !== "string" || !MODEL_TYPES.has(r.type)) bad(`spec.runtime.type: must be one of ${[...MODEL_TYPES].join(", ")} (got ${JSON.stringify(r.type)})`);
      const runtime: ModelRuntime = { type: r.type };
      for (const k of ["model", "endpointName", "organization"] as const) {
        if (r[k] === undefined || r[k] === null) continue;
        if (typeof r[k] !== "string") bad(`spec.runtime.${k}: must be a string`);
        runtime[k] = r[k] as string;
      }
      if (r.generation !== undefined && r.generation !== null && r.generation !== "") {
        if (r.generation !== "mk3" && r.generation !== "mk2") bad("spec.runtime.generation: must be mk3 or mk2");
        runtime.generation = r.generation;
      }
      const spec: ModelSpec = { runtime };
      if (s.enabled !== undefined) {
        if (typeof s.enabled !== "boolean") bad("spec.enabled: must be a boolean");
        spec.enabled = s.enabled;
      }
      if (typeof s.sandbox === "boolean") spec.sandbox = s.sandbox;
      const connections = stringList(s.integrationConnections, "spec.integrationConnections");
      if (connections) {
        for (const c of connections) {
          const rec = await this.opts.store.gateway.get(ws.id, "connections", c);
          if (!rec) bad(`spec.integrationConnections: integration connection '${c}' not found`);
          const provider = PROVIDERS.get((rec.spec as unknown as ConnectionSpec).integration);
          if (!provider) bad(`spec.integrationConnections: '${c}' is a connection to an MCP integration, which serves functions, not models`);
          if (!provider.modelTypes.includes(runtime.type)) bad(`spec.integrationConnections: '${c}' is a ${provider.displayName} connection, which serves ${provider.modelTypes.join(", ")} models, not ${runtime.type}`);
        }
        spec.integrationConnections = connections;
      }
      const policies = stringList(s.policies, "spec.policies");
      if (policies) {
        for (const p of policies) {
          const rec = await this.opts.store.gateway.get(ws.id, "policies", p);
          if (!rec) bad(`spec.policies: policy '${p}' not found`);
          const ps = rec.spec as unknown as PolicySpec;
          if (ps.resourceTypes?.length && !ps.resourceTypes.includes("model")) bad(`spec.policies: policy '${p}' applies to ${ps.resourceTypes.join(", ")}, not models`);
        }
        spec.policies = policies;
      }
      if (s.flavors !== undefined) {
        if (!Array.isArray(s.flavors)) bad("spec.flavors: must be a list");
        spec.flavors = s.flavors as ModelSpec["flavors"];
      }
      return spec as unknown as Record<string, unknown>;
    });
  }

  /** What serves a model now: its connection, credentials and budgets, or why it cannot serve. */
  async resolveModel(workspaceId: string, name: string): Promise<ResolvedModel | null> {
    const store = this.opts.store.gateway;
    const rec = await store.get(workspaceId, "models", name);
    if (!rec) return null;
    const spec = rec.spec as unknown as ModelSpec;
    const policies: { name: string; spec: PolicySpec }[] = [];
    for (const p of spec.policies ?? []) {
      const pr = await store.get(workspaceId, "policies", p);
      if (pr) policies.push({ name: p, spec: pr.spec as unknown as PolicySpec });
    }
    const out: ResolvedModel = { workspaceId, name, spec, budgets: policies.filter((p) => p.spec.type === "maxToken") };
    if (spec.enabled === false) return { ...out, unavailable: `model '${name}' is disabled (spec.enabled: false)` };
    const placed = placementAllowed(policies, this.opts.placement);
    if (!placed.ok) return { ...out, unavailable: `no node satisfies the policies of model '${name}': ${placed.reason}` };
    let conn: GatewayResourceRecord | null = null;
    for (const c of spec.integrationConnections ?? []) {
      conn = await store.get(workspaceId, "connections", c);
      if (conn) break;
    }
    if (!conn && !spec.integrationConnections?.length) {
      // none named: the workspace's first connection whose provider serves this type
      conn = (await store.listAll(workspaceId, "connections")).find((c) => PROVIDERS.get((c.spec as unknown as ConnectionSpec).integration)?.modelTypes.includes(spec.runtime.type)) ?? null;
    }
    if (!conn) return { ...out, unavailable: `model '${name}' has no integration connection for provider type '${spec.runtime.type}'` };
    const cs = conn.spec as unknown as ConnectionSpec;
    const provider = PROVIDERS.get(cs.integration);
    if (!provider) return { ...out, unavailable: `integration '${cs.integration}' is not supported` };
    const secrets = this.revealSecrets(conn);
    const authHeaders: Record<string, string> = {};
    const key = provider.auth ? secrets[provider.auth.secret] : undefined;
    if (provider.auth && key) authHeaders[provider.auth.header] = provider.auth.prefix + key;
    if (spec.runtime.organization && provider.integration === "openai") authHeaders["openai-organization"] = spec.runtime.organization;
    return { ...out, provider, baseUrl: connectionBaseUrl(provider, cs.config)!, config: cs.config, authHeaders };
  }

  // ---- policies ----------------------------------------------------------------------------

  /** Why this node may not run a workload with these policies (location, flavor), or null when it may. */
  async placementProblem(workspaceId: string, names: string[]): Promise<string | null> {
    const policies: { name: string; spec: PolicySpec }[] = [];
    for (const n of names) {
      const rec = await this.opts.store.gateway.get(workspaceId, "policies", n);
      if (!rec) return `policy '${n}' not found`;
      policies.push({ name: n, spec: rec.spec as unknown as PolicySpec });
    }
    const r = placementAllowed(policies, this.opts.placement);
    return r.ok ? null : `no node satisfies the workload's policies: ${r.reason}`;
  }

  applyPolicy(ws: WorkspaceRecord, input: ResourceInput, how: { name?: string; mustCreate?: boolean }): Promise<GatewayResourceRecord> {
    return this.apply(ws, "policies", input, how, async (raw) => normalizePolicy(raw) as unknown as Record<string, unknown>);
  }

  /** Resources whose spec.policies names the policy. */
  async policyUsages(ws: WorkspaceRecord, name: string): Promise<Record<string, string[]>> {
    await this.get(ws, "policies", name);
    const models = (await this.listAll(ws, "models")).filter((m) => ((m.spec as unknown as ModelSpec).policies ?? []).includes(name)).map((m) => m.name);
    const workloads = (await this.opts.store.workloads.listAll()).filter((w) => w.workspaceId === ws.id && Array.isArray(w.spec.policies) && (w.spec.policies as unknown[]).includes(name));
    return {
      models,
      agents: workloads.filter((w) => w.kind === "agents").map((w) => w.name),
      functions: workloads.filter((w) => w.kind === "functions").map((w) => w.name),
      jobs: workloads.filter((w) => w.kind === "jobs").map((w) => w.name),
      sandboxes: [],
    };
  }
}
