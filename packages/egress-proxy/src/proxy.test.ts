// The proxy against a stand-in internet (a network namespace this test makes, with its own CA and
// DNS). Clients run on the host and connect from 127.0.0.1, which the test registers as a sandbox.

import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import * as dnsPacket from "dns-packet";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CertificateAuthority } from "./ca.js";
import { EgressProxy } from "./proxy.js";
import { DOCS_EXAMPLE } from "./testing/fixtures.js";
import { FakeInternet } from "./testing/internet.js";

const root = process.getuid?.() === 0 && process.platform === "linux";
const STRIPE_KEY = "sk-live-abc123...";
const OPENAI_KEY = "sk-proj-xyz789...";

let net: FakeInternet;
let proxy: EgressProxy;
let ca: CertificateAuthority;
let port: number;
let dir: string;
let hangarCa: string;
let testCa: string;

function curl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["-sS", "-m", "10", "-x", `http://127.0.0.1:${port}`, "--cacert", hangarCa, ...args], { maxBuffer: 64 << 20 }, (e, stdout, stderr) =>
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A raw CONNECT; resolves with the proxy's status line and the socket. */
function connect(target: string): Promise<{ status: number; head: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, "127.0.0.1", () => s.write(`CONNECT ${target} HTTP/1.1\r\nhost: ${target}\r\n\r\n`));
    let buf = "";
    s.on("data", function onData(d: Buffer) {
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      s.off("data", onData);
      const status = Number(buf.split(" ")[1]);
      if (status !== 200) {
        s.on("data", (x: Buffer) => (buf += x.toString("latin1")));
        s.on("close", () => resolve({ status, head: buf, socket: s }));
      } else resolve({ status, head: buf, socket: s });
    });
    s.on("error", reject);
  });
}

/** An HTTPS request through a CONNECT tunnel (Node's https over the tunnel). */
async function viaTunnel(host: string, path: string, o: { method?: string; headers?: Record<string, string>; body?: Buffer | string; ca?: string } = {}): Promise<IncomingMessage & { tls: TLSSocket }> {
  const { status, socket } = await connect(`${host}:443`);
  if (status !== 200) throw new Error(`CONNECT ${host} → ${status}`);
  const tls = tlsConnect({ socket, servername: host, ca: o.ca ?? ca.certPem, ALPNProtocols: ["http/1.1"] });
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host, path, method: o.method ?? "GET", headers: o.headers, createConnection: () => tls }, (res) => resolve(Object.assign(res, { tls })));
    req.on("error", reject);
    req.end(o.body);
  });
}

async function bodyOf(res: IncomingMessage): Promise<string> {
  let b = "";
  for await (const d of res) b += d;
  return b;
}

async function lastRequest(): Promise<Awaited<ReturnType<FakeInternet["requests"]>>[number]> {
  const all = await net.requests();
  return all[all.length - 1]!;
}

describe.skipIf(!root)("egress proxy", () => {
  beforeAll(async () => {
    net = await FakeInternet.start({
      name: "egpt",
      subnet: "203.0.113.0/25",
      hosts: [
        { names: ["api.stripe.com"] },
        { names: ["api.openai.com"], h1only: true },
        { names: ["httpbin.org"] },
        { names: ["evil.com"] },
        { names: ["s3.amazonaws.com", "*.s3.amazonaws.com"] },
        { names: ["secrets.test"] },
      ],
    });
    dir = mkdtempSync(join(tmpdir(), "hangar-egress-test-"));
    ca = CertificateAuthority.create();
    hangarCa = join(dir, "hangar-ca.pem");
    testCa = join(dir, "test-ca.pem");
    writeFileSync(hangarCa, ca.certPem);
    writeFileSync(testCa, net.ca.certPem);
    proxy = new EgressProxy({ ca, dns: [net.dns], extraCa: [net.ca.certPem] });
    port = await proxy.listen(0, "127.0.0.1");
  });

  afterAll(async () => {
    await proxy?.close();
    await net?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    proxy.setSandbox("sb1", "127.0.0.1", DOCS_EXAMPLE);
    await net.clearRequests();
  });

  it("injects the docs' headers and body into api.stripe.com over HTTP/2, and the sandbox never sees the key", async () => {
    const r = await curl("--http2", "-i", "https://api.stripe.com/v1/charges", "-H", "content-type: application/json", "-d", '{"amount":100}');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^HTTP\/2 200/m);
    expect(r.stdout).not.toContain(STRIPE_KEY);
    expect(r.stdout).toContain("[REDACTED]");
    expect(r.stdout).toMatch(/x-blaxel-request-id: [0-9a-f-]{36}/);
    const got = await lastRequest();
    expect(got).toMatchObject({ host: "api.stripe.com", httpVersion: "2.0", method: "POST" });
    expect(got.headers).toMatchObject({ authorization: `Bearer ${STRIPE_KEY}`, "stripe-version": "2024-12-18.acacia" });
    expect(got.headers["x-blaxel-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(got.body)).toEqual({ amount: 100, api_key: STRIPE_KEY });
  });

  it("keeps the headers and body fields the sandbox sent, and merges into form bodies", async () => {
    await curl("https://api.stripe.com/v1/charges", "-H", "Stripe-Version: mine", "-H", "content-type: application/json", "-d", '{"api_key":"own","a":1}');
    let got = await lastRequest();
    expect(got.headers["stripe-version"]).toBe("mine");
    expect(JSON.parse(got.body)).toEqual({ api_key: "own", a: 1 });
    await curl("https://api.stripe.com/v1/charges", "-d", "amount=100&currency=usd");
    got = await lastRequest();
    expect(Object.fromEntries(new URLSearchParams(got.body))).toEqual({ amount: "100", currency: "usd", api_key: STRIPE_KEY });
    // GET gets headers, no body
    await curl("https://api.stripe.com/v1/charges");
    got = await lastRequest();
    expect(got.body).toBe("");
    expect(got.headers.authorization).toBe(`Bearer ${STRIPE_KEY}`);
  });

  it("scopes secrets per rule, resolves placeholders the sandbox sends and speaks HTTP/1.1 to an HTTP/1.1 upstream", async () => {
    const r = await curl("--http2", "https://api.openai.com/v1/models", "-H", "x-try: {{SECRET:stripe-key}}", "-H", "x-mine: {{SECRET:openai-key}}");
    expect(r.code).toBe(0);
    const got = await lastRequest();
    expect(got).toMatchObject({ host: "api.openai.com", httpVersion: "1.1" });
    expect(got.headers).toMatchObject({ authorization: `Bearer ${OPENAI_KEY}`, "openai-organization": "org-abc123", "x-try": "{{SECRET:stripe-key}}", "x-mine": OPENAI_KEY });
    expect(got.headers["stripe-version"]).toBeUndefined();
    expect(JSON.stringify(got)).not.toContain(STRIPE_KEY);
    expect(r.stdout).not.toContain(OPENAI_KEY);
  });

  it("applies a replaced policy (new secret) to the next request of a connection already open", async () => {
    const { status, socket } = await connect("api.stripe.com:443");
    expect(status).toBe(200);
    const tls = tlsConnect({ socket, servername: "api.stripe.com", ca: ca.certPem, ALPNProtocols: ["http/1.1"] });
    const ask = (path: string) =>
      new Promise<string>((resolve) => {
        let buf = "";
        const onData = (d: Buffer) => {
          buf += d.toString();
          const end = buf.indexOf("\r\n\r\n");
          const len = Number(/content-length: (\d+)/i.exec(buf)?.[1] ?? -1);
          const done = len >= 0 ? Buffer.byteLength(buf.slice(end + 4)) >= len : buf.endsWith("0\r\n\r\n");
          if (end >= 0 && done) {
            tls.off("data", onData);
            resolve(buf);
          }
        };
        tls.on("data", onData);
        tls.write(`GET ${path} HTTP/1.1\r\nhost: api.stripe.com\r\n\r\n`);
      });
    await ask("/one");
    expect((await lastRequest()).headers.authorization).toBe(`Bearer ${STRIPE_KEY}`);
    const rotated = { ...DOCS_EXAMPLE, proxy: { ...DOCS_EXAMPLE.proxy, routing: [{ ...DOCS_EXAMPLE.proxy.routing[0]!, secrets: { "stripe-key": "sk-rotated" } }] } };
    proxy.setSandbox("sb1", "127.0.0.1", rotated);
    await ask("/two");
    const got = await lastRequest();
    expect(got.url).toBe("/two");
    expect(got.headers.authorization).toBe("Bearer sk-rotated");
    tls.destroy();
    // a rule Hangar marks failed (its credential could not be had): the proxy answers with the reason
    proxy.setSandbox("sb1", "127.0.0.1", { proxy: { routing: [{ destinations: ["api.stripe.com"], fail: "integration connection 'x': refused (invalid_grant)" }] } });
    await net.clearRequests();
    const r = await curl("-i", "https://api.stripe.com/v1/charges");
    expect(r.stdout).toMatch(/^HTTP\/\S+ 502/m);
    expect(r.stdout).toContain("Hangar egress proxy: integration connection 'x': refused (invalid_grant)");
    expect(await net.requests()).toEqual([]);
  });

  it("resolves several placeholders in one value and a catch-all rule", async () => {
    proxy.setSandbox("sb1", "127.0.0.1", {
      proxy: {
        routing: [
          { destinations: ["secrets.test"], headers: { "X-Multi": "{{SECRET:part-a}}-{{SECRET:part-b}}", "X-Plain": "no-secret-here" }, secrets: { "part-a": "ALPHA", "part-b": "BETA" } },
          { destinations: ["*"], headers: { "X-Global-Auth": "Bearer {{SECRET:global-key}}" }, secrets: { "global-key": "token-xyz" } },
        ],
      },
    });
    await curl("https://secrets.test/");
    let got = await lastRequest();
    expect(got.headers).toMatchObject({ "x-multi": "ALPHA-BETA", "x-plain": "no-secret-here", "x-global-auth": "Bearer token-xyz" });
    await curl("https://evil.com/");
    got = await lastRequest();
    expect(got.host).toBe("evil.com");
    expect(got.headers["x-global-auth"]).toBe("Bearer token-xyz");
    expect(got.headers["x-multi"]).toBeUndefined();
  });

  it("tunnels allowed destinations without rules untouched", async () => {
    const res = await viaTunnel("httpbin.org", "/get", { ca: net.ca.certPem });
    expect(res.statusCode).toBe(200);
    // the destination's own certificate: not intercepted
    expect(new X509Certificate(res.tls.getPeerX509Certificate()!.raw).issuer).toContain("Hangar test internet CA");
    await bodyOf(res);
    res.tls.destroy();
    const got = await lastRequest();
    expect(got.headers["x-blaxel-request-id"]).toBeUndefined();
    expect(got.headers.authorization).toBeUndefined();
    // plain HTTP is always seen, so it gets a request id
    const plain = await curl("http://httpbin.org/plain");
    expect(plain.code).toBe(0);
    expect((await lastRequest()).headers["x-blaxel-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("refuses what the lists forbid with a reason, wildcards matching subdomains only", async () => {
    const denied = await connect("evil.com:443");
    expect(denied.status).toBe(403);
    expect(denied.head).toContain("evil.com is not allowed by this sandbox's network policy: it is not in allowedDomains");
    expect(denied.head).toContain("x-hangar-egress-error: egress_denied");
    const plain = await curl("-i", "http://evil.com/");
    expect(plain.stdout).toMatch(/^HTTP\/1.1 403/);
    expect(plain.stdout).toContain("not in allowedDomains");
    expect((await connect("s3.amazonaws.com:443")).status).toBe(403);
    expect((await curl("--cacert", testCa, "https://bucket.s3.amazonaws.com/x")).code).toBe(0);
    proxy.setSandbox("sb1", "127.0.0.1", { allowedDomains: ["*.amazonaws.com"], forbiddenDomains: ["bucket.s3.amazonaws.com"] });
    const both = await connect("bucket.s3.amazonaws.com:443");
    expect(both.status).toBe(403);
    expect(both.head).toContain("matches forbiddenDomains");
    expect((await connect("other.s3.amazonaws.com:443")).status).toBe(200);
    expect((await net.requests()).filter((r) => r.host === "evil.com")).toEqual([]);
  });

  it("never connects to loopback, link-local, private ranges or the host's own addresses", async () => {
    proxy.setSandbox("sb1", "127.0.0.1", undefined);
    for (const t of ["127.0.0.1:22", "169.254.169.254:80", "10.0.0.1:443", "192.168.1.1:443", `${net.hostIp}:443`]) {
      const r = await connect(t);
      expect(r.status, t).toBe(403);
      expect(r.head).toMatch(/sandboxes may not reach it/);
    }
    const meta = await curl("-i", "http://169.254.169.254/latest/meta-data/");
    expect(meta.stdout).toMatch(/^HTTP\/1.1 403/);
    // and no policy at all means every other destination, nothing intercepted
    expect((await curl("--cacert", testCa, "https://evil.com/")).code).toBe(0);
  });

  it("streams responses as they come and large bodies both ways", async () => {
    const t0 = performance.now();
    const res = await viaTunnel("api.stripe.com", "/stream?chunks=3&ms=300");
    const times: number[] = [];
    for await (const _ of res) times.push(performance.now() - t0);
    res.tls.destroy();
    expect(times[0]!).toBeLessThan(250);
    expect(times[times.length - 1]!).toBeGreaterThan(550);
    const big = Buffer.alloc(5 * 1024 * 1024, 97);
    const up = await viaTunnel("api.stripe.com", "/upload", { method: "POST", headers: { "content-type": "application/octet-stream" }, body: big });
    expect(JSON.parse(await bodyOf(up))).toEqual({ received: big.length });
    up.tls.destroy();
    const down = await curl("-o", "/dev/null", "-w", "%{size_download}", "https://api.stripe.com/bytes?n=20000000");
    expect(Number(down.stdout)).toBe(20_000_000);
  });

  it("serves transparently redirected TLS by its SNI and plain HTTP by its Host", async () => {
    const viaSni = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpsRequest({ host: "127.0.0.1", port, servername: "api.stripe.com", headers: { host: "api.stripe.com" }, path: "/sni", ca: ca.certPem }, resolve);
      req.on("error", reject);
      req.end();
    });
    expect(await bodyOf(viaSni)).toContain("[REDACTED]");
    expect((await lastRequest()).headers.authorization).toBe(`Bearer ${STRIPE_KEY}`);
    const viaHost = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port, headers: { host: "api.stripe.com" }, path: "/plain" }, resolve);
      req.on("error", reject);
      req.end();
    });
    await bodyOf(viaHost);
    expect(await lastRequest()).toMatchObject({ scheme: "http", url: "/plain", headers: { authorization: `Bearer ${STRIPE_KEY}` } });
    // a forbidden name gets its 403 over TLS
    const evil = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpsRequest({ host: "127.0.0.1", port, servername: "evil.com", headers: { host: "evil.com" }, ca: ca.certPem }, resolve);
      req.on("error", reject);
      req.end();
    });
    expect(evil.statusCode).toBe(403);
    expect(await bodyOf(evil)).toContain("evil.com is not allowed");
    // TLS without a name cannot be attributed: closed
    const anon = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false });
      s.on("error", (e) => resolve((e as NodeJS.ErrnoException).code ?? "error"));
      s.on("close", () => resolve("closed"));
    });
    expect(anon).toMatch(/ECONNRESET|closed|EPIPE/);
  });

  it("applies a new policy live: closes what it no longer allows, allows what it now allows", async () => {
    const tunnel = await connect("httpbin.org:443");
    expect(tunnel.status).toBe(200);
    const closed = new Promise((r) => tunnel.socket.once("close", r));
    proxy.setSandbox("sb1", "127.0.0.1", { forbiddenDomains: ["httpbin.org"] });
    await closed;
    expect((await connect("httpbin.org:443")).status).toBe(403);
    expect((await connect("evil.com:443")).status).toBe(200);
  });

  it("passes upgrades (WebSocket) through interception with the rule's headers", async () => {
    const { status, socket } = await connect("api.stripe.com:443");
    expect(status).toBe(200);
    const tls = tlsConnect({ socket, servername: "api.stripe.com", ca: ca.certPem, ALPNProtocols: ["http/1.1"] });
    await new Promise((r) => tls.once("secureConnect", r));
    tls.write("GET /ws HTTP/1.1\r\nhost: api.stripe.com\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n");
    let got = "";
    tls.on("data", (d: Buffer) => {
      got += d.toString();
      if (got.includes("\r\n\r\n") && !got.includes("HELLO")) tls.write("hello");
    });
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (got.includes("HELLO")) {
          clearInterval(t);
          resolve();
        }
      }, 20);
    });
    tls.destroy();
    expect(got).toMatch(/^HTTP\/1.1 101/);
    const rec = (await net.requests()).find((r) => r.url === "/ws");
    expect(rec?.headers.authorization).toBe(`Bearer ${STRIPE_KEY}`);
    expect(rec?.headers["x-blaxel-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("drops connections from addresses that belong to no sandbox", async () => {
    const result = await new Promise<string>((resolve) => {
      const s = netConnect({ host: "127.0.0.1", port, localAddress: "127.0.0.2" }, () => s.write("CONNECT httpbin.org:443 HTTP/1.1\r\n\r\n"));
      let got = "";
      s.on("data", (d: Buffer) => (got += d));
      s.on("close", () => resolve(got));
      s.on("error", () => resolve(got));
    });
    expect(result).toBe("");
  });

  it("answers DNS for the policy's names only, over UDP and TCP", async () => {
    const ask = (name: string, tcp = false) =>
      new Promise<dnsPacket.Packet>((resolve, reject) => {
        const q = dnsPacket.encode({ type: "query", id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: "A", name }] });
        if (tcp) {
          const s = netConnect(port, "127.0.0.1", () => s.write(Buffer.concat([Buffer.from([q.length >> 8, q.length & 255]), q])));
          s.once("data", (d: Buffer) => {
            resolve(dnsPacket.decode(d.subarray(2)));
            s.destroy();
          });
          s.on("error", reject);
        } else {
          const u = createSocket("udp4");
          u.once("message", (m) => {
            resolve(dnsPacket.decode(m));
            u.close();
          });
          u.send(q, port, "127.0.0.1");
        }
      });
    const ok = await ask("api.stripe.com");
    expect(ok.rcode).toBe("NOERROR");
    expect(ok.answers?.map((a) => a.data)).toEqual([net.ipOf("api.stripe.com")]);
    expect((await ask("evil.com")).rcode).toBe("NXDOMAIN");
    expect((await ask("bucket.s3.amazonaws.com", true)).answers?.map((a) => a.data)).toEqual([net.ipOf("s3.amazonaws.com")]);
    expect((await ask("evil.com", true)).rcode).toBe("NXDOMAIN");
  });

  it("keeps secrets out of its error messages", async () => {
    proxy.setSandbox("sb1", "127.0.0.1", {
      allowedDomains: ["secrets.test", "down.invalid"],
      proxy: { routing: [{ destinations: ["down.invalid", "secrets.test"], headers: { Authorization: "{{SECRET:k}}" }, secrets: { k: "s3cr3t-value" } }] },
    });
    const down = await curl("-i", "https://down.invalid/");
    expect(down.stdout).toMatch(/^HTTP\/2 502/m);
    expect(down.stdout).toContain("down.invalid could not be resolved");
    const denied = await curl("-i", "-H", "x: {{SECRET:k}}", "http://evil.com/");
    for (const r of [down, denied]) expect(r.stdout + r.stderr).not.toContain("s3cr3t-value");
  });
});
