// The run plane of models: /run/{ws}/models/{name}/<provider path> forwarded to the model's
// provider with the connection's key in place of the caller's Hangar key. Bodies stream both ways
// (SSE chunk by chunk); usage is read on the way; budgets are checked before forwarding. Nothing
// here reads the store per request: models and workspaces are cached for a second, keys by AuthService.

import type { IncomingMessage, ServerResponse } from "node:http";
import { HangarError, type Logger, PROBLEM_CONTENT_TYPE, TtlCache, asHangarError, sendProblem, toProblem } from "@hangar/common";
import type { AuthService } from "@hangar/control-plane";
import type { Store, WorkspaceRecord } from "@hangar/store";
import { Pool } from "undici";
import type { Accountant } from "./accountant.js";
import type { GatewayService, ResolvedModel } from "./gateway-service.js";
import { SseUsageScanner, type TokenUsage, mergeUsage } from "./usage.js";

export interface ModelGatewayOptions {
  store: Store;
  auth: AuthService;
  service: GatewayService;
  accountant: Accountant;
  logger: Logger;
  /** Longest wait for the provider's response head, and for each chunk of its body. Default 10 min. */
  timeoutMs?: number;
  /** Longest wait to connect to the provider. Default 10 s. */
  connectTimeoutMs?: number;
  /** Retries when the provider could not be reached at all (nothing was sent). Default 2. */
  retries?: number;
  /** Largest request body taken. Default 32 MiB. */
  maxBodyBytes?: number;
}

/** Request headers never forwarded: hop-by-hop, Hangar's own credentials, whatever authenticates the caller. */
const DROP_REQUEST = new Set([
  "host",
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "content-length",
  "authorization",
  "x-api-key",
  "api-key",
  "x-goog-api-key",
  "cookie",
  "blaxel-version",
  "accept-encoding",
]);
const DROP_RESPONSE = new Set(["connection", "keep-alive", "transfer-encoding", "proxy-connection", "trailer", "upgrade"]);
/** Errors that mean nothing reached the provider: safe to try again. */
const NOT_SENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"]);
const TIMEOUTS = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_CONNECT_TIMEOUT"]);
/** APIs whose body names the model. */
const TAKES_MODEL = /\/(chat\/completions|completions|responses|embeddings|messages|chat|embed|rerank)$/;
const PLATFORM = { "x-blaxel-source": "platform" };
const HANGAR_KEY = /^\s*bearer\s+hgr_/i;

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The Hangar key a model client sent: x-blaxel-authorization, else a Hangar key in Authorization or x-api-key. */
function callerKey(req: IncomingMessage): string | undefined {
  const x = first(req.headers["x-blaxel-authorization"]);
  if (x) return x;
  const a = first(req.headers.authorization);
  if (a && HANGAR_KEY.test(a)) return a;
  const k = first(req.headers["x-api-key"]) ?? first(req.headers["api-key"]);
  if (k?.startsWith("hgr_")) return `Bearer ${k}`;
  return a;
}

/** Resolves when the client has taken what was written, or is gone. */
function drained(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.destroy();
        reject(new HangarError("payload_too_large", `the request body is larger than ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** The provider's own message out of its error body (OpenAI, Anthropic, Gemini, plain text). */
function providerMessage(text: string, doc: unknown): string {
  const d = doc as Record<string, unknown> | null;
  const err = d?.error;
  if (err && typeof err === "object" && typeof (err as { message?: unknown }).message === "string") return (err as { message: string }).message;
  if (typeof err === "string") return err;
  if (typeof d?.message === "string") return d.message;
  if (typeof d?.detail === "string") return d.detail;
  return text.trim().slice(0, 500) || "no details";
}

export class ModelGateway {
  private readonly workspaces = new TtlCache<string, WorkspaceRecord | null>(1_000);
  private readonly models = new TtlCache<string, ResolvedModel | null>(1_000);
  /** One connection pool per provider origin. */
  private readonly pools = new Map<string, Pool>();
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly maxBody: number;

  constructor(private readonly opts: ModelGatewayOptions) {
    this.timeoutMs = opts.timeoutMs ?? 600_000;
    this.retries = opts.retries ?? 2;
    this.maxBody = opts.maxBodyBytes ?? 32 * 1024 * 1024;
  }

  /** Forgets cached models (after any change to connections, models or policies). */
  invalidate(): void {
    this.models.clear();
    this.workspaces.clear();
  }

  /** Serves /run/{workspace}/models/{name}{rest}. */
  handle(req: IncomingMessage, res: ServerResponse, workspace: string, name: string, rest: string): void {
    this.serve(req, res, workspace, name, rest).catch((e) => {
      const err = asHangarError(e);
      if (err.code === "internal") this.opts.logger.error({ err: e, model: name }, "model gateway request failed");
      if (!res.headersSent) for (const [k, v] of Object.entries(PLATFORM)) res.setHeader(k, v);
      sendProblem(res, err);
    });
  }

  private pool(origin: string): Pool {
    let p = this.pools.get(origin);
    if (!p) {
      p = new Pool(origin, { connections: 256, keepAliveTimeout: 30_000, connectTimeout: this.opts.connectTimeoutMs ?? 10_000 });
      this.pools.set(origin, p);
    }
    return p;
  }

  private async serve(req: IncomingMessage, res: ServerResponse, workspace: string, name: string, rest: string): Promise<void> {
    // who: a key of the workspace in the path (the same answer whether or not the model exists)
    const principal = await this.opts.auth.authenticate(callerKey(req));
    const ws = await this.workspaces.getOrLoad(workspace, () => this.opts.store.workspaces.getByName(workspace));
    if (!ws || !principal.workspaceIds.has(ws.id)) throw new HangarError("forbidden", `this API key has no access to workspace '${workspace}'`);
    const m = await this.models.getOrLoad(`${ws.id}\0${name}`, () => this.opts.service.resolveModel(ws.id, name));
    if (!m) throw new HangarError("not_found", `model '${name}' not found in workspace '${workspace}'`);
    if (m.unavailable || !m.provider || !m.baseUrl) throw new HangarError("model_unavailable", m.unavailable ?? `model '${name}' cannot serve`);
    if (m.budgets.length) {
      const over = await this.opts.accountant.overBudget(ws.id, name, m.budgets);
      if (over) {
        throw new HangarError(
          "token_budget_exceeded",
          `model '${name}' used ${over.used} ${over.metric} tokens of the ${over.limit} that policy '${over.policy}' allows per ${Math.round(over.windowMs / 60_000)} min`,
          { policy: over.policy, metric: over.metric, used: over.used, limit: over.limit, windowSeconds: over.windowMs / 1000 },
        );
      }
    }
    const provider = m.provider;
    const base = new URL(m.baseUrl);
    const upstreamPath = base.pathname.replace(/\/$/, "") + provider.path(rest, { model: m.spec.runtime.model ?? name, config: m.config ?? {} });

    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || DROP_REQUEST.has(k) || k.startsWith("x-blaxel-")) continue;
      headers[k] = v;
    }
    for (const [k, v] of Object.entries(provider.defaultHeaders ?? {})) if (!(k in headers)) headers[k] = v;
    Object.assign(headers, m.authHeaders);
    headers["accept-encoding"] = "identity";

    let body: Buffer | undefined;
    let dropUsageOnly = false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      body = await readBody(req, this.maxBody);
      if (body.length && /json/i.test(first(req.headers["content-type"]) ?? "")) {
        const adjusted = this.adjustBody(body, m, upstreamPath);
        body = adjusted.body;
        dropUsageOnly = adjusted.addedUsage;
      }
      headers["content-length"] = String(body.length);
    }

    const pool = this.pool(base.origin);
    // a client that goes away stops the provider's work too (a completion is not generated for no one)
    let finished = false;
    const abort = new AbortController();
    res.once("close", () => {
      if (!finished) abort.abort();
    });
    let up: Awaited<ReturnType<Pool["request"]>>;
    for (let attempt = 0; ; attempt++) {
      try {
        up = await pool.request({ path: upstreamPath, method: (req.method ?? "GET") as "GET", headers, body: body ?? null, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs, signal: abort.signal });
        break;
      } catch (e) {
        const code = (e as { code?: string }).code ?? "";
        if (abort.signal.aborted) return;
        if (NOT_SENT.has(code) && attempt < this.retries) {
          await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
          continue;
        }
        if (TIMEOUTS.has(code)) throw new HangarError("upstream_timeout", `${provider.displayName} did not answer within ${Math.round((code === "UND_ERR_CONNECT_TIMEOUT" ? (this.opts.connectTimeoutMs ?? 10_000) : this.timeoutMs) / 1000)} s`, { provider: provider.integration });
        throw new HangarError("upstream_unreachable", `${provider.displayName} could not be reached: ${(e as Error).message}`, { provider: provider.integration });
      }
    }

    if (up.statusCode >= 400) {
      finished = true;
      return this.providerFailed(res, up, provider.displayName, provider.integration);
    }

    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !DROP_RESPONSE.has(k)) out[k] = v;
    const type = String(up.headers["content-type"] ?? "");
    const sse = type.startsWith("text/event-stream");
    if (sse && dropUsageOnly) delete out["content-length"];
    res.writeHead(up.statusCode, out);

    const usage: TokenUsage = { input: 0, output: 0, total: 0 };
    try {
      if (sse) {
        const scanner = new SseUsageScanner(dropUsageOnly);
        for await (const chunk of up.body) {
          const send = scanner.push(chunk as Buffer);
          if (send.length && !res.write(send)) await drained(res);
        }
        const tail = scanner.end();
        if (tail) res.write(tail);
        Object.assign(usage, scanner.usage);
      } else {
        const keep = /json/i.test(type);
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of up.body) {
          if (keep && size < 8 * 1024 * 1024) {
            chunks.push(chunk as Buffer);
            size += (chunk as Buffer).length;
          }
          if (!res.write(chunk)) await drained(res);
        }
        if (keep && chunks.length) {
          try {
            mergeUsage(usage, JSON.parse(Buffer.concat(chunks).toString("utf8")));
          } catch {
            // not JSON after all: no usage
          }
        }
      }
    } catch (e) {
      finished = true;
      // the head is sent: all that is left is to cut the response
      if (!abort.signal.aborted) this.opts.logger.warn({ err: e, model: name }, "model response cut");
      res.destroy();
      return;
    }
    finished = true;
    // counted before the response ends, so the caller's next request sees it
    this.opts.accountant.record(ws.id, name, usage);
    res.end();
  }

  /**
   * The model the endpoint is for replaces whatever the client named (mk3 clients send the
   * Blaxel model's name), and OpenAI-style streams are asked for their usage when the client did not.
   */
  private adjustBody(body: Buffer, m: ResolvedModel, upstreamPath: string): { body: Buffer; addedUsage: boolean } {
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
    } catch {
      return { body, addedUsage: false };
    }
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) return { body, addedUsage: false };
    let changed = false;
    let addedUsage = false;
    const model = m.spec.runtime.model;
    // the endpoint's model replaces the one named, and is added where the API takes one and none was named
    if (model && (typeof doc.model === "string" ? doc.model !== model : doc.model === undefined && TAKES_MODEL.test(upstreamPath.split("?")[0]!))) {
      doc.model = model;
      changed = true;
    }
    if (doc.stream === true && m.provider!.streamUsage && /\/chat\/completions$/.test(upstreamPath.split("?")[0]!)) {
      const so = (doc.stream_options ?? {}) as Record<string, unknown>;
      if (so.include_usage !== true) {
        doc.stream_options = { ...so, include_usage: true };
        changed = addedUsage = true;
      }
    }
    return changed ? { body: Buffer.from(JSON.stringify(doc)), addedUsage } : { body, addedUsage };
  }

  /** A provider's error answer, normalized into Hangar's problem shape with the provider's status kept. */
  private async providerFailed(res: ServerResponse, up: Awaited<ReturnType<Pool["request"]>>, displayName: string, integration: string): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of up.body) {
      if (size < 256 * 1024) chunks.push(c as Buffer);
      size += (c as Buffer).length;
    }
    const text = Buffer.concat(chunks).toString("utf8");
    let doc: unknown = null;
    try {
      doc = JSON.parse(text);
    } catch {
      // plain text
    }
    const message = providerMessage(text, doc);
    const problem = toProblem(new HangarError("provider_error", `${displayName} answered ${up.statusCode}: ${message}`, { provider: integration, providerStatus: up.statusCode, ...(doc ? { providerError: doc } : {}) }));
    problem.status = up.statusCode;
    problem.code = up.statusCode;
    const json = JSON.stringify(problem);
    const headers: Record<string, string> = { "content-type": PROBLEM_CONTENT_TYPE, "content-length": String(Buffer.byteLength(json)), ...PLATFORM };
    const retryAfter = up.headers["retry-after"];
    if (typeof retryAfter === "string") headers["retry-after"] = retryAfter;
    res.writeHead(up.statusCode, headers).end(json);
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
    this.pools.clear();
  }
}
