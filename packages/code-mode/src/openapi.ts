// What code mode reads from an OpenAPI document: the API's hosts (its servers) and, per security
// scheme that has an AUTH_<SCHEME> env, the egress proxy routing rule that injects the credential
// into requests to those hosts (the script never holds it).

/** A routing rule of a sandbox's spec.network.proxy (Blaxel's ProxyTarget; `query` is Hangar's). */
export interface ProxyRule {
  destinations: string[];
  headers?: Record<string, string>;
  query?: Record<string, string>;
  secrets: Record<string, string>;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Json) : {});

/**
 * The hostnames of the document's servers (top level, per path and per operation); a relative
 * server URL is resolved against where the document came from. Variables take their defaults.
 */
export function apiHosts(doc: unknown, reference: string): string[] {
  const d = obj(doc);
  const urls: unknown[] = [];
  const add = (servers: unknown) => {
    if (!Array.isArray(servers)) return;
    for (const s of servers) {
      const o = obj(s);
      if (typeof o.url !== "string") continue;
      const vars = obj(o.variables);
      urls.push(o.url.replace(/\{([^}]+)\}/g, (all, name: string) => String(obj(vars[name]).default ?? all)));
    }
  };
  add(d.servers);
  for (const item of Object.values(obj(d.paths))) {
    add(obj(item).servers);
    for (const op of Object.values(obj(item))) add(obj(op).servers);
  }
  // Swagger 2.0: host
  if (typeof d.host === "string") urls.push(`https://${d.host}`);
  const hosts = new Set<string>();
  for (const u of urls) {
    try {
      hosts.add(new URL(String(u), /^https?:\/\//.test(reference) ? reference : undefined).hostname.toLowerCase());
    } catch {
      // a relative URL of a document read from a file names no host
    }
  }
  return [...hosts].filter(Boolean);
}

/** The env var of a security scheme: AUTH_ + its name upper-cased (non-alphanumerics as _). */
export function authEnvName(scheme: string): string {
  return `AUTH_${scheme.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}`;
}

/**
 * One routing rule per security scheme with a credential in `env`, as the docs' table says:
 * http bearer, oauth2 and openIdConnect → Authorization: Bearer; http basic → Authorization: Basic
 * (user:password is base64-encoded); apiKey → its header, query parameter or cookie.
 */
export function credentialRules(doc: unknown, hosts: string[], env: Record<string, string | undefined>): { rules: ProxyRule[]; schemes: string[] } {
  const d = obj(doc);
  const schemes = { ...obj(obj(d.components).securitySchemes), ...obj(d.securityDefinitions) };
  const rules: ProxyRule[] = [];
  const used: string[] = [];
  if (!hosts.length) return { rules, schemes: used };
  Object.entries(schemes).forEach(([name, raw], i) => {
    let value = env[authEnvName(name)];
    if (!value) return;
    const s = obj(raw);
    const secret = `auth-${i}`;
    const ref = `{{SECRET:${secret}}}`;
    const type = String(s.type ?? "").toLowerCase();
    const httpScheme = String(s.scheme ?? "").toLowerCase();
    let rule: Omit<ProxyRule, "destinations" | "secrets"> | null = null;
    if (type === "http" && httpScheme === "basic") {
      if (value.includes(":")) value = Buffer.from(value).toString("base64");
      rule = { headers: { Authorization: `Basic ${ref}` } };
    } else if (type === "http" || type === "oauth2" || type === "openidconnect") {
      rule = { headers: { Authorization: `Bearer ${ref}` } };
    } else if (type === "basic") {
      // Swagger 2.0
      if (value.includes(":")) value = Buffer.from(value).toString("base64");
      rule = { headers: { Authorization: `Basic ${ref}` } };
    } else if (type === "apikey" && typeof s.name === "string" && s.name) {
      const where = String(s.in ?? "header").toLowerCase();
      if (where === "query") rule = { query: { [s.name]: ref } };
      else if (where === "cookie") rule = { headers: { Cookie: `${s.name}=${ref}` } };
      else rule = { headers: { [s.name]: ref } };
    }
    if (!rule) return;
    used.push(name);
    rules.push({ destinations: hosts, ...rule, secrets: { [secret]: value } });
  });
  return { rules, schemes: used };
}

/**
 * The dereferenced document as JSON: a schema that contains itself (directly or not) is written
 * out once per path and its recursion as a `$ref` to where the document defines it.
 */
export function jsonSafe(doc: unknown): string {
  const names = new Map<object, string>();
  for (const [section, entries] of Object.entries(obj(obj(doc).components))) {
    for (const [name, v] of Object.entries(obj(entries))) if (typeof v === "object" && v !== null) names.set(v, `#/components/${section}/${name}`);
  }
  const path = new Set<object>();
  const walk = (v: unknown): unknown => {
    if (typeof v !== "object" || v === null) return v;
    if (path.has(v)) return { $ref: names.get(v) ?? "#" };
    path.add(v);
    const out = Array.isArray(v) ? v.map(walk) : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    path.delete(v);
    return out;
  };
  return JSON.stringify(walk(doc));
}
