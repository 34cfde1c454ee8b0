// Normalisation and semantic validation of the sandbox spec a user sends. Structural checks
// (types, enums) happen in the route schema; this module checks meaning and fills defaults.

import { ENV_NAME_PATTERN, HangarError, parseDuration, fieldError as fail, isObject as isObj } from "@hangar/common";
import { patternError, placeholderNames } from "@hangar/egress-proxy/policy";

export const DEFAULT_IMAGE = "blaxel/base-image:latest";
export const DEFAULT_MEMORY_MB = 4096;
export const MIN_MEMORY_MB = 128;
export const MAX_MEMORY_MB = 65_536;
/**
 * 80 (system) and 443 (sandbox API over TLS) belong to the platform. 8080 is the sandbox API's
 * port inside a sandbox unless the user declares it for a server of their own: the in-sandbox
 * relay then steps aside, and previews of 8080 reach that server.
 */
export const RESERVED_PORTS = new Set([80, 443]);
export const PORT_PROTOCOLS = ["HTTP", "TCP", "UDP", "TLS"] as const;
export const EXPIRATION_TYPES = ["ttl-idle", "ttl-max-age", "date"] as const;

export interface PortSpec {
  name?: string;
  target: number;
  protocol: (typeof PORT_PROTOCOLS)[number];
}

export interface EnvSpec {
  name: string;
  value: string;
  secret?: boolean;
}

export interface ExpirationPolicy {
  type: (typeof EXPIRATION_TYPES)[number];
  value: string;
  action: "delete";
}

export interface LifecycleSpec {
  expirationPolicies?: ExpirationPolicy[];
  terminatedRetention?: string;
}

export interface RuntimeSpec {
  image: string;
  memory: number;
  ports?: PortSpec[];
  envs?: EnvSpec[];
  ttl?: string;
  expires?: string;
  generation?: string;
  snapshotEnabled?: boolean;
  extraArgs?: Record<string, string>;
  terminationGracePeriodSeconds?: number;
  /** Hangar: "default" (crun) or "gvisor". */
  runtimeClass?: string;
}

/** The spec as stored (envs marked secret hold sealed values). */
export interface SandboxSpecDoc {
  enabled: boolean;
  region?: string;
  vpc?: string;
  runtime: RuntimeSpec;
  lifecycle?: LifecycleSpec;
  network?: Record<string, unknown>;
  volumes?: unknown[];
}

type Json = Record<string, unknown>;


export function normalizePorts(raw: unknown): PortSpec[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) fail("spec.runtime.ports", "must be an array");
  const seen = new Set<number>();
  return raw.map((p, i) => {
    const f = `spec.runtime.ports[${i}]`;
    if (!isObj(p)) fail(f, "must be an object {name?, target, protocol?}");
    const target = p.target;
    if (typeof target !== "number" || !Number.isInteger(target) || target < 1 || target > 65_535) fail(`${f}.target`, "must be an integer between 1 and 65535");
    if (RESERVED_PORTS.has(target)) fail(`${f}.target`, `port ${target} is reserved (80 and 443 belong to the platform)`);
    if (seen.has(target)) fail(`${f}.target`, `port ${target} is declared twice`);
    seen.add(target);
    const protocol = (p.protocol === undefined || p.protocol === null ? "HTTP" : String(p.protocol).toUpperCase()) as PortSpec["protocol"];
    if (!PORT_PROTOCOLS.includes(protocol)) fail(`${f}.protocol`, `must be one of ${PORT_PROTOCOLS.join(", ")} (got ${JSON.stringify(p.protocol)})`);
    const out: PortSpec = { target, protocol };
    if (typeof p.name === "string" && p.name) out.name = p.name;
    return out;
  });
}

export function normalizeEnvs(raw: unknown): EnvSpec[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) fail("spec.runtime.envs", "must be an array");
  const seen = new Set<string>();
  return raw.map((e, i) => {
    const f = `spec.runtime.envs[${i}]`;
    if (!isObj(e)) fail(f, "must be an object {name, value, secret?}");
    if (typeof e.name !== "string" || !ENV_NAME_PATTERN.test(e.name)) fail(`${f}.name`, "must be a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
    if (seen.has(e.name)) fail(`${f}.name`, `${e.name} is set twice`);
    seen.add(e.name);
    if (e.value !== undefined && typeof e.value !== "string") fail(`${f}.value`, "must be a string");
    const out: EnvSpec = { name: e.name, value: (e.value as string | undefined) ?? "" };
    if (e.secret === true) out.secret = true;
    return out;
  });
}

export function normalizeLifecycle(raw: unknown): LifecycleSpec | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObj(raw)) fail("spec.lifecycle", "must be an object");
  const out: LifecycleSpec = {};
  if (raw.expirationPolicies !== undefined && raw.expirationPolicies !== null) {
    if (!Array.isArray(raw.expirationPolicies)) fail("spec.lifecycle.expirationPolicies", "must be an array");
    out.expirationPolicies = raw.expirationPolicies.map((p, i) => {
      const f = `spec.lifecycle.expirationPolicies[${i}]`;
      if (!isObj(p)) fail(f, "must be an object {type, value, action}");
      const type = p.type as ExpirationPolicy["type"];
      if (!EXPIRATION_TYPES.includes(type)) fail(`${f}.type`, `must be one of ${EXPIRATION_TYPES.join(", ")} (got ${JSON.stringify(p.type)})`);
      if (typeof p.value !== "string") fail(`${f}.value`, "must be a string");
      if (type === "date") {
        if (Number.isNaN(Date.parse(p.value))) fail(`${f}.value`, `must be an ISO-8601 date (got ${JSON.stringify(p.value)})`);
      } else {
        parseDuration(p.value, `${f}.value`);
      }
      const action = p.action ?? "delete";
      if (action !== "delete") fail(`${f}.action`, `must be "delete" (got ${JSON.stringify(p.action)})`);
      return { type, value: p.value, action: "delete" as const };
    });
  }
  if (raw.terminatedRetention !== undefined && raw.terminatedRetention !== null) {
    if (typeof raw.terminatedRetention !== "string") fail("spec.lifecycle.terminatedRetention", "must be a duration string");
    parseDuration(raw.terminatedRetention, "spec.lifecycle.terminatedRetention");
    out.terminatedRetention = raw.terminatedRetention;
  }
  return out;
}

/** Request headers a routing rule may not set: the proxy derives them or they are hop-by-hop. */
const RESERVED_HEADERS = new Set(["host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "expect", "proxy-authorization", "proxy-connection"]);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const SECRET_NAME = /^[A-Za-z0-9_.-]+$/;

function domainList(raw: unknown, field: string): void {
  if (raw === undefined || raw === null) return;
  if (!Array.isArray(raw)) fail(field, "must be an array of domain names");
  raw.forEach((d, i) => {
    const err = typeof d === "string" ? patternError(d) : "must be a string";
    if (err) fail(`${field}[${i}]`, `${JSON.stringify(d)} ${err}`);
  });
}

/** Checks that every {{SECRET:name}} in the strings of `v` names one of the rule's secrets. */
function placeholdersDefined(v: unknown, field: string, secrets: Set<string>): void {
  if (typeof v === "string") {
    for (const name of placeholderNames(v)) {
      if (!secrets.has(name)) fail(field, `uses {{SECRET:${name}}}, which this rule's secrets do not define (a rule can only use its own secrets)`);
    }
  } else if (Array.isArray(v)) v.forEach((x, i) => placeholdersDefined(x, `${field}[${i}]`, secrets));
  else if (isObj(v)) for (const [k, x] of Object.entries(v)) placeholdersDefined(x, `${field}.${k}`, secrets);
}

/**
 * Validates spec.network (Blaxel's SandboxNetwork): domain lists, proxy routing rules with their
 * headers, body fields and secrets, bypass. Other members (subnet, egress, firewall) are kept as
 * given. Returns the network unchanged, or undefined when absent.
 */
export function normalizeNetwork(raw: unknown): Record<string, unknown> | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObj(raw)) fail("spec.network", "must be an object");
  domainList(raw.allowedDomains, "spec.network.allowedDomains");
  domainList(raw.forbiddenDomains, "spec.network.forbiddenDomains");
  if (raw.subnet !== undefined && raw.subnet !== null && typeof raw.subnet !== "string") fail("spec.network.subnet", "must be a string");
  for (const k of ["egress", "firewall"] as const) if (raw[k] !== undefined && raw[k] !== null && !isObj(raw[k])) fail(`spec.network.${k}`, "must be an object");
  const proxy = raw.proxy;
  if (proxy === undefined || proxy === null) return raw;
  if (!isObj(proxy)) fail("spec.network.proxy", "must be an object {routing?, bypass?, allowedDomains?, forbiddenDomains?}");
  domainList(proxy.allowedDomains, "spec.network.proxy.allowedDomains");
  domainList(proxy.forbiddenDomains, "spec.network.proxy.forbiddenDomains");
  domainList(proxy.bypass, "spec.network.proxy.bypass");
  if (proxy.routing === undefined || proxy.routing === null) return raw;
  if (!Array.isArray(proxy.routing)) fail("spec.network.proxy.routing", "must be an array of rules {destinations, headers?, body?, query?, secrets?}");
  proxy.routing.forEach((r, i) => {
    const f = `spec.network.proxy.routing[${i}]`;
    if (!isObj(r)) fail(f, "must be an object {destinations, headers?, body?, query?, secrets?}");
    if (!Array.isArray(r.destinations) || r.destinations.length === 0) fail(`${f}.destinations`, 'must list at least one domain (["*"] for every destination)');
    domainList(r.destinations, `${f}.destinations`);
    const secrets = new Set<string>();
    if (r.secrets !== undefined && r.secrets !== null) {
      if (!isObj(r.secrets)) fail(`${f}.secrets`, "must be an object of name → value");
      for (const [k, v] of Object.entries(r.secrets)) {
        if (!SECRET_NAME.test(k)) fail(`${f}.secrets`, `${JSON.stringify(k)} is not a valid secret name (letters, digits, '_', '.', '-')`);
        if (typeof v !== "string") fail(`${f}.secrets.${k}`, "must be a string");
        if (v.includes("\0")) fail(`${f}.secrets.${k}`, "must not contain NUL");
        secrets.add(k);
      }
    }
    if (r.headers !== undefined && r.headers !== null) {
      if (!isObj(r.headers)) fail(`${f}.headers`, "must be an object of header name → value");
      for (const [k, v] of Object.entries(r.headers)) {
        if (!HEADER_NAME.test(k)) fail(`${f}.headers`, `${JSON.stringify(k)} is not a valid header name`);
        if (RESERVED_HEADERS.has(k.toLowerCase()) || k.toLowerCase().startsWith("proxy-")) fail(`${f}.headers.${k}`, "cannot be injected: the proxy sets it");
        if (typeof v !== "string" || /[\r\n\0]/.test(v)) fail(`${f}.headers.${k}`, "must be a string without line breaks");
        placeholdersDefined(v, `${f}.headers.${k}`, secrets);
        // a secret injected into a header must be a valid header value too
        for (const name of placeholderNames(v)) {
          const value = (r.secrets as Record<string, unknown>)[name];
          if (typeof value === "string" && /[\r\n]/.test(value)) fail(`${f}.secrets.${name}`, `is injected into header ${k} and must not contain line breaks`);
        }
      }
    }
    if (r.body !== undefined && r.body !== null) {
      if (!isObj(r.body)) fail(`${f}.body`, "must be an object of JSON field → value");
      placeholdersDefined(r.body, `${f}.body`, secrets);
    }
    // Hangar's: query parameters added to the request URL (an API key sent in the query)
    if (r.query !== undefined && r.query !== null) {
      if (!isObj(r.query)) fail(`${f}.query`, "must be an object of query parameter → value");
      for (const [k, v] of Object.entries(r.query)) {
        if (!k || typeof v !== "string" || /[\r\n\0]/.test(v)) fail(`${f}.query.${k}`, "must be a string without line breaks");
        placeholdersDefined(v, `${f}.query.${k}`, secrets);
      }
    }
  });
  return raw;
}

/** Builds the stored spec from a request body's spec, filling defaults; throws validation_failed. */
export function normalizeSpec(raw: unknown): SandboxSpecDoc {
  const spec = raw === undefined || raw === null ? {} : raw;
  if (!isObj(spec)) fail("spec", "must be an object");
  const rt = spec.runtime === undefined || spec.runtime === null ? {} : spec.runtime;
  if (!isObj(rt)) fail("spec.runtime", "must be an object");

  const image = rt.image === undefined || rt.image === null || rt.image === "" ? DEFAULT_IMAGE : rt.image;
  if (typeof image !== "string" || image.length > 512) fail("spec.runtime.image", "must be an image reference string");
  const memory = rt.memory === undefined || rt.memory === null || rt.memory === 0 ? DEFAULT_MEMORY_MB : rt.memory;
  if (typeof memory !== "number" || !Number.isInteger(memory) || memory < MIN_MEMORY_MB || memory > MAX_MEMORY_MB) {
    fail("spec.runtime.memory", `must be an integer number of MB between ${MIN_MEMORY_MB} and ${MAX_MEMORY_MB} (got ${JSON.stringify(rt.memory)})`);
  }

  const runtime: RuntimeSpec = { image, memory };
  const ports = normalizePorts(rt.ports);
  if (ports?.length) runtime.ports = ports;
  const envs = normalizeEnvs(rt.envs);
  if (envs?.length) runtime.envs = envs;
  if (rt.ttl !== undefined && rt.ttl !== null && rt.ttl !== "") {
    if (typeof rt.ttl !== "string") fail("spec.runtime.ttl", "must be a duration string such as \"1h\"");
    parseDuration(rt.ttl, "spec.runtime.ttl");
    runtime.ttl = rt.ttl;
  }
  if (rt.expires !== undefined && rt.expires !== null && rt.expires !== "") {
    if (typeof rt.expires !== "string" || Number.isNaN(Date.parse(rt.expires))) fail("spec.runtime.expires", `must be an ISO-8601 date (got ${JSON.stringify(rt.expires)})`);
    runtime.expires = new Date(rt.expires).toISOString();
  }
  if (typeof rt.generation === "string") runtime.generation = rt.generation;
  if (typeof rt.snapshotEnabled === "boolean") runtime.snapshotEnabled = rt.snapshotEnabled;
  if (isObj(rt.extraArgs)) runtime.extraArgs = Object.fromEntries(Object.entries(rt.extraArgs).map(([k, v]) => [k, String(v)]));
  if (typeof rt.terminationGracePeriodSeconds === "number") runtime.terminationGracePeriodSeconds = rt.terminationGracePeriodSeconds;
  if (rt.runtimeClass !== undefined && rt.runtimeClass !== null) {
    if (rt.runtimeClass !== "default" && rt.runtimeClass !== "gvisor") fail("spec.runtime.runtimeClass", `must be "default" or "gvisor" (got ${JSON.stringify(rt.runtimeClass)})`);
    runtime.runtimeClass = rt.runtimeClass;
  }

  const out: SandboxSpecDoc = { enabled: spec.enabled === false ? false : true, runtime };
  if (typeof spec.region === "string" && spec.region) out.region = spec.region;
  if (typeof spec.vpc === "string" && spec.vpc) out.vpc = spec.vpc;
  const lifecycle = normalizeLifecycle(spec.lifecycle);
  if (lifecycle) out.lifecycle = lifecycle;
  const network = normalizeNetwork(spec.network);
  if (network) out.network = network;
  if (spec.volumes !== undefined && spec.volumes !== null) {
    if (!Array.isArray(spec.volumes)) fail("spec.volumes", "must be an array");
    for (const [i, v] of (spec.volumes as unknown[]).entries()) {
      const x = v as { name?: unknown; mountPath?: unknown; readOnly?: unknown; type?: unknown; sizeMb?: unknown } | null;
      if (!x || typeof x !== "object" || typeof x.name !== "string" || !x.name) fail(`spec.volumes[${i}].name`, "must be a volume name");
      if (typeof x.mountPath !== "string" || !x.mountPath.startsWith("/")) fail(`spec.volumes[${i}].mountPath`, "must be an absolute path");
      if (x.readOnly !== undefined && x.readOnly !== null && typeof x.readOnly !== "boolean") fail(`spec.volumes[${i}].readOnly`, "must be a boolean");
      if (x.type !== undefined && x.type !== null && x.type !== "ephemeral") fail(`spec.volumes[${i}].type`, 'must be "ephemeral" or absent');
      if (x.type === "ephemeral" && (typeof x.sizeMb !== "number" || !Number.isInteger(x.sizeMb) || x.sizeMb < 16)) fail(`spec.volumes[${i}].sizeMb`, "an ephemeral volume needs an integer size of at least 16 MB");
    }
    if (spec.volumes.length) out.volumes = spec.volumes;
  }
  return out;
}

/**
 * When the sandbox must be deleted by its TTL, `expires` and lifecycle policies (whichever comes
 * first), given its creation and last-use times. Null when nothing expires it.
 */
export function computeExpiry(spec: SandboxSpecDoc, createdAt: string, lastUsedAt: string): Date | null {
  const created = Date.parse(createdAt);
  const candidates: number[] = [];
  if (spec.runtime.ttl) candidates.push(created + parseDuration(spec.runtime.ttl));
  if (spec.runtime.expires) candidates.push(Date.parse(spec.runtime.expires));
  for (const p of spec.lifecycle?.expirationPolicies ?? []) {
    if (p.type === "date") candidates.push(Date.parse(p.value));
    else if (p.type === "ttl-max-age") candidates.push(created + parseDuration(p.value));
    else candidates.push(Date.parse(lastUsedAt) + parseDuration(p.value));
  }
  return candidates.length ? new Date(Math.min(...candidates)) : null;
}
