// Serves one MCP server to many clients over Streamable HTTP and WebSocket. Each client session
// (an initialized Streamable HTTP session, or one WebSocket) gets its own upstream session, opened
// by `connect` on its first message: a fresh stdio child, or a client transport to the function's
// own Streamable HTTP or WebSocket server. Messages are relayed as they are (the official MCP SDK's
// transports frame them on both sides); an upstream that ends fails the requests it left
// unanswered, and the session's next message opens a new upstream, replaying the client's
// initialize to it.

import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { type JSONRPCMessage, type RequestId, isInitializeRequest, isJSONRPCRequest } from "@modelcontextprotocol/sdk/types.js";
import { WebSocketServer } from "ws";
import { WebSocketTransport } from "./ws-transport.js";

export interface McpGatewayOptions {
  /** Opens the upstream of a new client session (not started yet: the gateway starts it); `req` opened the session. */
  connect: (req: IncomingMessage) => Transport | Promise<Transport>;
  /** A Streamable HTTP session unused this long is closed with its upstream (default 15 min). */
  sessionIdleMs?: number;
  /**
   * A Streamable HTTP session whose client had its event stream (GET) open and then left every
   * stream closed this long is closed (default 10 s): the official SDK client's close() ends its
   * streams without a DELETE.
   */
  detachedMs?: number;
  /** Starts every Streamable HTTP session id (e.g. the replica's id, so the run plane keeps a session on it). */
  sessionIdPrefix?: string;
  /** Where problems go (default: nowhere). */
  log?: (message: string) => void;
}

/** JSON-RPC code of a request the upstream left unanswered (it exited or the connection broke). */
export const UPSTREAM_GONE = -32000;

type Json = Record<string, unknown>;
const isResponse = (m: JSONRPCMessage): m is JSONRPCMessage & { id: RequestId } => "id" in m && !("method" in m);
const progressTokenOf = (m: JSONRPCMessage): unknown => ((("params" in m ? m.params : undefined) as Json | undefined)?._meta as Json | undefined)?.progressToken;

/** One client session and its upstream. */
class Session {
  private upstream: Transport | null = null;
  private opening: Promise<Transport> | null = null;
  private initRequest: JSONRPCMessage | null = null;
  private initialized: JSONRPCMessage | null = null;
  /** Client requests the upstream has not answered, with their progress token. */
  private readonly pending = new Map<RequestId, unknown>();
  /** Progress tokens → the request they report on (so progress goes to that request's stream). */
  private readonly progress = new Map<unknown, RequestId>();
  private replays = 0;
  private closed = false;
  lastUsed = Date.now();

  constructor(
    private readonly client: Transport,
    private readonly connect: () => Transport | Promise<Transport>,
    private readonly log: (m: string) => void,
    private readonly onClosed: () => void,
  ) {
    client.onmessage = (m) => void this.fromClient(m).catch((e) => this.failRequest(m, e as Error));
    client.onclose = () => void this.close();
    client.onerror = (e) => this.log(`client transport: ${e.message}`);
  }

  private async fromClient(m: JSONRPCMessage): Promise<void> {
    this.lastUsed = Date.now();
    if (isInitializeRequest(m)) this.initRequest = m;
    else if ("method" in m && m.method === "notifications/initialized") this.initialized = m;
    if (isJSONRPCRequest(m)) {
      const token = progressTokenOf(m);
      this.pending.set(m.id, token);
      if (token !== undefined) this.progress.set(token, m.id);
    }
    const up = await this.ensureUpstream(isInitializeRequest(m));
    await up.send(m);
  }

  /** The live upstream, or a new one (initialized again with the client's own initialize unless `fresh`). */
  private ensureUpstream(fresh: boolean): Promise<Transport> {
    if (this.upstream) return Promise.resolve(this.upstream);
    this.opening ??= this.open(fresh).finally(() => (this.opening = null));
    return this.opening;
  }

  private async open(fresh: boolean): Promise<Transport> {
    if (this.closed) throw new Error("the session is closed");
    const up = await this.connect();
    let replayId: RequestId | null = null;
    let replayed: (() => void) | null = null;
    up.onmessage = (m) => {
      if (replayId !== null && isResponse(m) && m.id === replayId) {
        replayId = null;
        replayed?.();
        return;
      }
      void this.fromUpstream(m);
    };
    up.onerror = (e) => this.log(`upstream: ${e.message}`);
    up.onclose = () => this.upstreamEnded(up);
    await up.start();
    if (!fresh && this.initRequest) {
      // a restarted server: initialize it as the client did, its answer kept from the client
      replayId = `hangar-bridge-init-${++this.replays}`;
      const done = new Promise<void>((resolve) => (replayed = resolve));
      await up.send({ ...(this.initRequest as Json), id: replayId } as JSONRPCMessage);
      await done;
      if (this.initialized) await up.send(this.initialized);
    }
    this.upstream = up;
    if (this.closed) await up.close().catch(() => undefined);
    return up;
  }

  private async fromUpstream(m: JSONRPCMessage): Promise<void> {
    let related: RequestId | undefined;
    if (isResponse(m)) {
      const token = this.pending.get(m.id);
      if (token !== undefined) this.progress.delete(token);
      this.pending.delete(m.id);
    } else if ("method" in m && m.method === "notifications/progress") {
      related = this.progress.get(((m.params ?? {}) as Json).progressToken);
    }
    await this.client.send(m, related !== undefined ? { relatedRequestId: related } : undefined).catch((e: Error) => this.log(`to client: ${e.message}`));
  }

  private upstreamEnded(up: Transport): void {
    if (this.upstream !== up) return;
    this.upstream = null;
    // what it left unanswered fails now; the next message starts a new upstream
    for (const id of [...this.pending.keys()]) this.answerError(id, "the MCP server exited before answering; call again");
  }

  private failRequest(m: JSONRPCMessage, e: Error): void {
    this.log(`relaying to the upstream: ${e.message}`);
    if (isJSONRPCRequest(m)) this.answerError(m.id, `the MCP server is unavailable: ${e.message}`);
  }

  private answerError(id: RequestId, message: string): void {
    const token = this.pending.get(id);
    if (token !== undefined) this.progress.delete(token);
    this.pending.delete(id);
    void this.client.send({ jsonrpc: "2.0", id, error: { code: UPSTREAM_GONE, message } }).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClosed();
    const up = this.upstream;
    this.upstream = null;
    // an upstream Streamable HTTP session is ended too (DELETE), not just left
    const end = up && "terminateSession" in up ? (up as Transport & { terminateSession(): Promise<void> }).terminateSession().catch(() => undefined) : undefined;
    await Promise.allSettled([end?.then(() => up?.close()) ?? up?.close(), this.client.close()]);
  }
}

/** A Streamable HTTP session: its open responses, and whether its client ever held the event stream. */
interface HttpSession {
  session: Session;
  /** What the session was opened for (a later request for another scope does not find it). */
  scope: string;
  http: StreamableHTTPServerTransport;
  open: number;
  listened: boolean;
  detached?: NodeJS.Timeout;
}

export class McpGateway {
  private readonly sessions = new Map<string, HttpSession>();
  private readonly sockets = new Set<Session>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly log: (m: string) => void;
  private readonly reaper: NodeJS.Timeout;

  constructor(private readonly opts: McpGatewayOptions) {
    this.log = opts.log ?? (() => undefined);
    const idle = opts.sessionIdleMs ?? 15 * 60_000;
    this.reaper = setInterval(() => {
      for (const { session } of this.sessions.values()) if (Date.now() - session.lastUsed > idle) void session.close();
    }, Math.min(idle, 30_000));
    this.reaper.unref();
  }

  /** Open client sessions (Streamable HTTP and WebSocket). */
  get size(): number {
    return this.sessions.size + this.sockets.size;
  }

  /**
   * A Streamable HTTP request (POST, GET for the server's event stream, DELETE to end a session).
   * `scope` names what the caller was let into (e.g. one function): sessions are found only within it.
   */
  async handleHttp(req: IncomingMessage, res: ServerResponse, scope = ""): Promise<void> {
    const sid = req.headers["mcp-session-id"];
    if (typeof sid === "string") {
      const s = this.sessions.get(sid);
      if (!s || s.scope !== scope) return rpcError(res, 404, -32001, "Session not found");
      s.session.lastUsed = Date.now();
      this.track(s, req, res);
      return s.http.handleRequest(req, res);
    }
    if (req.method !== "POST") {
      // no session yet: there is no stream to open (clients tolerate 405) and nothing to delete
      res.setHeader("allow", "POST");
      return rpcError(res, 405, -32000, "Method not allowed: start a session with an initialize POST");
    }
    let session: Session | null = null;
    const http = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => `${this.opts.sessionIdPrefix ? `${this.opts.sessionIdPrefix}.` : ""}${randomUUID()}`,
      onsessioninitialized: (id) => void this.sessions.set(id, { session: session!, scope, http, open: 0, listened: false }),
    });
    session = new Session(http, () => this.opts.connect(req), this.log, () => {
      const s = http.sessionId ? this.sessions.get(http.sessionId) : undefined;
      if (s) clearTimeout(s.detached);
      if (http.sessionId) this.sessions.delete(http.sessionId);
    });
    await http.start();
    await http.handleRequest(req, res);
    // a first request that was no initialize opened no session
    if (!http.sessionId) await session.close();
  }

  /** Counts the session's open responses; once its client left (streams all closed after a GET), it goes. */
  private track(s: HttpSession, req: IncomingMessage, res: ServerResponse): void {
    if (req.method === "GET") s.listened = true;
    s.open++;
    clearTimeout(s.detached);
    res.once("close", () => {
      s.open--;
      if (s.open > 0 || !s.listened) return;
      s.detached = setTimeout(() => void s.session.close(), this.opts.detachedMs ?? 10_000);
      s.detached.unref();
    });
  }

  /** A WebSocket upgrade: the socket is one client session. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const session: Session = new Session(new WebSocketTransport(ws), () => this.opts.connect(req), this.log, () => this.sockets.delete(session));
      this.sockets.add(session);
    });
  }

  /** Ends every session (and so every upstream: stdio children get EOF, then SIGTERM). */
  async close(): Promise<void> {
    clearInterval(this.reaper);
    await Promise.allSettled([...[...this.sessions.values()].map((s) => s.session.close()), ...[...this.sockets].map((s) => s.close())]);
    this.wss.close();
  }
}

function rpcError(res: ServerResponse, status: number, code: number, message: string): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}
