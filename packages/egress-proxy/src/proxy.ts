// The node's egress proxy. One TCP port serves every sandbox of the node; a connection is
// attributed to a sandbox by its source address (each sandbox has its own /30, rp_filter stops
// spoofing) and served under that sandbox's policy:
//   - HTTP proxy requests (HTTP_PROXY): `CONNECT host:port` and absolute-form `GET http://…`;
//   - transparently redirected traffic (nftables sends a policed sandbox's TCP 80/443 here): TLS is
//     attributed by its SNI, plain HTTP by its Host header.
// TLS to a destination some routing rule applies to is intercepted with a certificate minted from
// the Hangar CA (HTTP/1.1 or HTTP/2 to the sandbox, either to the destination); the request gets
// the rules' headers, body fields and secrets, and secret values are redacted from the response.
// Other TLS is tunnelled untouched. Forbidden destinations get a 403 that says why. The same port
// number over UDP (and TCP connections that start like DNS) answers the DNS of sandboxes under a
// domain policy: names outside it get NXDOMAIN.

import { randomUUID } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { createServer as createH2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Stream } from "node:http2";
import { createServer as createNetServer, isIP, type Server as NetServer, type Socket } from "node:net";
import { type Duplex, pipeline, type Readable } from "node:stream";
import { TLSSocket } from "node:tls";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { HangarError, type Logger, silentLogger } from "@hangar/common";
import type { CertificateAuthority } from "./ca.js";
import {
  bodyKind,
  forwardableHeaders,
  type HeaderMap,
  injectHeaders,
  injectQuery,
  needsBodyRewrite,
  redactionNeedles,
  Redactor,
  redactString,
  responseHeaders,
  rewriteBody,
  scrub,
} from "./inject.js";
import { type Decision, EgressPolicy, normalizeHost } from "./policy.js";
import { parseClientHello } from "./sni.js";
import { DnsFilter } from "./dns.js";
import { Upstream, type UpstreamOptions, type UpstreamResponse } from "./upstream.js";

export interface EgressProxyOptions extends UpstreamOptions {
  ca: CertificateAuthority;
  logger?: Logger;
  /** Largest request body buffered to merge fields or resolve secrets into. Default 16 MiB. */
  maxBodyBytes?: number;
}

/** Serves the requests sandboxes send to the platform endpoint (Hangar's API and run plane). */
export interface PlatformHandler {
  request(req: IncomingMessage, res: ServerResponse, sandboxId: string): void;
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer, sandboxId: string): void;
}

/** An open connection the proxy relays for a sandbox; re-checked when its policy changes. */
interface Relay {
  host: string;
  intercepted: boolean;
  close(): void;
}

interface SandboxEntry {
  id: string;
  address: string;
  policy: EgressPolicy | null;
  relays: Set<Relay>;
}

interface Target {
  scheme: "http" | "https";
  host: string;
  port: number;
}

export interface EgressStats {
  requests: number;
  intercepted: number;
  tunnels: number;
  denied: number;
}

/** Idle keep-alive of the sandbox's HTTP/1.1 connections (longer than clients' pools keep them). */
const KEEP_ALIVE_MS = 65_000;

const ALLOW_ALL: Decision = { allowed: true, rules: [], bypass: false, intercept: false };
const DECODERS: Record<string, () => Duplex> = { gzip: createGunzip, "x-gzip": createGunzip, deflate: createInflate, br: createBrotliDecompress };

/** Strips the IPv4-mapped prefix of a socket address. */
function plainAddress(a: string | undefined): string {
  return (a ?? "").replace(/^::ffff:/, "");
}

/** Parses "host:port" / "[v6]:port" (CONNECT targets, Host headers). */
export function parseAuthority(value: string, defaultPort: number): { host: string; port: number } | null {
  const m = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(value.trim());
  if (!m) return null;
  const port = m[2] ? Number(m[2]) : defaultPort;
  if (!(port >= 1 && port <= 65535)) return null;
  const host = normalizeHost(m[1]!);
  return host ? { host, port } : null;
}

export class EgressProxy {
  readonly upstream: Upstream;
  readonly stats: EgressStats = { requests: 0, intercepted: 0, tunnels: 0, denied: 0 };
  private readonly ca: CertificateAuthority;
  private readonly log: Logger;
  private readonly maxBodyBytes: number;
  private readonly byId = new Map<string, SandboxEntry>();
  private readonly byAddress = new Map<string, SandboxEntry>();
  private readonly server: NetServer;
  /** Parses plain HTTP from sandboxes: proxy requests, CONNECT, transparent port-80 traffic. */
  private readonly plain: HttpServer;
  private readonly sockets = new Set<Socket>();
  private readonly dns: DnsFilter;
  private udp: UdpSocket | null = null;
  private platform: PlatformHandler | null = null;

  constructor(opts: EgressProxyOptions) {
    this.ca = opts.ca;
    this.log = opts.logger ?? silentLogger;
    this.maxBodyBytes = opts.maxBodyBytes ?? 16 * 1024 * 1024;
    this.upstream = new Upstream(opts);
    this.server = createNetServer({ noDelay: true }, (s) => this.onConnection(s));
    this.plain = createHttpServer({ requestTimeout: 0, keepAliveTimeout: KEEP_ALIVE_MS }, (req, res) => this.onPlainRequest(req, res));
    this.plain.on("connect", (req: IncomingMessage, socket: Socket, head: Buffer) => this.onConnect(req, socket, head));
    this.plain.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => this.onPlainUpgrade(req, socket, head));
    this.plain.on("clientError", (_e, socket: Socket) => socket.destroy());
    this.dns = new DnsFilter((address, name) => {
      const sb = this.byAddress.get(address);
      return sb ? this.decide(sb, name).allowed : null;
    }, opts.dns);
  }

  /**
   * Requests a sandbox addresses to this listener itself (origin-form, Host = its gateway and this
   * port) go to `handler`: the platform endpoint through which workloads reach Hangar's API.
   */
  setPlatform(handler: PlatformHandler): void {
    this.platform = handler;
  }

  /** True for an origin-form request whose Host names this listener's port (not a destination). */
  private forPlatform(req: IncomingMessage): boolean {
    if (!this.platform || !(req.url ?? "").startsWith("/")) return false;
    const a = parseAuthority(String(req.headers.host ?? ""), 80);
    return !!a && a.port === this.port && isIP(a.host) !== 0;
  }

  // ---- sandboxes

  /**
   * Serves the sandbox at `address` under the policy of its `spec.network` (secrets revealed;
   * none: every destination, nothing intercepted). Relays the new policy no longer allows, or now
   * wants intercepted, are closed.
   */
  setSandbox(id: string, address: string, network: unknown): void {
    const policy = EgressPolicy.from(network);
    const prev = this.byId.get(id);
    if (prev && prev.address !== address) this.byAddress.delete(prev.address);
    // the entry is updated in place: connections already open apply the new policy (e.g. new secrets) to their next request
    const entry: SandboxEntry = prev ?? { id, address, policy, relays: new Set() };
    entry.address = address;
    entry.policy = policy;
    this.byId.set(id, entry);
    if (address) this.byAddress.set(address, entry);
    for (const r of [...entry.relays]) {
      const d = this.decide(entry, r.host);
      if (!d.allowed || (!r.intercepted && d.intercept)) r.close();
    }
  }

  /** Forgets a sandbox and closes everything relayed for it. */
  removeSandbox(id: string): void {
    const e = this.byId.get(id);
    if (!e) return;
    this.byId.delete(id);
    if (this.byAddress.get(e.address) === e) this.byAddress.delete(e.address);
    for (const r of [...e.relays]) r.close();
    void this.upstream.drop(id);
  }

  /** The sandbox the proxy attributes an address to (tests). */
  sandboxAt(address: string): string | null {
    return this.byAddress.get(address)?.id ?? null;
  }

  private decide(sb: SandboxEntry, host: string): Decision {
    return sb.policy ? sb.policy.decide(host) : ALLOW_ALL;
  }

  // ---- listening

  /** Listens on TCP `port` (proxy, transparent HTTP(S), DNS over TCP) and UDP on the same number (DNS). */
  async listen(port = 0, host = "0.0.0.0"): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const udp = createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(this.port, host, () => {
        udp.off("error", reject);
        resolve();
      });
    }).catch((e: Error) => {
      this.server.close();
      throw e;
    });
    udp.on("error", (e) => this.log.warn({ err: e }, "egress DNS socket error"));
    this.dns.serveUdp(udp, plainAddress);
    this.udp = udp;
    return this.port;
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === "object" && a ? a.port : 0;
  }

  async close(): Promise<void> {
    // open connections (sandboxes' keep-alive ones) are cut first: close() waits for them
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.udp?.close();
    for (const s of this.sockets) s.destroy();
    for (const e of this.byId.values()) for (const r of e.relays) r.close();
    await closed;
    await this.upstream.close();
  }

  private onConnection(sock: Socket): void {
    const sb = this.byAddress.get(plainAddress(sock.remoteAddress));
    if (!sb) {
      this.log.warn({ from: sock.remoteAddress }, "egress proxy: connection from an address that is no sandbox");
      sock.destroy();
      return;
    }
    this.sockets.add(sock);
    sock.on("close", () => this.sockets.delete(sock));
    sock.on("error", () => sock.destroy());
    // a connection that says nothing is not kept
    sock.setTimeout(30_000, () => sock.destroy());
    sock.once("data", (first: Buffer) => {
      sock.setTimeout(0);
      sock.pause();
      if (first[0] === 0x16) this.onTransparentTls(sock, sb, first);
      else if (first[0]! < 0x16) {
        // a 2-byte length first: DNS over TCP (redirected port 53)
        sock.unshift(first);
        this.dns.serveTcp(sock, sb.address);
      } else {
        sock.unshift(first);
        this.plain.emit("connection", sock);
        sock.resume();
      }
    });
  }

  // ---- plain HTTP: proxy requests and transparent port 80

  private sandboxOf(socket: Socket): SandboxEntry | null {
    return this.byAddress.get(plainAddress(socket.remoteAddress)) ?? null;
  }

  /** Where a plain request goes: its absolute URL (proxy request) or its Host header (transparent). */
  private plainTarget(req: IncomingMessage): { target: Target; path: string } | null {
    const url = req.url ?? "/";
    if (/^https?:\/\//i.test(url)) {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        return null;
      }
      const scheme = u.protocol === "https:" ? "https" : "http";
      const port = u.port ? Number(u.port) : scheme === "https" ? 443 : 80;
      return { target: { scheme, host: normalizeHost(u.hostname), port }, path: `${u.pathname}${u.search}` };
    }
    const a = parseAuthority(String(req.headers.host ?? ""), 80);
    return a && url.startsWith("/") ? { target: { scheme: "http", ...a }, path: url } : null;
  }

  private onPlainRequest(req: IncomingMessage, res: ServerResponse): void {
    const sb = this.sandboxOf(req.socket);
    if (sb && this.forPlatform(req)) return this.platform!.request(req, res, sb.id);
    const t = this.plainTarget(req);
    if (!sb || !t) {
      this.sendError(res, new HangarError("bad_request", "the request names no destination (use an absolute URL or a Host header)"), randomUUID());
      return;
    }
    void this.forward(sb, t.target, t.path, req, res);
  }

  private onPlainUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const sb = this.sandboxOf(socket);
    if (sb && this.forPlatform(req)) return this.platform!.upgrade(req, socket, head, sb.id);
    const t = this.plainTarget(req);
    if (!sb || !t) {
      socket.destroy();
      return;
    }
    void this.forwardUpgrade(sb, t.target, t.path, req, socket, head);
  }

  // ---- CONNECT

  private onConnect(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const sb = this.sandboxOf(socket);
    const a = parseAuthority(req.url ?? "", 443);
    const id = randomUUID();
    if (!sb || !a) {
      this.rawError(socket, new HangarError("bad_request", `bad CONNECT target ${JSON.stringify(req.url)}`), id);
      return;
    }
    const d = this.decide(sb, a.host);
    if (!d.allowed) {
      this.stats.denied++;
      this.log.info({ sandbox: sb.id, host: a.host, port: a.port, reason: d.deniedBy }, "egress denied");
      this.rawError(socket, this.denial(a.host, d), id);
      return;
    }
    if (d.intercept) {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      // bytes already read go back in front; TLSSocket takes a socket's buffered data first
      if (head.length) socket.unshift(head);
      this.intercept(socket, sb, a.host, a.port, null);
    } else {
      void this.tunnel(socket, sb, a.host, a.port, { reply: true, head, id });
    }
  }

  // ---- transparent TLS (port 443 redirected by nftables)

  private onTransparentTls(sock: Socket, sb: SandboxEntry, first: Buffer): void {
    let buf = first;
    const step = () => {
      const hello = parseClientHello(buf);
      if (hello.kind === "incomplete") {
        sock.once("data", (more: Buffer) => {
          buf = Buffer.concat([buf, more]);
          step();
        });
        sock.resume();
        return;
      }
      sock.pause();
      sock.removeAllListeners("data");
      if (hello.kind === "invalid" || !hello.serverName) {
        this.stats.denied++;
        this.log.info({ sandbox: sb.id }, "egress denied: TLS without a server name");
        sock.destroy();
        return;
      }
      const host = normalizeHost(hello.serverName);
      const d = this.decide(sb, host);
      if (!d.allowed) {
        this.stats.denied++;
        this.log.info({ sandbox: sb.id, host, reason: d.deniedBy }, "egress denied");
        // answer over TLS so the client sees why, not a reset
        sock.unshift(buf);
        this.intercept(sock, sb, host, 443, this.denial(host, d));
      } else if (d.intercept) {
        sock.unshift(buf);
        this.intercept(sock, sb, host, 443, null);
      } else void this.tunnel(sock, sb, host, 443, { reply: false, head: buf, id: randomUUID() });
    };
    step();
  }

  // ---- tunnels

  private async tunnel(client: Socket, sb: SandboxEntry, host: string, port: number, o: { reply: boolean; head: Buffer; id: string }): Promise<void> {
    let up: Socket;
    try {
      up = await this.upstream.connectTcp(host, port);
    } catch (e) {
      this.log.info({ sandbox: sb.id, host, port, err: (e as Error).message }, "egress tunnel failed");
      if (o.reply) this.rawError(client, e, o.id);
      else client.destroy();
      return;
    }
    if (client.destroyed) {
      up.destroy();
      return;
    }
    this.stats.tunnels++;
    const relay: Relay = {
      host,
      intercepted: false,
      close: () => {
        client.destroy();
        up.destroy();
      },
    };
    sb.relays.add(relay);
    const done = () => {
      sb.relays.delete(relay);
      relay.close();
    };
    client.on("close", done);
    up.on("close", done);
    up.on("error", () => up.destroy());
    if (o.reply) client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (o.head.length) up.write(o.head);
    client.pipe(up);
    up.pipe(client);
    client.resume();
  }

  // ---- interception

  /**
   * Terminates the sandbox's TLS with a certificate for `host` and serves its requests over
   * HTTP/1.1 or HTTP/2 (ALPN). With `deny`, every request gets that error.
   */
  private intercept(client: Socket, sb: SandboxEntry, host: string, port: number, deny: HangarError | null): void {
    let tls: TLSSocket;
    try {
      tls = new TLSSocket(client, { isServer: true, secureContext: this.ca.contextFor(host), ALPNProtocols: ["h2", "http/1.1"] });
    } catch (e) {
      this.log.warn({ err: e, host }, "egress interception failed");
      client.destroy();
      return;
    }
    this.stats.intercepted++;
    const relay: Relay = { host, intercepted: true, close: () => tls.destroy() };
    if (!deny) sb.relays.add(relay);
    tls.on("close", () => {
      sb.relays.delete(relay);
      client.destroy();
    });
    tls.on("error", () => tls.destroy());
    tls.once("secure", () => {
      const target: Target = { scheme: "https", host, port };
      const handler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
        if (deny) this.sendError(res, deny, randomUUID());
        else void this.forward(sb, target, req.url ?? "/", req, res);
      };
      // what tls.Server does before handing a socket on; http2 waits for it otherwise
      (tls as unknown as { secureConnecting: boolean }).secureConnecting = false;
      if (tls.alpnProtocol === "h2") {
        const h2 = createH2Server({}, handler);
        h2.on("sessionError", () => tls.destroy());
        h2.emit("connection", tls);
      } else {
        const h1 = createHttpServer({ requestTimeout: 0, keepAliveTimeout: KEEP_ALIVE_MS }, handler);
        h1.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
          if (deny) this.rawError(socket, deny, randomUUID());
          else void this.forwardUpgrade(sb, target, req.url ?? "/", req, socket, head);
        });
        h1.on("clientError", (_e, s: Socket) => s.destroy());
        h1.emit("connection", tls);
      }
    });
  }

  // ---- requests

  private denial(host: string, d: Decision): HangarError {
    const why = d.deniedBy === "forbiddenDomains" ? "it matches forbiddenDomains" : "it is not in allowedDomains";
    return new HangarError("egress_denied", `${host} is not allowed by this sandbox's network policy: ${why}`);
  }

  /** Sends one request on to its destination under the sandbox's policy and streams the answer back. */
  private async forward(sb: SandboxEntry, target: Target, path: string, req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): Promise<void> {
    const t0 = performance.now();
    this.stats.requests++;
    const sent = req.headers["x-blaxel-request-id"];
    const requestId = (Array.isArray(sent) ? sent[0] : sent) || randomUUID();
    const d = this.decide(sb, target.host);
    if (!d.allowed) {
      this.stats.denied++;
      this.log.info({ sandbox: sb.id, host: target.host, reason: d.deniedBy }, "egress denied");
      this.sendError(res, this.denial(target.host, d), requestId);
      return;
    }
    const failed = d.rules.find((r) => r.fail);
    if (failed) {
      this.sendError(res, new HangarError("connection_failed", failed.fail!), requestId);
      return;
    }
    const method = (req.method ?? "GET").toUpperCase();
    const headers = forwardableHeaders(req.headers as Record<string, string | string[] | undefined>);
    headers["x-blaxel-request-id"] = requestId;
    injectHeaders(headers, d.rules);
    const needles = needlesOf(d);
    if (needles.length) {
      // only encodings the proxy can decode, so the response can be checked for secrets
      const accepted = String(headers["accept-encoding"] ?? "")
        .split(",")
        .map((s) => s.trim().split(";")[0]!.toLowerCase())
        .filter((e) => e === "identity" || e in DECODERS);
      if (headers["accept-encoding"] !== undefined) headers["accept-encoding"] = accepted.length ? accepted.join(", ") : "identity";
    }

    const h2stream = (req as Http2ServerRequest).stream as ServerHttp2Stream | undefined;
    const hasBody = h2stream ? !h2stream.endAfterHeaders : req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
    let body: Readable | Buffer | null = hasBody ? (req as Readable) : null;
    if (needsBodyRewrite(method, d.rules)) {
      const kind = bodyKind(headers, hasBody);
      if (kind !== null) {
        let buf: Buffer;
        try {
          buf = hasBody ? await readAll(req as Readable, this.maxBodyBytes) : Buffer.alloc(0);
        } catch (e) {
          this.sendError(res, e, requestId);
          return;
        }
        const r = rewriteBody(kind, buf, d.rules);
        body = r ? r.body : buf;
        if (r?.contentType) headers["content-type"] = r.contentType;
        if (body.length || hasBody || r) headers["content-length"] = String(body.length);
      }
    }
    if (body === null) delete headers["content-length"];

    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    let up: UpstreamResponse;
    try {
      await this.upstream.resolve(target.host);
      up = await this.upstream.request(sb.id, { ...target, path: injectQuery(path || "/", d.rules), method, headers: headers as Record<string, string | string[]>, body, signal: abort.signal });
    } catch (e) {
      this.log.info({ sandbox: sb.id, host: target.host, err: (e as Error).message, requestId }, "egress request failed");
      this.sendError(res, e instanceof HangarError ? e : new HangarError("upstream_unreachable", `${target.host}:${target.port} could not be reached (${errCode(e)})`), requestId);
      return;
    }

    const rh = responseHeaders(up.headers as Record<string, string | string[] | undefined>);
    rh["x-blaxel-request-id"] = requestId;
    let stream: Readable = up.body;
    if (needles.length) {
      for (const [k, v] of Object.entries(rh)) rh[k] = Array.isArray(v) ? v.map((x) => redactString(x, needles)) : redactString(v, needles);
      const enc = String(up.headers["content-encoding"] ?? "identity").toLowerCase();
      if (enc !== "identity") {
        const dec = DECODERS[enc];
        if (!dec) {
          up.body.destroy();
          this.sendError(res, new HangarError("upstream_unreachable", `${target.host} answered with content-encoding ${enc}, which the proxy cannot check for secrets`), requestId);
          return;
        }
        stream = stream.pipe(dec()) as Readable;
        delete rh["content-encoding"];
      }
      const length = Number(up.headers["content-length"] ?? -1);
      if (method !== "HEAD" && stream === up.body && length >= 0 && length <= SMALL_BODY) {
        // a small body of known length: checked whole, sent with its length
        let buf: Buffer;
        try {
          buf = scrub(await readAll(up.body, SMALL_BODY), needles);
        } catch (e) {
          this.sendError(res, e, requestId);
          return;
        }
        rh["content-length"] = String(buf.length);
        res.writeHead(up.statusCode, rh as Record<string, string | string[]>);
        res.end(buf);
        return;
      }
      if (method !== "HEAD") {
        stream = stream.pipe(new Redactor(needles));
        delete rh["content-length"];
      }
    }
    try {
      res.writeHead(up.statusCode, rh as Record<string, string | string[]>);
    } catch (e) {
      up.body.destroy();
      this.sendError(res, new HangarError("upstream_unreachable", `${target.host} sent headers the proxy cannot pass on (${(e as Error).message})`), requestId);
      return;
    }
    pipeline(stream, res as NodeJS.WritableStream, (err) => {
      if (err) up.body.destroy();
      this.log.debug({ sandbox: sb.id, method, host: target.host, status: up.statusCode, ms: Math.round(performance.now() - t0), requestId, injected: d.rules.length > 0 }, "egress request");
    });
  }

  /** WebSocket and other HTTP/1.1 upgrades: the handshake gets the rules' headers, then bytes flow. */
  private async forwardUpgrade(sb: SandboxEntry, target: Target, path: string, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const requestId = randomUUID();
    const d = this.decide(sb, target.host);
    if (!d.allowed) {
      this.stats.denied++;
      this.rawError(socket, this.denial(target.host, d), requestId);
      return;
    }
    const headers = forwardableHeaders(req.headers as Record<string, string | string[] | undefined>);
    injectHeaders(headers, d.rules);
    headers["x-blaxel-request-id"] = requestId;
    let up: Socket;
    try {
      up = target.scheme === "https" ? await this.upstream.connectTls(target.host, target.port, ["http/1.1"]) : await this.upstream.connectTcp(target.host, target.port);
    } catch (e) {
      this.rawError(socket, e, requestId);
      return;
    }
    const lines = [`${req.method} ${injectQuery(path, d.rules)} HTTP/1.1`, `host: ${target.port === (target.scheme === "https" ? 443 : 80) ? target.host : `${target.host}:${target.port}`}`, "connection: upgrade", `upgrade: ${req.headers.upgrade ?? "websocket"}`];
    for (const [k, v] of Object.entries(headers)) for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${x}`);
    up.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (head.length) up.write(head);
    const relay: Relay = { host: target.host, intercepted: target.scheme === "https", close: () => (socket.destroy(), up.destroy()) };
    sb.relays.add(relay);
    const done = () => {
      sb.relays.delete(relay);
      relay.close();
    };
    socket.on("close", done);
    up.on("close", done);
    socket.on("error", done);
    up.on("error", done);
    const needles = needlesOf(d);
    (needles.length ? up.pipe(new Redactor(needles)) : up).pipe(socket);
    socket.pipe(up);
  }

  // ---- errors

  private errorOf(e: unknown): HangarError {
    return e instanceof HangarError ? e : new HangarError("internal", "the egress proxy failed");
  }

  /** An error as the sandbox sees it: text that names the destination and the reason, never a secret. */
  private sendError(res: ServerResponse | Http2ServerResponse, e: unknown, requestId: string): void {
    const err = this.errorOf(e);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = `Hangar egress proxy: ${err.message}\n`;
    res.writeHead(err.status, {
      "content-type": "text/plain; charset=utf-8",
      "content-length": String(Buffer.byteLength(body)),
      "x-hangar-egress-error": err.code,
      "x-blaxel-request-id": requestId,
    });
    res.end(body);
  }

  /** An HTTP/1.1 error written on a raw socket (CONNECT, upgrades), then closed. */
  private rawError(socket: Socket, e: unknown, requestId: string): void {
    const err = this.errorOf(e);
    const body = `Hangar egress proxy: ${err.message}\n`;
    const reason = err.code === "egress_denied" ? "Forbidden by the sandbox's network policy" : err.status === 504 ? "Gateway Timeout" : err.status === 400 ? "Bad Request" : "Bad Gateway";
    socket.end(
      `HTTP/1.1 ${err.status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-hangar-egress-error: ${err.code}\r\nx-blaxel-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
}

/** Responses up to this size are redacted whole (kept streaming above it). */
const SMALL_BODY = 1024 * 1024;

/** Secret values a decision's responses are redacted of; cached with the decision. */
const needleCache = new WeakMap<Decision, Buffer[]>();
function needlesOf(d: Decision): Buffer[] {
  let n = needleCache.get(d);
  if (!n) {
    n = redactionNeedles(d.rules.flatMap((r) => [...r.secrets.values()]));
    needleCache.set(d, n);
  }
  return n;
}

function errCode(e: unknown): string {
  const x = e as { code?: string; cause?: { code?: string } };
  return x.cause?.code ?? x.code ?? "error";
}

/** Reads a whole body, up to `limit` bytes (413 beyond). */
function readAll(stream: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    stream.on("data", (d: Buffer) => {
      size += d.length;
      if (size > limit) {
        stream.destroy();
        reject(new HangarError("payload_too_large", `the request body is over ${limit} bytes, too large to inject into`));
        return;
      }
      parts.push(d);
    });
    stream.on("end", () => resolve(Buffer.concat(parts)));
    stream.on("error", reject);
  });
}
