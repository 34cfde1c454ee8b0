// The spec of an agent (or function) as a user sends it: validated, defaults filled. Only what
// changes how it runs (image, memory, envs, port) makes a new revision.

import { HangarError, fieldError as fail, isObject as isObj, intField as intIn } from "@hangar/common";
import { type EnvSpec, type PortSpec, normalizeEnvs, normalizePorts } from "@hangar/control-plane";

export const WORKLOAD_DEFAULT_MEMORY_MB = 2048;
/** Where an agent's server listens when its spec names no port: Blaxel's templates use PORT || 80. */
export const DEFAULT_APP_PORT = 80;
export const MAX_SCALE = 10;
export const MCP_TRANSPORTS = ["http-stream", "websocket", "stdio"] as const;
export type McpTransport = (typeof MCP_TRANSPORTS)[number];

export interface TriggerSpec {
  id?: string;
  type: string;
  enabled?: boolean;
  configuration?: { callbackUrl?: string; callbackSecret?: string; [k: string]: unknown };
}

export interface WorkloadRuntime {
  /** Image reference; absent until a deploy from source built one. */
  image?: string;
  memory: number;
  envs?: EnvSpec[];
  ports?: PortSpec[];
  minScale: number;
  maxScale: number;
  generation?: string;
  /**
   * Functions: how their MCP server speaks ("http-stream", the default, or "websocket"; Hangar also
   * takes "stdio": the image's command speaks MCP on stdin/stdout, served by Hangar's bridge).
   */
  transport?: McpTransport;
  /** Blaxel's runtime.type ("mcp" for an MCP function). */
  type?: string;
  /** Set by Hangar: the built-in MCP server an image-less function bound to a connection runs (e.g. "gmail"). */
  builtin?: string;
}

/** The spec as stored (envs marked secret hold sealed values). */
export interface WorkloadSpecDoc {
  enabled: boolean;
  public: boolean;
  region?: string;
  runtime: WorkloadRuntime;
  triggers?: TriggerSpec[];
  policies?: string[];
  /** Integration connections of the workspace whose credentials the replicas' API calls get injected. */
  integrationConnections?: string[];
  revision?: RevisionSpec;
}

/** Which revisions take the traffic (Blaxel's spec.revision). */
export interface RevisionSpec {
  /** The revision that takes the traffic; setting an older one rolls back. */
  active?: string;
  /** A second revision that takes canaryPercent of the traffic. */
  canary?: string;
  canaryPercent?: number;
  /** Seconds a client stays on the revision it first reached (0: off). */
  stickySessionTtl?: number;
  traffic?: number;
}

type Json = Record<string, unknown>;

export function normalizeWorkloadSpec(raw: unknown): WorkloadSpecDoc {
  if (raw !== undefined && !isObj(raw)) fail("spec", "must be an object");
  const spec = (raw ?? {}) as Json;
  const rt = spec.runtime ?? {};
  if (!isObj(rt)) fail("spec.runtime", "must be an object");
  if (rt.image !== undefined && (typeof rt.image !== "string" || !rt.image.trim())) fail("spec.runtime.image", "a non-empty image reference");
  const runtime: WorkloadRuntime = {
    ...(typeof rt.image === "string" ? { image: rt.image.trim() } : {}),
    memory: intIn(rt.memory, "spec.runtime.memory", 128, 65_536, WORKLOAD_DEFAULT_MEMORY_MB),
    minScale: intIn(rt.minScale, "spec.runtime.minScale", 0, MAX_SCALE, 0),
    maxScale: intIn(rt.maxScale, "spec.runtime.maxScale", 1, MAX_SCALE, MAX_SCALE),
  };
  if (runtime.minScale > runtime.maxScale) fail("spec.runtime.minScale", "must not exceed maxScale");
  const envs = normalizeEnvs(rt.envs);
  if (envs) runtime.envs = envs;
  // an agent's own ports: any, the first is where its server listens
  const ports = Array.isArray(rt.ports) ? normalizePorts(rt.ports.map((p) => (isObj(p) && p.protocol === undefined ? { ...p, protocol: "HTTP" } : p))) : normalizePorts(rt.ports);
  if (ports?.length) runtime.ports = ports;
  if (typeof rt.generation === "string") runtime.generation = rt.generation;
  if (rt.transport !== undefined) {
    if (!MCP_TRANSPORTS.includes(rt.transport as McpTransport)) fail("spec.runtime.transport", '"http-stream", "websocket" or "stdio"');
    runtime.transport = rt.transport as McpTransport;
  }
  if (typeof rt.type === "string" && rt.type) runtime.type = rt.type;
  if (spec.public !== undefined && typeof spec.public !== "boolean") fail("spec.public", "true or false");
  if (spec.enabled !== undefined && typeof spec.enabled !== "boolean") fail("spec.enabled", "true or false");
  const out: WorkloadSpecDoc = { enabled: spec.enabled !== false, public: spec.public === true, runtime };
  if (typeof spec.region === "string") out.region = spec.region;
  if (spec.triggers !== undefined) out.triggers = normalizeTriggers(spec.triggers);
  if (Array.isArray(spec.policies)) out.policies = spec.policies.map(String);
  if (spec.integrationConnections !== undefined && spec.integrationConnections !== null) {
    const c = spec.integrationConnections;
    if (!Array.isArray(c) || c.some((x) => typeof x !== "string" || !x)) fail("spec.integrationConnections", "a list of integration connection names");
    if (c.length) out.integrationConnections = [...new Set(c as string[])];
  }
  if (spec.revision !== undefined && spec.revision !== null) out.revision = normalizeRevision(spec.revision);
  return out;
}

function normalizeRevision(raw: unknown): RevisionSpec {
  if (!isObj(raw)) fail("spec.revision", "must be an object");
  const out: RevisionSpec = {};
  for (const k of ["active", "canary"] as const) {
    const v = raw[k];
    if (v === undefined || v === null || v === "") continue;
    if (typeof v !== "string") fail(`spec.revision.${k}`, "a revision id");
    out[k] = v;
  }
  if (raw.canaryPercent !== undefined && raw.canaryPercent !== null) out.canaryPercent = intIn(raw.canaryPercent, "spec.revision.canaryPercent", 0, 100, 0);
  if (raw.stickySessionTtl !== undefined && raw.stickySessionTtl !== null) out.stickySessionTtl = intIn(raw.stickySessionTtl, "spec.revision.stickySessionTtl", 0, 7 * 86_400, 0);
  if (raw.traffic !== undefined && raw.traffic !== null) out.traffic = intIn(raw.traffic, "spec.revision.traffic", 0, 100, 100);
  return out;
}

/** What the image reference blaxel/code-mode runs on: the base image (Hangar's code-mode server is written into it at start). */
export const CODE_MODE_BASE_IMAGE = "blaxel/base-image:latest";

/** True for Blaxel's code-mode image (blaxel/code-mode[:latest], also with docker.io/ before it). */
export function isCodeModeImage(image: string | undefined): boolean {
  if (!image) return false;
  const ref = image.trim().toLowerCase().replace(/^docker:\/\//, "").replace(/^(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, "");
  return ref === "blaxel/code-mode" || ref === "blaxel/code-mode:latest";
}

/** The port an agent's server listens on. */
export function appPort(runtime: WorkloadRuntime): number {
  return runtime.ports?.[0]?.target ?? DEFAULT_APP_PORT;
}

/** What a revision runs: a change here (or to the integration connections it is bound to) makes a new revision. */
export function revisionKey(runtime: WorkloadRuntime, connections?: string[]): string {
  return JSON.stringify([
    runtime.image ?? "",
    runtime.memory,
    (runtime.envs ?? []).map((e) => [e.name, e.value]),
    appPort(runtime),
    ...(runtime.transport === "stdio" ? ["stdio"] : []),
    ...(connections?.length ? [{ connections, builtin: runtime.builtin ?? null }] : []),
  ]);
}

const TRIGGER_TYPES = new Set(["http", "http-async", "cron", "schedule"]);

/** Triggers: a type Blaxel knows; an http-async callbackUrl must be an absolute http(s) URL. */
export function normalizeTriggers(raw: unknown): TriggerSpec[] {
  if (!Array.isArray(raw)) fail("spec.triggers", "must be an array");
  return raw.map((t, i) => {
    const f = `spec.triggers[${i}]`;
    if (!isObj(t)) fail(f, "must be an object {type, configuration?}");
    if (typeof t.type !== "string" || !TRIGGER_TYPES.has(t.type)) fail(`${f}.type`, `one of ${[...TRIGGER_TYPES].join(", ")}`);
    const out: TriggerSpec = { type: t.type };
    if (typeof t.id === "string") out.id = t.id;
    if (typeof t.enabled === "boolean") out.enabled = t.enabled;
    if (t.configuration !== undefined) {
      if (!isObj(t.configuration)) fail(`${f}.configuration`, "must be an object");
      const c = { ...t.configuration } as NonNullable<TriggerSpec["configuration"]>;
      if (c.callbackUrl !== undefined) {
        let url: URL | null = null;
        try {
          url = typeof c.callbackUrl === "string" ? new URL(c.callbackUrl) : null;
        } catch {
          url = null;
        }
        if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) fail(`${f}.configuration.callbackUrl`, "an absolute http(s) URL");
      }
      out.configuration = c;
    }
    return out;
  });
}

