// What the proxy does to an intercepted request: resolves {{SECRET:name}} the sandbox sent, adds
// the rules' headers (never over the sandbox's own) and merges the rules' body fields into JSON and
// form bodies (the sandbox's fields win). And what it does to the response: secret values of the
// destination's rules are redacted, so an upstream that echoes a request cannot hand them back.

import { Transform, type TransformCallback } from "node:stream";
import { type CompiledRule, resolveFromRules, resolveSecrets } from "./policy.js";

export type HeaderMap = Record<string, string | string[]>;

/** Request headers a proxy must not forward (hop-by-hop, or re-derived by the upstream client). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "expect",
  "http2-settings",
]);

/** Response headers not passed back to the sandbox. */
const RESPONSE_DROP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "trailer", "te"]);

/** Copies headers a proxy forwards: no hop-by-hop, no pseudo-headers, none listed in Connection. */
export function forwardableHeaders(headers: Record<string, string | string[] | undefined>): HeaderMap {
  const listed = new Set(
    String(headers.connection ?? "")
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: HeaderMap = {};
  for (const [k, v] of Object.entries(headers)) {
    const name = k.toLowerCase();
    if (v === undefined || name.startsWith(":") || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    out[name] = v;
  }
  return out;
}

export function responseHeaders(headers: Record<string, string | string[] | undefined>): HeaderMap {
  const out: HeaderMap = {};
  for (const [k, v] of Object.entries(headers)) {
    const name = k.toLowerCase();
    if (v === undefined || name.startsWith(":") || RESPONSE_DROP.has(name)) continue;
    out[name] = v;
  }
  return out;
}

/**
 * Applies the rules to the headers in place: placeholders the sandbox sent are resolved from the
 * matching rules' secrets, then each rule's headers are added where the sandbox sent none.
 * Returns true when a secret value went into the request.
 */
export function injectHeaders(headers: HeaderMap, rules: CompiledRule[]): boolean {
  let used = false;
  if (rules.some((r) => r.secrets.size > 0)) {
    for (const [k, v] of Object.entries(headers)) {
      if (Array.isArray(v)) {
        const r = v.map((x) => resolveFromRules(x, rules));
        if (r.some((x, i) => x !== v[i])) {
          headers[k] = r;
          used = true;
        }
      } else {
        const r = resolveFromRules(v, rules);
        if (r !== v) {
          headers[k] = r;
          used = true;
        }
      }
    }
  }
  for (const rule of rules) {
    for (const [name, value] of rule.headers) {
      if (headers[name] !== undefined) continue;
      const resolved = resolveSecrets(value, rule.secrets);
      if (resolved !== value) used = true;
      headers[name] = resolved;
    }
  }
  return used;
}

/**
 * The request target with the rules' query parameters added where the sandbox sent none (secrets
 * resolved). Returns it unchanged when no rule adds any.
 */
export function injectQuery(path: string, rules: CompiledRule[]): string {
  if (!rules.some((r) => r.query.length > 0)) return path;
  const q = path.indexOf("?");
  const params = new URLSearchParams(q < 0 ? "" : path.slice(q + 1));
  let added = false;
  for (const rule of rules) {
    for (const [name, value] of rule.query) {
      if (params.has(name)) continue;
      params.append(name, resolveSecrets(value, rule.secrets));
      added = true;
    }
  }
  return added ? `${q < 0 ? path : path.slice(0, q)}?${params.toString()}` : path;
}

/** Methods whose bodies get the rules' body fields. */
export const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);

export type BodyKind = "json" | "form" | "empty" | null;

/** How a request body can be merged into, from its content type and encoding. */
export function bodyKind(headers: HeaderMap, hasBody: boolean): BodyKind {
  if (headers["content-encoding"] !== undefined && String(headers["content-encoding"]).toLowerCase() !== "identity") return null;
  const ct = String(headers["content-type"] ?? "").toLowerCase();
  if (!hasBody && !ct) return "empty";
  if (/^application\/(?:[\w.+-]+\+)?json\b/.test(ct)) return "json";
  if (ct.startsWith("application/x-www-form-urlencoded")) return "form";
  return null;
}

/** True when a request with these rules needs its body buffered and rewritten. */
export function needsBodyRewrite(method: string, rules: CompiledRule[]): boolean {
  return BODY_METHODS.has(method) && rules.some((r) => r.body.length > 0 || r.secrets.size > 0);
}

function resolveDeep(v: unknown, fn: (s: string) => string): unknown {
  if (typeof v === "string") return fn(v);
  if (Array.isArray(v)) return v.map((x) => resolveDeep(x, fn));
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveDeep(x, fn)]));
  return v;
}

/**
 * Rewrites a buffered body: sandbox placeholders resolved, rule fields merged where absent.
 * Returns null when the body is left as it is (not a JSON object or form, or nothing to do).
 */
export function rewriteBody(kind: BodyKind, body: Buffer, rules: CompiledRule[]): { body: Buffer; contentType?: string; usedSecret: boolean } | null {
  if (kind === null) return null;
  let used = false;
  const fromSandbox = (s: string) => {
    const r = resolveFromRules(s, rules);
    if (r !== s) used = true;
    return r;
  };
  const fromRule = (rule: CompiledRule) => (s: string) => {
    const r = resolveSecrets(s, rule.secrets);
    if (r !== s) used = true;
    return r;
  };
  if (kind === "form") {
    const form = new URLSearchParams(body.toString("utf8"));
    const out = new URLSearchParams();
    for (const [k, v] of form) out.append(k, fromSandbox(v));
    for (const rule of rules) for (const [k, v] of rule.body) if (!out.has(k)) out.append(k, fromRule(rule)(typeof v === "string" ? v : JSON.stringify(v)));
    return { body: Buffer.from(out.toString()), usedSecret: used };
  }
  let obj: Record<string, unknown>;
  if (kind === "empty" || body.length === 0) {
    if (!rules.some((r) => r.body.length > 0)) return null;
    obj = {};
  } else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      return null;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
      const resolved = resolveDeep(parsed, fromSandbox);
      return { body: Buffer.from(JSON.stringify(resolved)), usedSecret: used };
    }
    obj = resolveDeep(parsed, fromSandbox) as Record<string, unknown>;
  }
  for (const rule of rules) for (const [k, v] of rule.body) if (!(k in obj)) obj[k] = resolveDeep(v, fromRule(rule));
  return { body: Buffer.from(JSON.stringify(obj)), ...(kind === "empty" ? { contentType: "application/json" } : {}), usedSecret: used };
}

export const REDACTED = "[REDACTED]";

/** Secrets shorter than this are not redacted (they would mask ordinary text). */
export const MIN_REDACT_LENGTH = 4;

/** The forms in which a secret may come back: as is and JSON-escaped. */
export function redactionNeedles(secrets: string[]): Buffer[] {
  const out = new Set<string>();
  for (const s of secrets) {
    if (s.length < MIN_REDACT_LENGTH) continue;
    out.add(s);
    out.add(JSON.stringify(s).slice(1, -1));
    out.add(JSON.stringify(s).slice(1, -1).replace(/\//g, "\\/"));
  }
  return [...out].map((s) => Buffer.from(s)).sort((a, b) => b.length - a.length);
}

/** Replaces every needle in a buffer. */
export function scrub(buf: Buffer, needles: Buffer[]): Buffer {
  let out = buf;
  for (const n of needles) {
    let i = out.indexOf(n);
    if (i < 0) continue;
    const parts: Buffer[] = [];
    let from = 0;
    while (i >= 0) {
      parts.push(out.subarray(from, i), Buffer.from(REDACTED));
      from = i + n.length;
      i = out.indexOf(n, from);
    }
    parts.push(out.subarray(from));
    out = Buffer.concat(parts);
  }
  return out;
}

export function redactString(s: string, needles: Buffer[]): string {
  let out = s;
  for (const n of needles) out = out.split(n.toString()).join(REDACTED);
  return out;
}

/** Replaces secret values in a byte stream, also across chunk boundaries. */
export class Redactor extends Transform {
  private tail: Buffer = EMPTY;
  private readonly keep: number;

  constructor(private readonly needles: Buffer[]) {
    super({ highWaterMark: 256 * 1024 });
    this.keep = Math.max(0, ...needles.map((n) => n.length)) - 1;
  }

  /** Length of the longest ending of `buf` that some needle starts with. */
  private heldBack(buf: Buffer): number {
    for (let k = Math.min(this.keep, buf.length); k > 0; k--) {
      const from = buf.length - k;
      for (const n of this.needles) {
        let j = 0;
        while (j < k && buf[from + j] === n[j]) j++;
        if (j === k) return k;
      }
    }
    return 0;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const buf = scrub(this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk, this.needles);
    // hold back only an ending that could be the start of a secret (streams stay live)
    const hold = this.heldBack(buf);
    const cut = buf.length - hold;
    this.tail = hold ? Buffer.from(buf.subarray(cut)) : EMPTY;
    if (cut > 0) this.push(hold ? buf.subarray(0, cut) : buf);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.tail.length) this.push(scrub(this.tail, this.needles));
    cb();
  }
}

const EMPTY = Buffer.alloc(0);
