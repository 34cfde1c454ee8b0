// The front door: every TCP connection to Hangar arrives here first. It reads request heads and
// tracks HTTP/1.1 request framing (Content-Length, chunked, Upgrade) itself. While the requests on
// a connection all go to one preview of an app port that needs no response rewriting, each head is
// checked (route and authorization, per request) and the bytes flow straight to the sandbox's port:
// no HTTP objects per request, which is what makes the preview proxy fast. At the first request
// that needs anything else — another target, the control plane, an error answer, CORS headers, a
// cookie — the connection is handed, at that request boundary, to the HTTP server.
// Besides the server's own port, the front door listens on one host port per preview in port
// mode: every request arriving there is for that preview.

import { type Server, type Socket, connect, createServer } from "node:net";
import type { Server as HttpServer } from "node:http";
import type { Logger } from "@hangar/common";

export { readCookie } from "@hangar/common";

/** The head of a request, as far as routing needs it. */
export interface RequestHead {
  method: string;
  target: string;
  version: string;
  /** Lowercased header names; the first value of each. */
  headers: Map<string, string>;
  /** Bytes of the head (request line and headers, up to and including the blank line). */
  headLength: number;
  /** The preview port the connection arrived on (port mode), if it came through one. */
  previewPort?: number;
}

/** Connections accepted on a preview port, with that port. */
const viaPreviewPort = new WeakMap<object, number>();

/** The preview port a socket was accepted on, if any (the HTTP path reads it off req.socket). */
export function previewPortOf(socket: object | null | undefined): number | undefined {
  return socket ? viaPreviewPort.get(socket) : undefined;
}

/** Where one request goes when it stays on the fast path. */
export interface SpliceRoute {
  /** Requests with the same key may share one upstream connection. */
  key: string;
  host: string;
  port: number;
  /** The request head as it must reach the sandbox (credentials stripped). */
  head: Buffer;
  /** Claims the sandbox while the connection is open (wakes it if needed). */
  acquire(): Promise<{ touch(): void; release(): void }>;
  idleMs: number;
  /** Called once the response to this request has reached the client (or the connection ended). */
  done?: () => void;
  /** Header lines ("name: value\r\n") on the front door's own error answers. */
  errorHeaders?: string;
  /** Rewrites the head of this request's response (held until complete, then forwarded rewritten). */
  responseHead?: (head: string) => string;
}

/** Decides a request: stays on the fast path (a route) or goes to the HTTP server (null). */
export type SpliceDecider = (head: RequestHead, raw: Buffer, current?: string) => Promise<SpliceRoute | null>;

const MAX_HEAD = 32 * 1024;
const HEAD_TIMEOUT_MS = 10_000;

/** Parses an HTTP/1.x request head; null until the blank line arrives, "bad" if it is not HTTP. */
export function parseHead(buf: Buffer): RequestHead | null | "bad" {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return buf.length > MAX_HEAD ? "bad" : null;
  const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
  const m = /^([A-Z]+) (\S+) (HTTP\/1\.[01])$/.exec(lines[0] ?? "");
  if (!m) return "bad";
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i <= 0) return "bad";
    const name = line.slice(0, i).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(i + 1).trim());
  }
  return { method: m[1]!, target: m[2]!, version: m[3]!, headers, headLength: end + 4 };
}

/** Rebuilds a request head with another target, without some headers and with others' values replaced (lowercase names). */
export function rewriteHead(raw: Buffer, head: RequestHead, target: string, drop: ReadonlySet<string>, dropCookie?: string, replace?: Readonly<Record<string, string>>): Buffer {
  const lines = raw.subarray(0, head.headLength - 4).toString("latin1").split("\r\n");
  const out = [`${head.method} ${target} ${head.version}`];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    if (drop.has(name)) continue;
    if (replace?.[name] !== undefined) {
      out.push(`${line.slice(0, colon)}: ${replace[name]}`);
      continue;
    }
    if (dropCookie && name === "cookie") {
      const rest = withoutCookie(line.slice(colon + 1), dropCookie);
      if (rest) out.push(`Cookie: ${rest}`);
      continue;
    }
    out.push(line);
  }
  return Buffer.from(`${out.join("\r\n")}\r\n\r\n`, "latin1");
}

/** A Cookie header's value without the named cookie and its `<name>_…` variants (undefined when nothing is left). */
export function withoutCookie(value: string, name: string): string | undefined {
  const dropped = (n: string) => n === name || n.startsWith(`${name}_`);
  const kept = value
    .split(";")
    .map((c) => c.trim())
    .filter((c) => c && !dropped(c.slice(0, c.indexOf("=") < 0 ? c.length : c.indexOf("=")).trim()));
  return kept.length ? kept.join("; ") : undefined;
}

/** Finds the end of a chunked body across reads; `scan` returns how many bytes belong to it. */
export class ChunkedBody {
  private state: "size" | "data" | "data-crlf" | "trailer" = "size";
  private left = 0;
  private line = "";
  done = false;

  scan(buf: Buffer): number {
    let i = 0;
    while (i < buf.length && !this.done) {
      if (this.state === "data") {
        const n = Math.min(this.left, buf.length - i);
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = "data-crlf";
        continue;
      }
      const c = buf[i++]!;
      if (c !== 0x0a) {
        if (c !== 0x0d) this.line += String.fromCharCode(c);
        if (this.line.length > 4096) throw new Error("chunk line too long");
        continue;
      }
      const line = this.line;
      this.line = "";
      if (this.state === "size") {
        const size = Number.parseInt(line.split(";")[0]!.trim(), 16);
        if (!Number.isFinite(size) || size < 0) throw new Error("bad chunk size");
        if (size === 0) this.state = "trailer";
        else {
          this.left = size;
          this.state = "data";
        }
      } else if (this.state === "data-crlf") this.state = "size";
      else if (line === "") this.done = true; // trailer section ends with an empty line
    }
    return i;
  }
}

/**
 * Tracks where responses end in an upstream's byte stream, so a connection leaves the fast path
 * only after the responses to the requests already forwarded have reached the client (pipelining).
 * A request may ask for its response head rewritten: that head is held until complete.
 */
export class ResponseFraming {
  /** Requests forwarded and not yet answered in full (true for HEAD: no body follows). */
  readonly waiting: boolean[] = [];
  /** Per waiting request, how its response head is rewritten (undefined: forwarded as it comes). */
  private readonly rewrites: Array<((head: string) => string) | undefined> = [];
  private state: "head" | "body" | "chunked" | "tunnel" | "close" = "head";
  private left = 0;
  private chunked: ChunkedBody | null = null;
  /** The start of a head not complete yet, kept to parse it. */
  private pending: Buffer | null = null;
  /** Whether `pending` was already forwarded (false: it is held for a rewrite). */
  private pendingSent = true;

  constructor(private readonly onFinish: () => void = () => {}) {}

  request(isHead: boolean, rewriteHead?: (head: string) => string): void {
    this.waiting.push(isHead);
    this.rewrites.push(rewriteHead);
  }

  /** True between responses (nothing of the next one has arrived). */
  get atBoundary(): boolean {
    return this.state === "head" && this.pending === null;
  }

  /** Responses still owed; -1 once the stream is a tunnel or ends only when the upstream closes. */
  get owed(): number {
    return this.state === "tunnel" || this.state === "close" ? -1 : this.waiting.length;
  }

  /** Follows a chunk of the upstream's bytes; returns what to forward to the client now. */
  scan(chunk: Buffer): Buffer {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    /** Bytes of `buf` before this index were forwarded (or replaced by `out`). */
    let sent = this.pending && this.pendingSent ? this.pending.length : 0;
    let out: Buffer[] | null = null;
    this.pending = null;
    this.pendingSent = true;
    let i = 0;
    const forward = (): Buffer => {
      if (!out) return sent === 0 && buf === chunk ? chunk : buf.subarray(sent);
      out.push(buf.subarray(sent));
      return Buffer.concat(out);
    };
    while (i < buf.length) {
      if (this.state === "tunnel" || this.state === "close") return forward();
      if (this.state === "body") {
        const n = Math.min(this.left, buf.length - i);
        i += n;
        if ((this.left -= n) === 0) this.finish();
        continue;
      }
      if (this.state === "chunked") {
        i += this.chunked!.scan(buf.subarray(i));
        if (this.chunked!.done) this.finish();
        continue;
      }
      const end = buf.indexOf("\r\n\r\n", i);
      const rewrite = this.waiting.length ? this.rewrites[0] : undefined;
      if (end < 0) {
        this.pending = buf.subarray(i);
        if (this.pending.length > MAX_HEAD) throw new Error("response head too large");
        if (!rewrite) return forward();
        // held until the head is complete
        this.pendingSent = false;
        const before = buf.subarray(sent, i);
        sent = buf.length;
        return out ? Buffer.concat([...out, before]) : before;
      }
      const head = buf.toString("latin1", i, end);
      if (rewrite) {
        out ??= [];
        out.push(buf.subarray(sent, i), Buffer.from(`${rewrite(head)}\r\n\r\n`, "latin1"));
        sent = end + 4;
      }
      i = end + 4;
      const status = Number(head.slice(9, 12));
      if (!/^HTTP\/1\.[01] \d{3}/.test(head)) throw new Error("not an HTTP/1.x response");
      if (status === 101) this.state = "tunnel";
      else if (status < 200) continue; // interim response: the final one follows
      else if (this.waiting[0] || status === 204 || status === 304) this.finish();
      else if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) {
        this.state = "chunked";
        this.chunked = new ChunkedBody();
      } else {
        const m = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
        if (!m) this.state = "close";
        else if ((this.left = Number(m[1])) === 0) this.finish();
        else this.state = "body";
      }
    }
    return forward();
  }

  private finish(): void {
    this.waiting.shift();
    this.rewrites.shift();
    this.state = "head";
    this.chunked = null;
    this.onFinish();
  }
}

type Upstream = { key: string; sock: Socket; lease: { touch(): void; release(): void }; errorHeaders: string | undefined };

/** One client connection on the fast path. */
class Connection {
  private buf: Buffer = Buffer.alloc(0);
  private busy = false;
  private mode: "head" | "body" | "chunked" | "tunnel" = "head";
  private bodyLeft = 0;
  private chunked: ChunkedBody | null = null;
  private up: Upstream | null = null;
  private idle: NodeJS.Timeout;
  private done = false;
  /** Left the fast path; waiting for owed responses before the HTTP server takes over. */
  private leaving = false;
  /** Per forwarded request, what to call when its response has gone through (in order). */
  private readonly answered: Array<() => void> = [];
  private readonly framing = new ResponseFraming(() => this.answered.shift()?.());
  private readonly onData = (chunk: Buffer) => this.feed(chunk);
  private readonly previewPort: number | undefined;

  constructor(
    private readonly door: FrontDoor,
    private readonly client: Socket,
  ) {
    this.previewPort = viaPreviewPort.get(client);
    this.idle = setTimeout(() => client.destroy(), HEAD_TIMEOUT_MS);
    client.on("data", this.onData);
    client.on("error", () => this.close());
    client.on("close", () => this.close());
  }

  private feed(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    this.up?.lease.touch();
    if (!this.busy) void this.pump();
  }

  /** Writes to the upstream, pausing the client while the upstream's buffer is full. */
  private send(data: Buffer): void {
    const up = this.up!.sock;
    if (!up.write(data)) {
      this.client.pause();
      up.once("drain", () => this.client.resume());
    }
  }

  private async pump(): Promise<void> {
    this.busy = true;
    try {
      while (this.buf.length && !this.done) {
        if (this.mode === "tunnel") {
          this.send(this.buf);
          this.buf = Buffer.alloc(0);
        } else if (this.mode === "body") {
          const n = Math.min(this.bodyLeft, this.buf.length);
          this.send(this.buf.subarray(0, n));
          this.buf = this.buf.subarray(n);
          if ((this.bodyLeft -= n) === 0) this.mode = "head";
        } else if (this.mode === "chunked") {
          const n = this.chunked!.scan(this.buf);
          this.send(this.buf.subarray(0, n));
          this.buf = this.buf.subarray(n);
          if (this.chunked!.done) this.mode = "head";
        } else if (!(await this.nextRequest())) return;
      }
    } catch (e) {
      this.door.log.debug({ err: e }, "front door: dropping a malformed connection");
      this.client.destroy();
    } finally {
      this.busy = false;
    }
  }

  /** Routes the request whose head starts the buffer; false when the connection left the fast path. */
  private async nextRequest(): Promise<boolean> {
    const head = parseHead(this.buf);
    if (head === null) return false; // wait for the rest of the head
    if (head === "bad") return this.handoff();
    if (this.previewPort !== undefined) head.previewPort = this.previewPort;
    this.client.pause();
    const route = await this.door.decide(head, this.buf, this.up?.key).catch((e: unknown) => {
      this.door.log.warn({ err: e }, "front door: routing failed; the HTTP server takes the request");
      return null;
    });
    if (this.done || !route || (this.up && this.up.key !== route.key)) {
      route?.done?.();
      return this.done ? false : this.handoff();
    }
    if (!this.up)
      await this.openUpstream(route).catch((e: unknown) => {
        route.done?.();
        throw e;
      });
    if (this.done || !this.up) return false;
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.client.destroy(), route.idleMs);
    this.up.lease.touch();
    this.answered.push(route.done ?? (() => {}));
    this.framing.request(head.method === "HEAD", route.responseHead);
    this.buf = this.buf.subarray(head.headLength);
    const te = head.headers.get("transfer-encoding")?.toLowerCase() ?? "";
    let out = route.head;
    if (head.headers.has("upgrade") && /upgrade/i.test(head.headers.get("connection") ?? "")) this.mode = "tunnel";
    else if (te.includes("chunked")) {
      this.mode = "chunked";
      this.chunked = new ChunkedBody();
    } else {
      const len = Number(head.headers.get("content-length") ?? 0);
      if (!Number.isSafeInteger(len) || len < 0) {
        this.send(out);
        return this.handoff();
      }
      // the body bytes already read go with the head, in one write (one segment for a small request)
      const n = Math.min(len, this.buf.length);
      if (n > 0) {
        out = Buffer.concat([out, this.buf.subarray(0, n)]);
        this.buf = this.buf.subarray(n);
      }
      if (len > n) {
        this.mode = "body";
        this.bodyLeft = len - n;
      }
    }
    this.send(out);
    this.client.resume();
    return true;
  }

  private async openUpstream(route: SpliceRoute): Promise<void> {
    const lease = await route.acquire();
    const sock = connect({ host: route.host, port: route.port, noDelay: true });
    await new Promise<void>((resolve) => {
      sock.once("connect", resolve);
      sock.once("error", () => {
        const body = `nothing is listening on port ${route.port} in the sandbox`;
        route.done?.();
        this.client.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n${route.errorHeaders ?? ""}content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
        lease.release();
        this.done = true;
        resolve();
      });
    });
    if (this.done) return;
    this.up = { key: route.key, sock, lease, errorHeaders: route.errorHeaders };
    sock.on("data", (d: Buffer) => {
      lease.touch();
      this.idle.refresh();
      let out: Buffer;
      try {
        out = this.framing.scan(d);
      } catch (e) {
        this.door.log.debug({ err: e }, "front door: upstream sent a malformed response");
        this.close();
        return;
      }
      if (out.length && !this.client.write(out)) {
        sock.pause();
        this.client.once("drain", () => sock.resume());
      }
      if (this.leaving && this.framing.owed === 0) this.leave();
    });
    sock.on("error", () => this.close());
    sock.on("close", () => {
      // the app went away owing an answer it had not begun: the client gets a 502, not a reset
      if (this.framing.owed > 0 && this.framing.atBoundary && !this.client.destroyed) {
        const body = "the app closed the connection without answering";
        this.client.write(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n${this.up?.errorHeaders ?? ""}content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
        this.client.end();
        this.done = true;
        this.dropUpstream();
        return;
      }
      this.close();
    });
  }

  /**
   * Gives the connection, from the current request on, to the HTTP server — once the responses
   * owed for requests already forwarded have reached the client.
   */
  private handoff(): false {
    this.done = true;
    clearTimeout(this.idle);
    this.client.pause();
    const owed = this.up ? this.framing.owed : 0;
    if (owed === 0) this.leave();
    else if (owed > 0) this.leaving = true;
    else this.close(); // a tunnel or a close-delimited response: nothing can follow on this connection
    return false;
  }

  private leave(): void {
    this.leaving = false;
    this.client.off("data", this.onData);
    this.dropUpstream();
    if (this.buf.length) this.client.unshift(this.buf);
    this.buf = Buffer.alloc(0);
    this.door.http.emit("connection", this.client);
    this.client.resume();
  }

  private dropUpstream(): void {
    // requests whose answers will not come through any more
    for (const done of this.answered.splice(0)) done();
    if (!this.up) return;
    const { sock, lease } = this.up;
    this.up = null;
    sock.removeAllListeners("data");
    sock.removeAllListeners("close");
    sock.on("error", () => {});
    sock.destroy();
    lease.release();
  }

  private close(): void {
    if (this.done && !this.up && !this.leaving) return;
    this.leaving = false;
    this.done = true;
    clearTimeout(this.idle);
    this.dropUpstream();
    this.client.destroy();
  }
}

export class FrontDoor {
  readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** Listeners of preview ports (port mode), by port. */
  private readonly portServers = new Map<number, Server>();

  constructor(
    readonly http: HttpServer,
    readonly decide: SpliceDecider,
    readonly log: Logger,
  ) {
    this.server = createServer({ noDelay: true }, (sock) => this.accept(sock));
  }

  private accept(sock: Socket): void {
    this.sockets.add(sock);
    sock.once("close", () => this.sockets.delete(sock));
    new Connection(this, sock);
  }

  /** Starts serving a preview port; rejects when it cannot be bound (EADDRINUSE…). */
  openPort(port: number, host: string): Promise<void> {
    if (this.portServers.has(port)) return Promise.resolve();
    const srv = createServer({ noDelay: true }, (sock) => {
      viaPreviewPort.set(sock, port);
      this.accept(sock);
    });
    this.portServers.set(port, srv);
    return new Promise((resolve, reject) => {
      srv.once("error", (e) => {
        if (this.portServers.get(port) === srv) this.portServers.delete(port);
        reject(e);
      });
      srv.listen(port, host, () => {
        srv.removeAllListeners("error");
        srv.on("error", (e) => this.log.warn({ err: e, port }, "preview port listener failed"));
        resolve();
      });
    });
  }

  /** Stops accepting on a preview port (requests on connections still open find no preview: 404). */
  closePort(port: number): void {
    const srv = this.portServers.get(port);
    if (!srv) return;
    this.portServers.delete(port);
    srv.close();
  }

  /** The preview ports served now. */
  openPorts(): number[] {
    return [...this.portServers.keys()];
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        const a = this.server.address();
        resolve(typeof a === "object" && a ? a.port : port);
      });
    });
  }

  /**
   * Stops accepting; idle keep-alive connections close at once, the rest (open streams, tunnels)
   * get `graceMs` to finish and are then cut.
   */
  close(graceMs = 2_000): Promise<void> {
    for (const port of this.openPorts()) this.closePort(port);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.http.closeIdleConnections();
    const timer = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, graceMs);
    return closed.finally(() => clearTimeout(timer));
  }
}
