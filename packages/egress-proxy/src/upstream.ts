// How the proxy reaches destinations: names resolved with its own resolver (IPv4), every address
// checked against ranges sandboxes may never reach through it (loopback, link-local, the host's own
// addresses, private ranges unless allowed), TLS verified against a configurable trust store,
// pooled HTTP/1.1 (undici) and HTTP/2 (node:http2) clients per sandbox.

import { promises as dnsp } from "node:dns";
import { readFileSync } from "node:fs";
import { type ClientHttp2Session, connect as h2connect } from "node:http2";
import { connect as netConnect, isIP, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { pipeline, type Readable } from "node:stream";
import { connect as tlsConnect, createSecureContext, rootCertificates, type SecureContext, type TLSSocket } from "node:tls";
import { HangarError } from "@hangar/common";
import { Agent } from "undici";
import { ipv4ToInt } from "./policy.js";

export interface UpstreamOptions {
  /** Nameservers ("ip" or "ip:port") the proxy resolves destinations with. Default: the system resolver. */
  dns?: string[];
  /** Extra CA certificates (PEM) trusted for upstream TLS, besides Node's roots and the host's bundle. */
  extraCa?: string[];
  /** Let the proxy reach private ranges (RFC 1918, CGNAT). Default false. */
  allowPrivate?: boolean;
  /** More ranges never reached (e.g. the sandboxes' range). */
  deniedCidrs?: string[];
  /** TCP/TLS connect timeout. Default 10 s. */
  connectTimeoutMs?: number;
}

const ALWAYS_DENIED = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32"];
const PRIVATE = ["10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "192.0.0.0/24", "198.18.0.0/15"];
const HOST_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";
const H2_WINDOW = 16 * 1024 * 1024;

type Range = [number, number];

function range(cidr: string): Range {
  const [ip, b] = cidr.split("/");
  const bits = Number(b ?? 32);
  const base = ipv4ToInt(ip!);
  if (base === null || !(bits >= 0 && bits <= 32)) throw new HangarError("validation_failed", `bad IPv4 range ${cidr}`);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return [(base & mask) >>> 0, ((base & mask) | (~mask >>> 0)) >>> 0];
}

export class Upstream {
  readonly secureContext: SecureContext;
  private readonly resolver: dnsp.Resolver | null;
  private readonly denied: Range[];
  private readonly cache = new Map<string, { ips: string[]; until: number }>();
  private readonly agents = new Map<string, Agent>();
  /** HTTP/2 sessions by "<sandbox> <origin>". */
  private readonly sessions = new Map<string, Promise<ClientHttp2Session>>();
  /** What each origin negotiated. */
  private readonly protocols = new Map<string, "h2" | "h1">();
  private readonly connectTimeoutMs: number;
  private localAddrs = new Set<string>();
  private localAddrsAt = 0;

  constructor(private readonly opts: UpstreamOptions = {}) {
    this.resolver = opts.dns?.length ? new dnsp.Resolver({ timeout: 3000, tries: 2 }) : null;
    this.resolver?.setServers(opts.dns!);
    this.denied = [...ALWAYS_DENIED, ...(opts.allowPrivate ? [] : PRIVATE), ...(opts.deniedCidrs ?? [])].map(range);
    let bundle: string[] = [];
    try {
      bundle = [readFileSync(HOST_BUNDLE, "utf8")];
    } catch {}
    this.secureContext = createSecureContext({ ca: [...rootCertificates, ...bundle, ...(opts.extraCa ?? [])] });
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  }

  /** Why the proxy may not connect to this IPv4 address, or null. */
  deniedAddress(ip: string): string | null {
    const n = ipv4ToInt(ip);
    if (n === null) return "is not an IPv4 address";
    if (this.denied.some(([a, b]) => n >= a && n <= b)) return "is a loopback, link-local, private or otherwise reserved address";
    if (this.hostAddresses().has(ip)) return "is an address of the host";
    return null;
  }

  private hostAddresses(): Set<string> {
    if (Date.now() - this.localAddrsAt > 5_000) {
      this.localAddrs = new Set(Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address)));
      this.localAddrsAt = Date.now();
    }
    return this.localAddrs;
  }

  /** The destination's addresses the proxy may connect to; throws egress_denied or upstream_unreachable. */
  async resolve(host: string): Promise<string[]> {
    let ips: string[];
    if (isIP(host) === 4) ips = [host];
    else if (isIP(host) === 6) throw new HangarError("egress_denied", `${host}: IPv6 destinations are not supported`);
    else {
      const hit = this.cache.get(host);
      if (hit && hit.until > Date.now()) ips = hit.ips;
      else {
        try {
          if (this.resolver) {
            const rr = await this.resolver.resolve4(host, { ttl: true });
            ips = rr.map((r) => r.address);
            this.cache.set(host, { ips, until: Date.now() + Math.min(30, Math.max(1, ...rr.map((r) => r.ttl))) * 1000 });
          } else {
            ips = (await dnsp.lookup(host, { family: 4, all: true })).map((r) => r.address);
            this.cache.set(host, { ips, until: Date.now() + 10_000 });
          }
        } catch (e) {
          throw new HangarError("upstream_unreachable", `${host} could not be resolved (${(e as NodeJS.ErrnoException).code ?? "DNS error"})`);
        }
        if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value!);
      }
    }
    const ok = ips.filter((ip) => this.deniedAddress(ip) === null);
    if (!ips.length) throw new HangarError("upstream_unreachable", `${host} has no IPv4 address`);
    if (!ok.length) throw new HangarError("egress_denied", `${host} resolves to ${ips[0]}, which ${this.deniedAddress(ips[0]!)}; sandboxes may not reach it`);
    return ok;
  }

  /** A TCP connection to an allowed address of host:port. */
  async connectTcp(host: string, port: number): Promise<Socket> {
    const [ip] = await this.resolve(host);
    return new Promise((resolve, reject) => {
      const s = netConnect({ host: ip!, port, noDelay: true });
      const timer = setTimeout(() => s.destroy(new Error("ETIMEDOUT")), this.connectTimeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        s.removeAllListeners("error");
        resolve(s);
      });
      s.once("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new HangarError(e.message === "ETIMEDOUT" ? "upstream_timeout" : "upstream_unreachable", `${host}:${port} is unreachable (${e.code ?? e.message})`));
      });
    });
  }

  /** A verified TLS connection to host:port (WebSocket upgrades through interception). */
  async connectTls(host: string, port: number, alpn: string[]): Promise<TLSSocket> {
    const raw = await this.connectTcp(host, port);
    return new Promise((resolve, reject) => {
      const s = tlsConnect({ socket: raw, servername: isIP(host) ? undefined : host, secureContext: this.secureContext, ALPNProtocols: alpn }, () => {
        s.removeAllListeners("error");
        resolve(s);
      });
      s.once("error", (e: NodeJS.ErrnoException) => {
        raw.destroy();
        reject(new HangarError("upstream_unreachable", `TLS to ${host}:${port} failed (${e.code ?? e.message})`));
      });
    });
  }

  /**
   * Sends a request to an origin for a sandbox, over that sandbox's own pooled connections: HTTP/2
   * (node:http2, one multiplexed session) where the origin negotiates it, else HTTP/1.1 (undici,
   * keep-alive). The protocol an origin speaks is learnt once, with an ALPN probe.
   */
  async request(sandboxId: string, o: UpstreamRequest): Promise<UpstreamResponse> {
    const origin = `${o.scheme}://${o.host.includes(":") ? `[${o.host}]` : o.host}:${o.port}`;
    if (o.scheme === "https") {
      let proto = this.protocols.get(origin);
      if (!proto) {
        proto = await this.probe(o.host, o.port);
        this.protocols.set(origin, proto);
        if (this.protocols.size > 10_000) this.protocols.delete(this.protocols.keys().next().value!);
      }
      if (proto === "h2") return this.requestH2(sandboxId, origin, o);
    }
    const r = await this.h1For(sandboxId).request({
      origin,
      path: o.path,
      method: o.method as "GET",
      headers: o.headers,
      body: o.body,
      signal: o.signal,
    });
    return { statusCode: r.statusCode, headers: r.headers as Record<string, string | string[] | undefined>, body: r.body };
  }

  /** Which protocol an origin picks from ALPN h2 + http/1.1. */
  private async probe(host: string, port: number): Promise<"h2" | "h1"> {
    const s = await this.connectTls(host, port, ["h2", "http/1.1"]);
    const proto = s.alpnProtocol === "h2" ? "h2" : "h1";
    s.destroy();
    return proto;
  }

  private async requestH2(sandboxId: string, origin: string, o: UpstreamRequest): Promise<UpstreamResponse> {
    const key = `${sandboxId} ${origin}`;
    let pending = this.sessions.get(key);
    const alive = pending && (await pending.catch(() => null));
    if (!alive || alive.closed || alive.destroyed) {
      // one session per sandbox and origin, shared by concurrent requests while it connects
      pending = this.connectTls(o.host, o.port, ["h2"]).then((socket) => {
        // large windows: the default 64 KiB one caps a download at a few MB/s per round trip
        const s = h2connect(origin, { createConnection: () => socket, settings: { initialWindowSize: H2_WINDOW } });
        s.once("connect", () => s.setLocalWindowSize(H2_WINDOW));
        const forget = () => {
          if (this.sessions.get(key) === pending) this.sessions.delete(key);
        };
        s.on("close", forget);
        s.on("goaway", forget);
        s.on("error", () => s.destroy());
        s.setTimeout(30_000, () => s.close());
        return s;
      });
      this.sessions.set(key, pending);
      pending.catch(() => this.sessions.get(key) === pending && this.sessions.delete(key));
    }
    const session = await pending!;
    const stream = session.request(
      { ":method": o.method, ":path": o.path, ":scheme": "https", ":authority": o.port === 443 ? o.host : `${o.host}:${o.port}`, ...o.headers },
      { endStream: o.body === null, ...(o.signal ? { signal: o.signal } : {}) },
    );
    if (Buffer.isBuffer(o.body)) stream.end(o.body);
    else if (o.body) pipeline(o.body, stream, () => undefined);
    return new Promise((resolve, reject) => {
      stream.once("response", (h) => {
        stream.off("error", reject);
        const headers: Record<string, string | string[] | undefined> = {};
        for (const [k, v] of Object.entries(h)) if (!k.startsWith(":")) headers[k] = v as string | string[];
        resolve({ statusCode: Number(h[":status"]), headers, body: stream });
      });
      stream.once("error", reject);
    });
  }

  /** The pooled HTTP/1.1 client of one sandbox. */
  private h1For(sandboxId: string): Agent {
    let a = this.agents.get(sandboxId);
    if (!a) {
      a = new Agent({
        keepAliveTimeout: 30_000,
        connectTimeout: this.connectTimeoutMs,
        headersTimeout: 0,
        bodyTimeout: 0,
        connect: {
          secureContext: this.secureContext,
          lookup: (hostname: string, options: { all?: boolean }, cb: (err: Error | null, address?: unknown, family?: number) => void) => {
            this.resolve(hostname).then(
              (ips) => (options.all ? cb(null, ips.map((address) => ({ address, family: 4 }))) : cb(null, ips[0], 4)),
              (e: Error) => cb(e),
            );
          },
        } as object,
      });
      this.agents.set(sandboxId, a);
    }
    return a;
  }

  /** Closes a sandbox's pooled connections. */
  async drop(sandboxId: string): Promise<void> {
    const a = this.agents.get(sandboxId);
    this.agents.delete(sandboxId);
    for (const [k, s] of this.sessions) {
      if (k.startsWith(`${sandboxId} `)) {
        this.sessions.delete(k);
        void s.then((x) => x.destroy(), () => undefined);
      }
    }
    await a?.destroy().catch(() => undefined);
  }

  async close(): Promise<void> {
    const ids = new Set([...this.agents.keys(), ...[...this.sessions.keys()].map((k) => k.split(" ")[0]!)]);
    await Promise.all([...ids].map((id) => this.drop(id)));
  }
}

export interface UpstreamRequest {
  scheme: "http" | "https";
  host: string;
  port: number;
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body: Readable | Buffer | null;
  signal?: AbortSignal;
}

export interface UpstreamResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}
