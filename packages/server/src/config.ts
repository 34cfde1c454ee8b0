// Configuration of `hangar serve`: flags, then HANGAR_* environment variables, then defaults.

import { createHash } from "node:crypto";
import { homedir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseDuration } from "@hangar/common";
import { DEFAULT_REGION } from "@hangar/control-plane";
import { parsePortRange } from "@hangar/edge";
import { DEFAULT_IMAGE_CACHE_DIR } from "@hangar/runtime";
import { type EndpointOverrides, parseEndpointOverrides } from "@hangar/gateway";

/** Host ports previews are served on by default (below Linux's ephemeral range). */
export const DEFAULT_PREVIEW_PORTS = "20000-20999";

export interface HangarConfig {
  port: number;
  host: string;
  dataDir: string;
  /** The image store (HANGAR_IMAGE_DIR): by default the machine-wide cache, so the base and hub images are built once per machine. */
  imageDir: string;
  logLevel: string;
  /** Public base URL (scheme://host:port) for URLs handed to clients; default: the request's Host. */
  publicUrl: string | undefined;
  /** API key to create on first start instead of a random one (HANGAR_BOOTSTRAP_API_KEY). */
  bootstrapApiKey: string | undefined;
  /** Sandbox runtime: "linux" (isolated; the only one). */
  runtime: string;
  /** Runtime class of sandboxes created without spec.runtime.runtimeClass (HANGAR_RUNTIME_CLASS): "default" (crun) or "gvisor" (runsc). */
  runtimeClass: "default" | "gvisor";
  /** Endpoint overrides of MCP integrations (HANGAR_INTEGRATION_ENDPOINTS, JSON {"gmail":{"tokenUrl","apiUrl"}}). */
  integrationEndpoints: EndpointOverrides;
  /** Regions this server offers (HANGAR_REGIONS, comma list): listed by /v0/locations; the first is the default spec.region. */
  regions: string[];
  /** Directories local image imports (oci:, oci-archive:, docker-archive:) may come from. */
  importDirs: string[];
  /** Host-name mode: previews are served as <label>.<previewDomain> (HANGAR_PREVIEW_DOMAIN). Unset: port mode. */
  previewDomain: string | undefined;
  /** Port mode: the host ports previews are served on, one each (HANGAR_PREVIEW_PORTS, default 20000-20999). */
  previewPorts: { first: number; last: number };
  /** When set, sandboxes are also served as sbx-<name>-<ws>.<sandboxDomain>. */
  sandboxDomain: string | undefined;
  /** Idle time before a sandbox goes to standby, in ms (HANGAR_STANDBY_IDLE, e.g. "15s"). */
  standbyIdleMs: number;
  /** Silence after which an open connection or stream (WebSocket, watch, logs) stops keeping a sandbox awake, in ms (HANGAR_STANDBY_CONNECTION_IDLE). */
  connectionIdleMs: number;
  /** Run-plane requests to agents and functions closed after this long without data (HANGAR_RUN_IDLE_TIMEOUT, default 100s as Blaxel). */
  runIdleMs: number;
  /** Requests in flight per agent replica above which another starts (HANGAR_SCALE_CONCURRENCY, default 10). */
  scaleConcurrency: number;
  /** Extra agent replicas idle this long are removed (HANGAR_SCALE_DOWN_IDLE, default 5m). */
  scaleDownIdleMs: number;
  /** Idle time in standby before a sandbox is checkpointed to disk, in ms (where CRIU works). */
  checkpointAfterMs: number;
  /** Below this much available host memory, frozen sandboxes are checkpointed early (HANGAR_STANDBY_MEMORY_LOW: "10%", "2GiB", bytes). */
  memoryLowBytes: number;
  /** IPv4 range sandbox links are carved from (HANGAR_SANDBOX_CIDR); default 10.219.0.0/16. */
  sandboxCidr: string | undefined;
  /** Nameservers of sandboxes and the egress proxy (HANGAR_SANDBOX_DNS, comma list); default: the host's. */
  sandboxDns: string[] | undefined;
  /** Names of the host's veths/netns (HANGAR_NETWORK_PREFIX) and the nft table (HANGAR_NETWORK_TABLE): one pair per server on a host. */
  networkPrefix: string | undefined;
  networkTable: string | undefined;
  /** Runtime files on the host (HANGAR_RUN_DIR, default /run/hangar) and the cgroup parent (HANGAR_CGROUP_PARENT, default hangar): one of each per server on a host. */
  runDir: string | undefined;
  cgroupParent: string | undefined;
  /** Egress proxy port on the host (HANGAR_EGRESS_PORT); 0: a free port, chosen once and kept in the data dir. */
  egressPort: number;
  /** PEM files of extra CAs the egress proxy trusts upstream and sandboxes trust (HANGAR_EGRESS_CA_FILES, ':'-separated). */
  egressCaFiles: string[];
  /** Largest request body accepted by the control plane, in bytes. */
  bodyLimit: number;
  /** Builds from source: the builder's machine-side state (buildah storage per workspace), outside the data dir. */
  buildDir: string;
  buildConcurrency: number;
  buildTimeoutMs: number;
  uploadLimitBytes: number;
  buildCacheLimitBytes: number;
  /** Where this node runs, for location policies (HANGAR_NODE_LOCATION, e.g. "country:us,continent:na"). */
  nodeLocation: string | undefined;
  /** What this node runs on, for flavor policies (HANGAR_NODE_FLAVORS, e.g. "cpu:x86"). */
  nodeFlavors: string | undefined;
  /** Longest wait for a model provider's answer head and between its chunks (HANGAR_MODEL_TIMEOUT, default 10m). */
  modelTimeoutMs: number;
  /** Job task sandboxes running at once on this node, all jobs together (HANGAR_JOBS_MAX_TASKS, default 32). */
  jobsMaxTasks: number;
}

export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? "/var/lib/hangar" : join(homedir(), ".local", "share", "hangar");
}

export function loadConfig(flags: Partial<Record<keyof HangarConfig, string | number | undefined>> = {}, env: NodeJS.ProcessEnv = process.env): HangarConfig {
  const pick = (flag: string | number | undefined, envName: string): string | undefined => (flag !== undefined && flag !== "" ? String(flag) : env[envName] || undefined);
  const port = Number(pick(flags.port, "HANGAR_PORT") ?? 8585);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`invalid port: ${String(flags.port ?? env.HANGAR_PORT)}`);
  const dataDir = resolve(pick(flags.dataDir, "HANGAR_DATA_DIR") ?? defaultDataDir());
  return {
    port,
    host: pick(flags.host, "HANGAR_HOST") ?? "127.0.0.1",
    dataDir,
    imageDir: resolve(pick(flags.imageDir, "HANGAR_IMAGE_DIR") ?? DEFAULT_IMAGE_CACHE_DIR),
    logLevel: pick(flags.logLevel, "HANGAR_LOG_LEVEL") ?? "info",
    publicUrl: pick(flags.publicUrl, "HANGAR_PUBLIC_URL")?.replace(/\/+$/, ""),
    bootstrapApiKey: pick(flags.bootstrapApiKey, "HANGAR_BOOTSTRAP_API_KEY"),
    runtime: pick(flags.runtime, "HANGAR_RUNTIME") ?? "linux",
    runtimeClass: parseRuntimeClass(pick(flags.runtimeClass, "HANGAR_RUNTIME_CLASS") ?? "default"),
    integrationEndpoints: parseEndpointOverrides(process.env.HANGAR_INTEGRATION_ENDPOINTS),
    regions: parseRegions(pick(flags.regions, "HANGAR_REGIONS") ?? DEFAULT_REGION),
    previewDomain: pick(flags.previewDomain, "HANGAR_PREVIEW_DOMAIN")?.toLowerCase().replace(/^\.+|\.+$/g, ""),
    previewPorts: parsePortRange(pick(flags.previewPorts, "HANGAR_PREVIEW_PORTS") ?? DEFAULT_PREVIEW_PORTS),
    sandboxDomain: pick(flags.sandboxDomain, "HANGAR_SANDBOX_DOMAIN")?.toLowerCase(),
    standbyIdleMs: parseDuration(pick(flags.standbyIdleMs, "HANGAR_STANDBY_IDLE") ?? "15s", "HANGAR_STANDBY_IDLE"),
    connectionIdleMs: parseDuration(pick(flags.connectionIdleMs, "HANGAR_STANDBY_CONNECTION_IDLE") ?? "15m", "HANGAR_STANDBY_CONNECTION_IDLE"),
    runIdleMs: parseDuration(process.env.HANGAR_RUN_IDLE_TIMEOUT ?? "100s", "HANGAR_RUN_IDLE_TIMEOUT"),
    scaleConcurrency: positiveInt(process.env.HANGAR_SCALE_CONCURRENCY ?? "10", "HANGAR_SCALE_CONCURRENCY"),
    scaleDownIdleMs: parseDuration(process.env.HANGAR_SCALE_DOWN_IDLE ?? "5m", "HANGAR_SCALE_DOWN_IDLE"),
    checkpointAfterMs: parseDuration(pick(flags.checkpointAfterMs, "HANGAR_STANDBY_CHECKPOINT_AFTER") ?? "10m", "HANGAR_STANDBY_CHECKPOINT_AFTER"),
    memoryLowBytes: parseMemory(pick(flags.memoryLowBytes, "HANGAR_STANDBY_MEMORY_LOW") ?? "10%", "HANGAR_STANDBY_MEMORY_LOW"),
    sandboxCidr: pick(flags.sandboxCidr, "HANGAR_SANDBOX_CIDR"),
    sandboxDns: pick(flags.sandboxDns, "HANGAR_SANDBOX_DNS")?.split(",").map((s) => s.trim()).filter(Boolean),
    networkPrefix: pick(flags.networkPrefix, "HANGAR_NETWORK_PREFIX"),
    networkTable: pick(flags.networkTable, "HANGAR_NETWORK_TABLE"),
    runDir: pick(flags.runDir, "HANGAR_RUN_DIR"),
    cgroupParent: pick(flags.cgroupParent, "HANGAR_CGROUP_PARENT"),
    egressPort: Number(pick(flags.egressPort, "HANGAR_EGRESS_PORT") ?? 0),
    jobsMaxTasks: Math.max(1, Number(pick(flags.jobsMaxTasks, "HANGAR_JOBS_MAX_TASKS") ?? 32) || 32),
    egressCaFiles: (pick(flags.egressCaFiles, "HANGAR_EGRESS_CA_FILES") ?? "").split(":").filter(Boolean).map((f) => resolve(f)),
    importDirs: (pick(flags.importDirs, "HANGAR_IMPORT_DIRS") ?? join(dataDir, "imports")).split(":").filter(Boolean).map((d) => resolve(d)),
    bodyLimit: Number(pick(flags.bodyLimit, "HANGAR_BODY_LIMIT") ?? 1024 * 1024),
    buildDir: resolve(pick(flags.buildDir, "HANGAR_BUILD_DIR") ?? join("/var/lib/hangar-builds", createHash("sha256").update(dataDir).digest("hex").slice(0, 12))),
    buildConcurrency: Number(pick(flags.buildConcurrency, "HANGAR_BUILD_CONCURRENCY") ?? 1),
    buildTimeoutMs: parseDuration(pick(flags.buildTimeoutMs, "HANGAR_BUILD_TIMEOUT") ?? "30m", "HANGAR_BUILD_TIMEOUT"),
    uploadLimitBytes: parseMemory(pick(flags.uploadLimitBytes, "HANGAR_UPLOAD_LIMIT") ?? "512MiB", "HANGAR_UPLOAD_LIMIT"),
    buildCacheLimitBytes: parseMemory(pick(flags.buildCacheLimitBytes, "HANGAR_BUILD_CACHE_LIMIT") ?? "10GiB", "HANGAR_BUILD_CACHE_LIMIT"),
    nodeLocation: pick(flags.nodeLocation, "HANGAR_NODE_LOCATION"),
    nodeFlavors: pick(flags.nodeFlavors, "HANGAR_NODE_FLAVORS") ?? "cpu:x86",
    modelTimeoutMs: parseDuration(pick(flags.modelTimeoutMs, "HANGAR_MODEL_TIMEOUT") ?? "10m", "HANGAR_MODEL_TIMEOUT"),
  };
}

/** "10%" of the host's memory, "512MiB", "2GiB", "2G" or plain bytes → bytes. */
export function parseMemory(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(%|[kmgt]i?b?|b)?\s*$/i.exec(text);
  if (!m) throw new Error(`invalid ${what}: ${JSON.stringify(text)} (e.g. "10%", "2GiB", "512MiB")`);
  const n = Number(m[1]);
  const unit = (m[2] ?? "b").toLowerCase();
  if (unit === "%") {
    if (n > 100) throw new Error(`invalid ${what}: ${text} is over 100%`);
    return Math.round((totalmem() * n) / 100);
  }
  const power = { b: 0, k: 1, m: 2, g: 3, t: 4 }[unit[0] as "b" | "k" | "m" | "g" | "t"];
  return Math.round(n * 1024 ** power);
}

/** HANGAR_RUNTIME_CLASS: "default" (crun) or "gvisor" (runsc, a second wall: gVisor's own kernel). */
export function parseRuntimeClass(text: string): "default" | "gvisor" {
  if (text === "default" || text === "gvisor") return text;
  throw new Error(`invalid HANGAR_RUNTIME_CLASS: ${JSON.stringify(text)} (use "default" or "gvisor")`);
}

/** HANGAR_REGIONS: region names (lowercase letters, digits, '-'), comma-separated, the default first. */
export function parseRegions(text: string): string[] {
  const regions = text.split(",").map((r) => r.trim()).filter(Boolean);
  if (!regions.length) throw new Error(`invalid HANGAR_REGIONS: ${JSON.stringify(text)} (e.g. "local-1" or "eu-par-1,eu-par-2")`);
  for (const r of regions) {
    if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(r)) throw new Error(`invalid HANGAR_REGIONS: ${JSON.stringify(r)} is not a region name (lowercase letters, digits and '-')`);
  }
  if (new Set(regions).size !== regions.length) throw new Error(`invalid HANGAR_REGIONS: ${JSON.stringify(text)} names a region twice`);
  return regions;
}

function positiveInt(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`invalid ${name}: ${JSON.stringify(text)} (a positive integer)`);
  return n;
}
