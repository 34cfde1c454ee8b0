// The edge: the run plane's front door. It finds what a request is for (a sandbox URL, a preview
// port, host or path, a custom domain), authenticates it (API key or preview/session token), wakes the
// sandbox and hands the request to the sandbox API or to a port inside the sandbox.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { HangarError, type Logger, asHangarError, pinMcpSession, sendProblem, silentLogger, unpinMcpSession, writingKeepalive } from "@hangar/common";
import type { AuthService, PreviewService, SandboxService } from "@hangar/control-plane";
import type { Lease, LiveSandbox, LocalNode, SandboxServicesLike } from "@hangar/node";
import type { PreviewRecord, SandboxRecord, Store, WorkspaceRecord } from "@hangar/store";
import { type RequestHead, type SpliceRoute, previewPortOf, readCookie, rewriteHead, withoutCookie } from "./front-door.js";
import { type ProxyOptions, proxyHttp, proxyUpgrade } from "./proxy.js";
import { API_PORTS, type EdgeUrls, workspaceCode } from "./urls.js";

/** Statuses of a sandbox whose new image is being built (or failed to build): the old one serves. */
const REBUILDING = new Set(["UPLOADING", "BUILDING", "FAILED"]);

/** The sandbox API as the edge drives it. */
export interface SandboxApiHandler<S> {
  handle(req: IncomingMessage, res: ServerResponse, services: S): void;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, services: S): void;
}

export interface EdgeOptions<S extends SandboxServicesLike> {
  /** Run-plane requests idle this long are closed (default 100 s). */
  runIdleMs?: number;
  auth: AuthService;
  sandboxes: SandboxService;
  previews: PreviewService;
  store: Store;
  node: LocalNode<S>;
  api: SandboxApiHandler<S>;
  urls: EdgeUrls;
  /** Hosts that are this server itself (never looked up as custom domains). */
  selfHosts?: string[];
  logger?: Logger;
  /** Agents (and functions): which replica and port serve /run/{ws}/{kind}/{name}. */
  workloads?: WorkloadRouting;
  /** Functions whose clients speak another MCP transport than their server (see WorkloadPick.mcp). */
  mcp?: McpBridging;
  /** The model gateway: serves /run/{ws}/models/{name}/… itself. */
  models?: ModelRunPlane;
}

/** Bridges MCP clients to a function's server speaking another transport (relaying messages only). */
export interface McpBridging {
  /** A WebSocket client; `upstream` is the function's Streamable HTTP endpoint (http://…/mcp). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: { scope: string; upstream: string }): void;
  /** A Streamable HTTP request; `upstream` is the function's WebSocket (ws://…/). */
  http(req: IncomingMessage, res: ServerResponse, target: { scope: string; upstream: string }): Promise<void>;
}

/** The model gateway as the edge hands it requests. */
export interface ModelRunPlane {
  handle(req: IncomingMessage, res: ServerResponse, workspace: string, name: string, rest: string): void;
}

/** The workloads plane as the edge drives it. */
export interface WorkloadRouting {
  /** Authorizes the caller and picks a replica; `done()` when the request ends. */
  /** `mcpSession`: a function client's Mcp-Session-Id (a bridged session stays on the replica holding it). */
  route(workspace: string, kind: string, name: string, authorization: string | undefined, cookie?: string, prefer?: string, mcpSession?: string): Promise<WorkloadPick>;
  /** The same, for a workload named by its id (the stable invoke URL). */
  routeById(id: string, authorization: string | undefined, cookie?: string, prefer?: string, mcpSession?: string): Promise<WorkloadPick>;
}

export interface WorkloadPick {
  replicaId: string;
  port: number;
  done: () => void;
  /** Keeps a client on the revision it reached (sticky sessions between canary revisions). */
  setCookie?: string;
  /** Stores an async call (`?async=true`), run and delivered in the background; resolves once durable. */
  enqueueAsync?: (call: { method: string; path: string; headers: Record<string, string>; body: Buffer }) => Promise<string>;
  /**
   * Functions: what their port speaks. "http-stream": Streamable HTTP at /mcp (WebSocket clients of
   * the root are bridged); "websocket": a WebSocket server (Streamable HTTP clients of /mcp are
   * bridged); "bridged": Hangar's in-sandbox bridge, which serves both itself.
   */
  mcp?: "http-stream" | "websocket" | "bridged";
}

/** Longest an async call may run (Blaxel: 15 min), and the most of its answer kept for the callback. */
/** A run-plane request whose app sends nothing for this long is closed (Blaxel: 100 s). */
const RUN_IDLE_MS = 100_000;
const ASYNC_MAX_BODY = 10 * 1024 * 1024;

/** What a run-plane request targets. */
type Route =
  | { kind: "sandbox"; workspace: string; name: string; rest: string }
  | { kind: "sandbox-host"; code: string; name: string; rest: string }
  /** `alias`: the path form `/preview/{label}/…`, on the server's own (shared) origin. */
  | { kind: "preview"; label: string; rest: string; alias?: true }
  /** Port mode: everything arriving on a preview's own host port. */
  | { kind: "preview-port"; port: number; rest: string }
  | { kind: "domain"; host: string; rest: string }
  | { kind: "workload"; workspace: string; plural: string; name: string; rest: string }
  /** The stable invoke URL: a workload by its id. */
  | { kind: "workload-id"; id: string; rest: string };

/** Where a resolved request goes. */
interface Target<S> {
  lease: Lease<S>;
  /** Path (and query) inside the sandbox URL or on the port. */
  rest: string;
  /** The preview, for preview routes. */
  preview?: PreviewRecord;
  /** Headers the client must not see forwarded (credentials of Hangar itself). */
  drop: string[];
  /** A Set-Cookie that keeps a private preview opened by a query token open for the page's assets. */
  setCookie?: string;
  /** For workloads: the port the app listens on, and what to call when the request ends. */
  app?: Pick<WorkloadPick, "replicaId" | "port" | "done" | "enqueueAsync" | "mcp"> & { scope?: string };
}

/**
 * What a response writes is traffic on its request's lease: a long response (a download, a proxied
 * event stream, a watch or log stream) keeps the sandbox awake while it delivers data, keepalives
 * excepted, and stops counting after connectionIdleMs of silence, like a quiet WebSocket.
 */
function countWrites(res: ServerResponse, lease: { touch(): void }): void {
  const write = res.write.bind(res) as (...a: unknown[]) => boolean;
  res.write = ((...a: unknown[]) => {
    if (!writingKeepalive(res)) lease.touch();
    return write(...a);
  }) as typeof res.write;
}

/**
 * What a request uploads is traffic too: while it is open, the bytes its connection has read are
 * checked every few seconds, so a long upload (whose response has not begun) keeps the sandbox
 * awake like a download does.
 */
function countReads(req: IncomingMessage, res: ServerResponse, lease: { touch(): void }, idleMs: number): void {
  const socket = req.socket;
  let seen = socket.bytesRead;
  const timer = setInterval(() => {
    if (socket.bytesRead !== seen) lease.touch();
    seen = socket.bytesRead;
  }, Math.max(250, Math.min(5_000, idleMs / 4)));
  timer.unref();
  res.once("close", () => clearInterval(timer));
  // the body's end is traffic: the handler is about to use the sandbox, which must be awake
  req.once("end", () => lease.touch());
}

const SANDBOX_PATH = /^\/run\/([^/?]+)\/sandboxes\/([^/?]+)(\/[^?]*)?(\?.*)?$/;
const MODEL_PATH = /^\/run\/([^/?]+)\/models\/([^/?]+)(\/[^?]*)?(\?.*)?$/;
const WORKLOAD_PATH = /^\/run\/([^/?]+)\/(agents|functions)\/([^/?]+)(\/[^?]*)?(\?.*)?$/;
/** `{base}/api/v2/endpoints/workloads/{workloadId}/…`: stable across revisions and replacements. */
const INVOKE_PATH = /^\/api\/v2\/endpoints\/workloads\/([a-z0-9]{1,40})(\/[^?]*)?(\?.*)?$/;
/** Set on answers Hangar itself gives for a workload (not its app's), as Blaxel's gateway does. */
const PLATFORM_SOURCE = { "x-blaxel-source": "platform" };
/** A function's Streamable HTTP endpoint, and where WebSocket MCP clients connect (its root, or /mcp). */
const MCP_PATH = /^\/mcp\/?(\?|$)/;
const MCP_WS_PATH = /^\/(mcp\/?)?(\?|$)/;
/** A response head's Mcp-Session-Id line (the value in group 2). */
const MCP_SESSION_LINE = /(\r\nmcp-session-id:[ \t]*)([^\r]*)/i;
/** A response head with a Streamable HTTP function's session id pinned to its replica (see @hangar/common mcp-session). */
const pinResponseHead = (replicaId: string) => (head: string) => head.replace(MCP_SESSION_LINE, (_all, name: string, id: string) => `${name}${pinMcpSession(replicaId, id.trim())}`);
const hostPort = (host: string, port: number) => (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`);
const PREVIEW_PATH = /^\/preview\/([a-z0-9-]{1,80})(\/[^?]*)?(\?.*)?$/;
const PORT_PATH = /^\/port\/(\d{1,5})(\/[^?]*)?(\?.*)?$/;
const IP_HOST = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\])$/i;
/** The terminal WebSocket of the sandbox API (§5.4 D), where `?token=` carries the API key. */
const TERMINAL_WS = /^\/+terminal\/ws\/?(\?|$)/;
/** Hangar's own credentials, never forwarded to a sandbox's app. */
const PREVIEW_CREDENTIALS = ["x-blaxel-preview-token", "x-blaxel-authorization", "x-blaxel-workspace"];
const SPLICE_DROP: ReadonlySet<string> = new Set(PREVIEW_CREDENTIALS);
const SPLICE_DROP_WITH_KEY: ReadonlySet<string> = new Set([...PREVIEW_CREDENTIALS, "authorization"]);
/**
 * The cookie a private preview opened with `?bl_preview_token=` sets, so the page's own links and
 * assets (which do not carry the query) are let in too. Never forwarded to the app (nor are its
 * per-port variants). Browsers do not keep cookies apart by port, so a preview on a host port
 * names its cookie after the port (`hangar_preview_token_<port>`).
 */
const PREVIEW_COOKIE = "hangar_preview_token";
const previewCookie = (r: { kind: string; port?: number }) => (r.kind === "preview-port" ? `${PREVIEW_COOKIE}_${r.port}` : PREVIEW_COOKIE);
/** An Authorization header that carries a Hangar API key (never forwarded to an app). */
const HANGAR_KEY = /^\s*bearer\s+hgr_/i;

/** A preview of 443, or of 8080 unless the sandbox declared 8080 for its own server, serves the sandbox API. */
function servesApi(p: PreviewRecord, declaredPorts: readonly number[]): boolean {
  return API_PORTS.has(p.port) && !(p.port === 8080 && declaredPorts.includes(8080));
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** A Host header's name: lowercased, without port or trailing dot. */
function hostName(host: string | null | undefined): string {
  return (host ?? "").toLowerCase().replace(/:\d+$/, "").replace(/\.$/, "");
}

function hostOf(req: IncomingMessage): string {
  return hostName(header(req, "host"));
}

/** Takes a query parameter out of a path+query, returning both (the first occurrence). */
function takeQueryParam(rest: string, name: string): { rest: string; value: string | undefined } {
  const re = new RegExp(`([?&])${name}=([^&#]*)&?`);
  const m = re.exec(rest);
  if (!m) return { rest, value: undefined };
  let value: string | undefined;
  try {
    value = decodeURIComponent(m[2]!);
  } catch {
    value = m[2];
  }
  const stripped = rest.replace(re, (_all, sep: string) => sep).replace(/[?&]$/, "");
  return { rest: stripped, value };
}

/** The CORS headers among a preview's configured response headers. */
function configuredCors(p: PreviewRecord | null | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(p?.responseHeaders ?? {}).filter(([k]) => k.toLowerCase().startsWith("access-control-") || k.toLowerCase() === "vary"));
}

/**
 * CORS headers for the edge's own answers (errors: 401, 404, 502…), so a browser can read them:
 * the preview's configured CORS, else the sandbox API's own (any origin; auth is never by cookie).
 */
function errorCors(p: PreviewRecord | null | undefined): Record<string, string> {
  const c = configuredCors(p);
  return Object.keys(c).length ? c : { "access-control-allow-origin": "*" };
}

/**
 * A preflight answered by the edge without credentials: the origin, the requested method and
 * headers are allowed (never credentials, so no cookie rides on it). Requests themselves still
 * need a key or token.
 */
function permissivePreflight(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {
    "access-control-allow-origin": header(req, "origin")!,
    "access-control-allow-methods": header(req, "access-control-request-method")!,
    "access-control-max-age": "86400",
    vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
  };
  const h = header(req, "access-control-request-headers");
  if (h) out["access-control-allow-headers"] = h;
  return out;
}

export class Edge<S extends SandboxServicesLike> {
  private readonly log: Logger;
  private readonly selfHosts: Set<string>;
  /** Custom-domain lookups, cached briefly (null = not a preview domain). */
  private readonly domainCache = new Map<string, { at: number; preview: PreviewRecord | null }>();

  constructor(private readonly opts: EdgeOptions<S>) {
    this.log = opts.logger ?? silentLogger;
    this.selfHosts = new Set(["localhost", ...(opts.selfHosts ?? []).map((h) => h.toLowerCase())]);
  }

  /** What a host names for previews: a label under the preview domain, maybe a custom domain, or nothing. */
  private previewHost(host: string): { label: string } | "maybe-domain" | null {
    const { previewDomain } = this.opts.urls.config;
    if (previewDomain && host.endsWith(`.${previewDomain}`)) {
      const label = host.slice(0, -previewDomain.length - 1);
      if (/^[a-z0-9-]{1,80}$/.test(label)) return { label };
    }
    return host && !this.selfHosts.has(host) && !IP_HOST.test(host) && host.includes(".") ? "maybe-domain" : null;
  }

  /** Classifies a request: run-plane route, maybe a custom domain, or not the edge's. */
  private route(req: IncomingMessage): Route | "maybe-domain" | null {
    const url = req.url ?? "/";
    const via = previewPortOf(req.socket);
    if (via !== undefined) return { kind: "preview-port", port: via, rest: url };
    const host = hostOf(req);
    const { sandboxDomain } = this.opts.urls.config;
    const byHost = this.previewHost(host);
    if (byHost && byHost !== "maybe-domain") return { kind: "preview", label: byHost.label, rest: url };
    if (sandboxDomain && host.endsWith(`.${sandboxDomain}`)) {
      const m = /^sbx-([a-z0-9-]+)-([a-z0-9]{8})$/.exec(host.slice(0, -sandboxDomain.length - 1));
      if (m) return { kind: "sandbox-host", name: m[1]!, code: m[2]!, rest: url };
    }
    let m = SANDBOX_PATH.exec(url);
    if (m) {
      try {
        return { kind: "sandbox", workspace: decodeURIComponent(m[1]!), name: decodeURIComponent(m[2]!), rest: (m[3] || "/") + (m[4] ?? "") };
      } catch {
        return null;
      }
    }
    m = this.opts.workloads ? WORKLOAD_PATH.exec(url) : null;
    if (m) {
      try {
        return { kind: "workload", workspace: decodeURIComponent(m[1]!), plural: m[2]!, name: decodeURIComponent(m[3]!), rest: (m[4] || "/") + (m[5] ?? "") };
      } catch {
        return null;
      }
    }
    m = this.opts.workloads ? INVOKE_PATH.exec(url) : null;
    if (m) return { kind: "workload-id", id: m[1]!, rest: (m[2] || "/") + (m[3] ?? "") };
    m = PREVIEW_PATH.exec(url);
    if (m) return { kind: "preview", label: m[1]!, rest: (m[2] || "/") + (m[3] ?? ""), alias: true };
    return byHost;
  }

  /** The preview a preview route names (null for other routes, or none). */
  private previewOf(r: Route): Promise<PreviewRecord | null> {
    if (r.kind === "preview") return this.opts.previews.byLabel(r.label);
    if (r.kind === "preview-port") return this.opts.previews.byHostPort(r.port);
    if (r.kind === "domain") return this.customDomainPreview(r.host);
    return Promise.resolve(null);
  }

  private async customDomainPreview(host: string): Promise<PreviewRecord | null> {
    const hit = this.domainCache.get(host);
    if (hit && Date.now() - hit.at < (hit.preview ? 5_000 : 1_000)) return hit.preview;
    const preview = await this.opts.store.previews.getByCustomDomain(host);
    if (this.domainCache.size > 10_000) this.domainCache.clear();
    this.domainCache.set(host, { at: Date.now(), preview });
    return preview;
  }

  /** Whether an Authorization header value carries an API key that reaches the workspace. */
  private async apiKeyReaches(h: string | undefined, workspaceId: string): Promise<boolean> {
    if (!h || !HANGAR_KEY.test(h)) return false;
    try {
      const p = await this.opts.auth.authenticate(h);
      return p.workspaceIds.has(workspaceId);
    } catch {
      return false;
    }
  }

  /** DEPLOYED, or rebuilding from source (or failed to) while what it ran before still runs. */
  private servable(rec: SandboxRecord): boolean {
    return rec.status === "DEPLOYED" || (REBUILDING.has(rec.status) && this.opts.node.has(rec.id));
  }

  private async liveSandbox(rec: SandboxRecord, kind: "request" | "connection"): Promise<Lease<S>> {
    if (!this.servable(rec)) throw new HangarError("sandbox_unavailable", `sandbox '${rec.name}' is ${rec.status}`);
    return this.opts.node.acquire(rec.id, kind);
  }

  /** Resolves a route to a woken sandbox and the path inside it; throws 401/403/404 problems. */
  private async resolve(req: IncomingMessage, r: Route, kind: "request" | "connection"): Promise<Target<S>> {
    if (r.kind === "workload" || r.kind === "workload-id") {
      const authorization = header(req, "x-blaxel-authorization") ?? header(req, "authorization");
      const w = this.opts.workloads!;
      const session = header(req, "mcp-session-id");
      const pick = r.kind === "workload" ? await w.route(r.workspace, r.plural, r.name, authorization, header(req, "cookie"), undefined, session) : await w.routeById(r.id, authorization, header(req, "cookie"), undefined, session);
      try {
        const lease = await this.opts.node.acquire(pick.replicaId, kind);
        // Hangar's own credentials never reach the app
        const drop = ["x-blaxel-authorization", "x-blaxel-workspace", ...(HANGAR_KEY.test(header(req, "authorization") ?? "") ? ["authorization"] : [])];
        const mcp = pick.mcp ? { mcp: pick.mcp, scope: r.kind === "workload" ? `${r.workspace}/${r.plural}/${r.name}` : `id/${r.id}` } : {};
        return { lease, rest: r.rest, drop, setCookie: pick.setCookie, app: { replicaId: pick.replicaId, port: pick.port, done: pick.done, ...(pick.enqueueAsync ? { enqueueAsync: pick.enqueueAsync } : {}), ...mcp } };
      } catch (e) {
        pick.done();
        throw e;
      }
    }
    if (r.kind === "sandbox" || r.kind === "sandbox-host") {
      let rest = r.rest;
      let authorization = header(req, "x-blaxel-authorization") ?? header(req, "authorization");
      if (kind === "connection" && TERMINAL_WS.test(rest)) {
        // `bl connect sandbox` sends no headers: the API key comes as ?token= (§5.4 D), and never
        // reaches the sandbox.
        const q = takeQueryParam(rest, "token");
        rest = q.rest;
        if (!authorization && q.value) authorization = /^bearer\s/i.test(q.value) ? q.value : `Bearer ${q.value}`;
      }
      const principal = await this.opts.auth.authenticate(authorization);
      let ws: WorkspaceRecord;
      if (r.kind === "sandbox") ws = await this.opts.auth.resolveWorkspace(principal, r.workspace);
      else {
        const found = (await this.opts.store.workspaces.list([...principal.workspaceIds])).find((w) => workspaceCode(w.id) === r.code);
        if (!found) throw new HangarError("forbidden", "this API key has no access to the sandbox's workspace");
        ws = found;
      }
      const rec = await this.opts.sandboxes.getForRequest(ws, r.name);
      const drop = ["x-blaxel-authorization", "x-blaxel-workspace"];
      if (!header(req, "x-blaxel-authorization")) drop.push("authorization");
      return { lease: await this.liveSandbox(rec, kind), rest, drop };
    }

    const preview = await this.previewOf(r);
    const cookie = header(req, "cookie");
    const cookieName = previewCookie(r);
    // Path aliases share one origin, where one preview's page could use another's cookie.
    const ownOrigin = !(r.kind === "preview" && r.alias);
    const a = await this.authorizePreview(preview, r.rest, header(req, "x-blaxel-preview-token"), header(req, "x-blaxel-authorization") ?? header(req, "authorization"), ownOrigin ? cookie : undefined, cookieName);
    const drop = HANGAR_KEY.test(header(req, "authorization") ?? "") ? [...PREVIEW_CREDENTIALS, "authorization"] : [...PREVIEW_CREDENTIALS];
    if (cookie !== undefined) {
      const kept = withoutCookie(cookie, PREVIEW_COOKIE);
      if (kept) req.headers.cookie = kept;
      else drop.push("cookie");
    }
    let setCookie: string | undefined;
    if (ownOrigin && a.queryToken !== undefined && !preview!.public && !API_PORTS.has(preview!.port)) {
      setCookie = `${cookieName}=${encodeURIComponent(a.queryToken)}; Path=/; HttpOnly; SameSite=Lax`;
    }
    return { lease: await this.liveSandbox(a.rec, kind), rest: a.rest, preview: preview!, drop, setCookie };
  }

  /**
   * Checks a request against a preview: published, not expired, public or opened by its token (header,
   * query or the preview cookie) or an API key of its workspace. Returns the path without the query
   * token, the query token if that is what opened it, and the preview's sandbox.
   */
  private async authorizePreview(
    preview: PreviewRecord | null,
    target: string,
    tokenHeader: string | undefined,
    authorization: string | undefined,
    cookie: string | null | undefined,
    cookieName = PREVIEW_COOKIE,
  ): Promise<{ rest: string; rec: SandboxRecord; queryToken?: string }> {
    if (!preview) throw new HangarError("preview_not_found", "no preview is published at this address");
    if (preview.expiresAt && Date.parse(preview.expiresAt) <= Date.now()) throw new HangarError("invalid_token", "this preview has expired");
    const { rest, value: queryToken } = takeQueryParam(target, "bl_preview_token");
    // The cookie opens app ports only: the sandbox API (sessions) is never driven by a cookie.
    const token = tokenHeader ?? queryToken ?? (API_PORTS.has(preview.port) ? undefined : readCookie(cookie, cookieName));
    if (!preview.public) {
      const ok = (token !== undefined && (await this.opts.previews.tokenOpens(preview, token))) || (await this.apiKeyReaches(authorization, preview.workspaceId));
      if (!ok) throw new HangarError("invalid_token", token ? "the preview token is wrong or has expired" : "this preview is private: send X-Blaxel-Preview-Token or ?bl_preview_token=");
    }
    const rec = await this.opts.sandboxes.getByIdForRequest(preview.sandboxId);
    if (!rec || rec.terminatedAt) throw new HangarError("preview_not_found", "the preview's sandbox no longer exists");
    return { rest, rec, queryToken: tokenHeader === undefined ? queryToken : undefined };
  }

  /**
   * The front door's question for each request: can it go straight to a preview's port? Yes for
   * host-based previews of app ports with no headers to inject, once authorized; anything else (and
   * every error, which the HTTP path answers properly) goes to the HTTP server.
   */
  async decideSplice(head: RequestHead, raw: Buffer, current?: string): Promise<SpliceRoute | null> {
    if (head.method === "OPTIONS") return null;
    const via = head.previewPort;
    if (via === undefined && this.opts.workloads && (head.target.startsWith("/run/") || head.target.startsWith("/api/v2/endpoints/"))) return this.spliceWorkload(head, raw, current);
    const host = hostName(head.headers.get("host"));
    const byHost = via !== undefined ? null : this.previewHost(host);
    const preview =
      via !== undefined ? await this.opts.previews.byHostPort(via) : byHost === null ? null : byHost === "maybe-domain" ? await this.customDomainPreview(host) : await this.opts.previews.byLabel(byHost.label);
    if (!preview || Object.keys(preview.requestHeaders).length || Object.keys(preview.responseHeaders).length) return null;
    let authorized: { rest: string; rec: SandboxRecord; queryToken?: string };
    try {
      authorized = await this.authorizePreview(
        preview,
        head.target,
        head.headers.get("x-blaxel-preview-token"),
        head.headers.get("x-blaxel-authorization") ?? head.headers.get("authorization"),
        head.headers.get("cookie"),
        previewCookie({ kind: via !== undefined ? "preview-port" : "preview", port: via }),
      );
    } catch {
      return null;
    }
    const { rec, rest } = authorized;
    if (authorized.queryToken !== undefined && !preview.public) return null; // the HTTP path sets the cookie
    if (!this.servable(rec) || !this.opts.node.has(rec.id) || servesApi(preview, this.opts.node.get(rec.id).spec.ports)) return null;
    return {
      key: `${preview.id}:${preview.port}`,
      host: this.opts.node.get(rec.id).handle.address,
      port: preview.port,
      head: rewriteHead(raw, head, rest, HANGAR_KEY.test(head.headers.get("authorization") ?? "") ? SPLICE_DROP_WITH_KEY : SPLICE_DROP, PREVIEW_COOKIE),
      acquire: () => this.opts.node.acquire(rec.id, "connection"),
      idleMs: this.opts.node.standbyOptions.connectionIdleMs,
    };
  }

  /**
   * A run-plane request to an agent or function on the fast path: authorized and routed per
   * request like the HTTP path, its bytes spliced to the replica's port. Async calls, sticky
   * cookies, errors and WebSocket upgrades go to the HTTP path.
   */
  private async spliceWorkload(head: RequestHead, raw: Buffer, current?: string): Promise<SpliceRoute | null> {
    if (head.headers.has("upgrade")) return null;
    const r = this.route({ url: head.target, headers: { host: head.headers.get("host") } } as unknown as IncomingMessage);
    if (!r || typeof r !== "object" || (r.kind !== "workload" && r.kind !== "workload-id")) return null;
    if (/[?&]async=/.test(r.rest)) return null;
    const authorization = head.headers.get("x-blaxel-authorization") ?? head.headers.get("authorization") ?? undefined;
    const cookie = head.headers.get("cookie") ?? undefined;
    const prefer = current?.split(":")[0];
    const session = head.headers.get("mcp-session-id") ?? undefined;
    const w = this.opts.workloads!;
    const pick = await (r.kind === "workload" ? w.route(r.workspace, r.plural, r.name, authorization, cookie, prefer, session) : w.routeById(r.id, authorization, cookie, prefer, session)).catch(() => null);
    if (!pick) return null;
    // a WebSocket function's Streamable HTTP clients are bridged on the HTTP path
    if (pick.setCookie || !this.opts.node.has(pick.replicaId) || (pick.mcp === "websocket" && MCP_PATH.test(r.rest))) {
      pick.done();
      return null;
    }
    // a Streamable HTTP function's own sessions: the client holds `<replica>.<id>`, the server `<id>`
    const ownSessions = pick.mcp === "http-stream" && MCP_PATH.test(r.rest);
    return {
      key: `${pick.replicaId}:${pick.port}`,
      host: this.opts.node.get(pick.replicaId).handle.address,
      port: pick.port,
      head: rewriteHead(raw, head, r.rest, HANGAR_KEY.test(head.headers.get("authorization") ?? "") ? SPLICE_DROP_WITH_KEY : SPLICE_DROP, undefined, ownSessions && session ? { "mcp-session-id": unpinMcpSession(session) } : undefined),
      acquire: () => this.opts.node.acquire(pick.replicaId, "connection"),
      idleMs: this.opts.runIdleMs ?? RUN_IDLE_MS,
      done: pick.done,
      errorHeaders: "x-blaxel-source: platform\r\n",
      ...(ownSessions ? { responseHead: pinResponseHead(pick.replicaId) } : {}),
    };
  }

  /**
   * CORS preflights, which carry no credentials, answered here: with a preview's configured CORS
   * headers, else permissively for the sandbox API (sandbox URLs, sessions) and private previews
   * (whose app cannot be reached without a token). A public app preview without CORS headers
   * leaves the preflight to its app.
   */
  private preflight(req: IncomingMessage, res: ServerResponse, r: Route): boolean {
    if (req.method !== "OPTIONS" || !header(req, "origin") || !header(req, "access-control-request-method")) return false;
    if (r.kind === "sandbox" || r.kind === "sandbox-host") {
      res.writeHead(204, permissivePreflight(req));
      res.end();
      return true;
    }
    // an agent answers its own preflights
    if (r.kind === "workload" || r.kind === "workload-id") return false;
    void (async () => {
      const preview = await this.previewOf(r);
      if (!preview) return false;
      const cors = configuredCors(preview);
      if (Object.keys(cors).length) res.writeHead(204, cors);
      else if (API_PORTS.has(preview.port) || !preview.public) res.writeHead(204, permissivePreflight(req));
      else return false;
      res.end();
      return true;
    })().then(
      (done) => {
        if (!done) this.run(req, res, r);
      },
      (e) => this.fail(req, res, r, e),
    );
    return true;
  }

  /** Answers an error, with CORS headers a browser needs to read it. */
  private fail(req: IncomingMessage, res: ServerResponse, r: Route, e: unknown, preview?: PreviewRecord): void {
    const err = asHangarError(e);
    if ((r.kind === "workload" || r.kind === "workload-id") && !res.headersSent) for (const [k, v] of Object.entries(PLATFORM_SOURCE)) res.setHeader(k, v);
    if (!header(req, "origin") || res.headersSent) return sendProblem(res, err);
    const lookup = preview ? Promise.resolve(preview) : this.previewOf(r);
    lookup.then(
      (p) => {
        for (const [k, v] of Object.entries(errorCors(p))) res.setHeader(k, v);
        sendProblem(res, err);
      },
      () => sendProblem(res, err),
    );
  }

  /**
   * Handles run-plane requests. Calls `next` for requests that are not the edge's (synchronously,
   * or after a custom-domain lookup for unknown hosts).
   */
  handle(req: IncomingMessage, res: ServerResponse, next: () => void): void {
    const models = this.opts.models;
    if (models && req.url?.startsWith("/run/") && previewPortOf(req.socket) === undefined) {
      const m = MODEL_PATH.exec(req.url);
      if (m) {
        let ws: string, name: string;
        try {
          ws = decodeURIComponent(m[1]!);
          name = decodeURIComponent(m[2]!);
        } catch {
          return sendProblem(res, new HangarError("invalid_path", "the model URL is not properly encoded"));
        }
        return models.handle(req, res, ws, name, (m[3] || "/") + (m[4] ?? ""));
      }
    }
    const r = this.route(req);
    if (r === null) return next();
    if (r === "maybe-domain") {
      const host = hostOf(req);
      this.customDomainPreview(host).then(
        (p) => {
          if (!p) return next();
          const route: Route = { kind: "domain", host, rest: req.url ?? "/" };
          if (!this.preflight(req, res, route)) this.run(req, res, route);
        },
        (e) => sendProblem(res, asHangarError(e)),
      );
      return;
    }
    if (!this.preflight(req, res, r)) this.run(req, res, r);
  }

  private run(req: IncomingMessage, res: ServerResponse, r: Route): void {
    this.resolve(req, r, "request").then(
      (t) => {
        res.once("close", () => {
          t.lease.release();
          t.app?.done();
        });
        countWrites(res, t.lease);
        countReads(req, res, t.lease, this.opts.node.standbyOptions.connectionIdleMs);
        try {
          this.dispatch(req, res, t);
        } catch (e) {
          this.fail(req, res, r, e, t.preview);
        }
      },
      (e) => this.fail(req, res, r, e),
    );
  }

  private dispatch(req: IncomingMessage, res: ServerResponse, t: Target<S>): void {
    const { live } = t.lease;
    const p = t.preview;
    if (t.app) {
      const a = takeQueryParam(t.rest, "async");
      if (a.value === "true") return void this.runAsync(req, res, t, a.rest);
      if (t.app.mcp === "websocket" && this.opts.mcp && MCP_PATH.test(t.rest)) {
        const target = { scope: t.app.scope ?? "", upstream: `ws://${hostPort(live.handle.address, t.app.port)}/` };
        return void this.opts.mcp.http(req, res, target).catch((e) => this.log.warn({ err: e }, "bridging an MCP request failed"));
      }
      // a Streamable HTTP function's own sessions: the client holds `<replica>.<id>`, the server `<id>`
      const ownSessions = t.app.mcp === "http-stream" && MCP_PATH.test(t.rest);
      const sid = req.headers["mcp-session-id"];
      if (ownSessions && typeof sid === "string") req.headers["mcp-session-id"] = unpinMcpSession(sid);
      const replicaId = t.app.replicaId;
      const pinResponse = ownSessions
        ? (h: Record<string, string | string[] | undefined>) => {
            const id = h["mcp-session-id"];
            if (typeof id === "string") h["mcp-session-id"] = pinMcpSession(replicaId, id);
          }
        : undefined;
      proxyHttp(req, res, { host: live.handle.address, port: t.app.port, path: t.rest }, { dropHeaders: t.drop, errorHeaders: PLATFORM_SOURCE, platformHeaders: PLATFORM_SOURCE, setCookie: t.setCookie, idleTimeoutMs: this.opts.runIdleMs ?? RUN_IDLE_MS, ...(pinResponse ? { rewriteResponseHeaders: pinResponse } : {}) });
      return;
    }
    if (p && !servesApi(p, live.spec.ports)) {
      proxyHttp(req, res, { host: live.handle.address, port: p.port, path: t.rest }, this.proxyOptions(t));
      return;
    }
    const port = PORT_PATH.exec(t.rest); // sessions serve /port/{n} like the sandbox URL
    if (port) {
      proxyHttp(req, res, this.portTarget(live, port), this.proxyOptions(t));
      return;
    }
    for (const h of t.drop) delete req.headers[h];
    if (p && Object.keys(p.responseHeaders).length) {
      // Sessions: the preview's response headers (e.g. CORS) apply to the sandbox API too.
      const writeHead = res.writeHead.bind(res) as (...a: unknown[]) => ServerResponse;
      res.writeHead = ((...a: unknown[]) => {
        for (const [k, v] of Object.entries(p.responseHeaders)) res.setHeader(k, v);
        return writeHead(...a);
      }) as typeof res.writeHead;
    }
    req.url = t.rest;
    this.opts.api.handle(req, res, live.services);
  }

  /**
   * An async workload call: the request stored (durable before it is answered), `{"success": true}`
   * at once; the workloads plane runs it against a replica and delivers the answer to the callback.
   */
  private async runAsync(req: IncomingMessage, res: ServerResponse, t: Target<S>, path: string): Promise<void> {
    const app = t.app!;
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of req) {
        size += (c as Buffer).length;
        if (size > ASYNC_MAX_BODY) throw new HangarError("payload_too_large", `an async call's body is at most ${ASYNC_MAX_BODY / 1024 / 1024} MiB`);
        chunks.push(c as Buffer);
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && ![...t.drop, "host", "connection", "content-length", "transfer-encoding"].includes(k)) headers[k] = Array.isArray(v) ? v.join(", ") : v;
      if (!app.enqueueAsync) throw new HangarError("not_configured", "async calls are not available here");
      await app.enqueueAsync({ method: req.method ?? "POST", path, headers, body: Buffer.concat(chunks) });
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ success: true }));
    } catch (e) {
      sendProblem(res, asHangarError(e));
    } finally {
      t.lease.release();
      app.done();
    }
  }

  private proxyOptions(t: Target<S>): ProxyOptions {
    return { dropHeaders: t.drop, addRequestHeaders: t.preview?.requestHeaders ?? {}, responseHeaders: t.preview?.responseHeaders ?? {}, errorHeaders: errorCors(t.preview), setCookie: t.setCookie };
  }

  private portTarget(live: LiveSandbox<S>, m: RegExpExecArray) {
    const port = Number(m[1]);
    if (port < 1 || port > 65_535) throw new HangarError("invalid_port", `port ${port} is out of range`);
    return { host: live.handle.address, port, path: (m[2] || "/") + (m[3] ?? "") };
  }

  /** WebSocket and other upgrades: the same routing, held as a long-lived connection. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, next: () => void): void {
    const r = this.route(req);
    if (r === null) return next();
    const go = (route: Route) =>
      this.resolve(req, route, "connection").then(
        (t) => this.upgrade(req, socket, head, t),
        (e) => {
          const err = asHangarError(e);
          socket.end(`HTTP/1.1 ${err.status} ${err.code}\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(err.message)}\r\n\r\n${err.message}`);
        },
      );
    if (r === "maybe-domain") {
      const host = hostOf(req);
      void this.customDomainPreview(host).then((p) => (p ? go({ kind: "domain", host, rest: req.url ?? "/" }) : next()));
      return;
    }
    void go(r);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, t: Target<S>): void {
    const { lease } = t;
    const idleMs = this.opts.node.standbyOptions.connectionIdleMs;
    // Traffic in either direction keeps the sandbox awake (and wakes it); silence closes the socket.
    const idle = setTimeout(() => socket.destroy(), idleMs);
    const activity = () => {
      lease.touch();
      idle.refresh();
    };
    socket.on("data", activity);
    const write = socket.write.bind(socket) as (...a: unknown[]) => boolean;
    socket.write = ((...a: unknown[]) => {
      activity();
      return write(...a);
    }) as typeof socket.write;
    socket.once("close", () => {
      clearTimeout(idle);
      lease.release();
      t.app?.done();
    });
    const p = t.preview;
    if (t.app?.mcp === "http-stream" && this.opts.mcp && MCP_WS_PATH.test(t.rest)) {
      return this.opts.mcp.upgrade(req, socket, head, { scope: t.app.scope ?? "", upstream: `http://${hostPort(lease.live.handle.address, t.app.port)}/mcp` });
    }
    if (t.app) return proxyUpgrade(req, socket, head, { host: lease.live.handle.address, port: t.app.port, path: t.rest }, { dropHeaders: t.drop });
    const port = PORT_PATH.exec(t.rest); // sessions serve /port/{n} like the sandbox URL
    if (p && !servesApi(p, lease.live.spec.ports)) proxyUpgrade(req, socket, head, { host: lease.live.handle.address, port: p.port, path: t.rest }, this.proxyOptions(t));
    else if (port) proxyUpgrade(req, socket, head, this.portTarget(lease.live, port), this.proxyOptions(t));
    else {
      for (const h of t.drop) delete req.headers[h];
      req.url = t.rest;
      this.opts.api.handleUpgrade(req, socket, head, lease.live.services);
    }
  }
}
