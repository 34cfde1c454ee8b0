// A sandbox's egress policy compiled from its `spec.network` (Blaxel's SandboxNetwork): which
// destinations it may reach (allowedDomains / forbiddenDomains, deny wins), which routing rules
// apply to a destination (header/body injection with per-rule secrets) and which destinations
// bypass the proxy.

/** Blaxel's ProxyTarget. */
export interface RoutingRule {
  destinations: string[];
  headers?: Record<string, string>;
  body?: Record<string, unknown>;
  /** Hangar's: query parameters added to matching requests' URLs (an API key sent in the query). */
  query?: Record<string, string>;
  secrets?: Record<string, string>;
  /** Hangar: the proxy answers requests to these destinations itself with this error (a credential Hangar could not get). */
  fail?: string;
}

/** Blaxel's SandboxNetwork, as far as the proxy reads it (secrets revealed). */
export interface NetworkSpec {
  allowedDomains?: string[];
  forbiddenDomains?: string[];
  proxy?: {
    allowedDomains?: string[];
    forbiddenDomains?: string[];
    bypass?: string[];
    routing?: RoutingRule[];
  };
}

/** A routing rule ready to apply: its own secrets only. */
export interface CompiledRule {
  index: number;
  headers: [string, string][];
  body: [string, unknown][];
  query: [string, string][];
  secrets: Map<string, string>;
  fail?: string;
}

export type Denial = "forbiddenDomains" | "allowedDomains";

export interface Decision {
  allowed: boolean;
  /** Which list refused the destination. */
  deniedBy?: Denial;
  /** Rules whose destinations match, in their order in the spec. */
  rules: CompiledRule[];
  /** True when the destination is listed in proxy.bypass (never intercepted or injected). */
  bypass: boolean;
  /** TLS to this destination must be intercepted (some rule applies). */
  intercept: boolean;
}

/** One domain pattern: "*" (anything), "*.x.com" (subdomains of x.com only), a name, an IPv4 address or CIDR. */
export type Matcher = (host: string) => boolean;

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

export function ipv4ToInt(ip: string): number | null {
  const m = IPV4.exec(ip);
  if (!m) return null;
  const p = m.slice(1).map(Number);
  if (p.some((n) => n > 255)) return null;
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

/** Lowercase, without a trailing dot or IPv6 brackets. */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h;
}

/** Why a pattern is malformed, or null when it is fine. */
export function patternError(pattern: string): string | null {
  if (typeof pattern !== "string") return "must be a string";
  const p = normalizeHost(pattern);
  if (p === "*") return null;
  if (!p) return "must not be empty";
  if (/[/:\s@?#]/.test(p.replace(/\/\d{1,2}$/, ""))) return "must be a domain name or IPv4 address, without scheme, port or path";
  const cidr = /^(.+)\/(\d{1,2})$/.exec(p);
  if (cidr) return ipv4ToInt(cidr[1]!) !== null && Number(cidr[2]) <= 32 ? null : "a CIDR must be an IPv4 network such as 10.1.0.0/16";
  if (ipv4ToInt(p) !== null) return null;
  const name = p.startsWith("*.") ? p.slice(2) : p;
  if (name.includes("*")) return 'a wildcard may only be a leading "*." (e.g. *.example.com)';
  if (name.length > 253) return "is longer than 253 characters";
  const labels = name.split(".");
  if (labels.some((l) => !LABEL.test(l))) return "is not a valid domain name";
  return null;
}

export function compilePattern(pattern: string): Matcher {
  const p = normalizeHost(pattern);
  if (p === "*") return () => true;
  const cidr = /^(.+)\/(\d{1,2})$/.exec(p);
  if (cidr) {
    const base = ipv4ToInt(cidr[1]!);
    const bits = Number(cidr[2]);
    if (base === null || bits > 32) return () => false;
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return (h) => {
      const ip = ipv4ToInt(h);
      return ip !== null && ((ip & mask) >>> 0) === ((base & mask) >>> 0);
    };
  }
  if (p.startsWith("*.")) {
    const suffix = p.slice(1); // ".x.com"
    return (h) => h.length > suffix.length && h.endsWith(suffix);
  }
  return (h) => h === p;
}

function anyOf(patterns: string[]): Matcher | null {
  const ms = patterns.filter((p) => patternError(p) === null).map(compilePattern);
  return ms.length ? (h) => ms.some((m) => m(h)) : null;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
const record = (v: unknown): Record<string, unknown> => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

export class EgressPolicy {
  private readonly allow: Matcher | null;
  private readonly deny: Matcher | null;
  private readonly bypassed: Matcher | null;
  private readonly rules: { match: Matcher; rule: CompiledRule }[];
  /** Every secret value of the policy (for redaction). */
  readonly secretValues: string[];
  /** Decisions by host (a policy never changes; a new one replaces it). */
  private readonly memo = new Map<string, Decision>();

  private constructor(spec: Record<string, unknown>) {
    const proxy = record(spec.proxy);
    this.allow = anyOf([...strings(spec.allowedDomains), ...strings(proxy.allowedDomains)]);
    this.deny = anyOf([...strings(spec.forbiddenDomains), ...strings(proxy.forbiddenDomains)]);
    this.bypassed = anyOf(strings(proxy.bypass));
    const routing = Array.isArray(proxy.routing) ? proxy.routing : [];
    this.rules = routing.flatMap((raw, index) => {
      const r = record(raw);
      const match = anyOf(strings(r.destinations));
      if (!match) return [];
      const secrets = new Map(Object.entries(record(r.secrets)).map(([k, v]) => [k, String(v)] as [string, string]));
      const headers = Object.entries(record(r.headers)).map(([k, v]) => [k.toLowerCase(), String(v)] as [string, string]);
      const query = Object.entries(record(r.query)).map(([k, v]) => [k, String(v)] as [string, string]);
      return [{ match, rule: { index, headers, body: Object.entries(record(r.body)), query, secrets, ...(typeof r.fail === "string" && r.fail ? { fail: r.fail } : {}) } }];
    });
    this.secretValues = [...new Set(this.rules.flatMap((r) => [...r.rule.secrets.values()]).filter((v) => v.length > 0))];
  }

  /** The policy of a `spec.network` (revealed), or null when it sets none. */
  static from(network: unknown): EgressPolicy | null {
    const spec = record(network);
    return hasPolicy(spec) ? new EgressPolicy(spec) : null;
  }

  decide(rawHost: string): Decision {
    const hit = this.memo.get(rawHost);
    if (hit) return hit;
    const d = this.compute(normalizeHost(rawHost));
    if (this.memo.size >= 1024) this.memo.delete(this.memo.keys().next().value!);
    this.memo.set(rawHost, d);
    return d;
  }

  private compute(host: string): Decision {
    const bypass = this.bypassed?.(host) ?? false;
    if (this.deny?.(host)) return { allowed: false, deniedBy: "forbiddenDomains", rules: [], bypass, intercept: false };
    // bypass entries are an explicit wish to reach those destinations: they count as allowed
    if (this.allow && !this.allow(host) && !bypass) return { allowed: false, deniedBy: "allowedDomains", rules: [], bypass, intercept: false };
    const rules = bypass ? [] : this.rules.filter((r) => r.match(host)).map((r) => r.rule);
    return { allowed: true, rules, bypass, intercept: rules.length > 0 };
  }
}

/** True when `spec.network` asks for the egress proxy: domain lists or a proxy section. */
export function hasPolicy(network: unknown): boolean {
  const spec = record(network);
  const proxy = spec.proxy;
  return (
    strings(spec.allowedDomains).length > 0 ||
    strings(spec.forbiddenDomains).length > 0 ||
    (typeof proxy === "object" && proxy !== null && !Array.isArray(proxy))
  );
}

const PLACEHOLDER = /\{\{\s*SECRET:([A-Za-z0-9_.-]+)\s*\}\}/g;

/** Replaces {{SECRET:name}} with the rule's secret; unknown names stay as they are. */
export function resolveSecrets(value: string, secrets: Map<string, string>): string {
  if (!value.includes("{{")) return value;
  return value.replace(PLACEHOLDER, (all, name: string) => secrets.get(name) ?? all);
}

/** Replaces placeholders using the first of `rules` (in order) that defines each name. */
export function resolveFromRules(value: string, rules: CompiledRule[]): string {
  if (!value.includes("{{") || rules.length === 0) return value;
  return value.replace(PLACEHOLDER, (all, name: string) => {
    for (const r of rules) {
      const s = r.secrets.get(name);
      if (s !== undefined) return s;
    }
    return all;
  });
}

/** Names referenced by {{SECRET:name}} in a string. */
export function placeholderNames(value: string): string[] {
  return [...value.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}
