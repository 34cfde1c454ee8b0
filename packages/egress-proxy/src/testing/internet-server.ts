// "The internet" of the egress tests, run inside the network namespace FakeInternet made: HTTPS
// (HTTP/2 + HTTP/1.1, or HTTP/1.1 only) and HTTP stand-ins for each host, a raw TCP service on
// port 9000, a DNS server that resolves the hosts' names, and a control endpoint listing the
// requests the stand-ins received. Usage: node internet-server.js <config.json>

import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from "node:http";
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { createServer as createHttps } from "node:https";
import { createServer as createNet } from "node:net";
import type { TLSSocket } from "node:tls";
import * as dnsPacket from "dns-packet";

export interface InternetHostConfig {
  names: string[];
  ip: string;
  certPem: string;
  keyPem: string;
  /** Offer HTTP/2 over TLS (ALPN), else HTTP/1.1 only. */
  h2: boolean;
  /** Documents served at these paths instead of the echo. */
  files?: Record<string, { contentType: string; body: string }>;
}

export interface InternetConfig {
  dnsIp: string;
  controlIp: string;
  hosts: InternetHostConfig[];
}

export interface RecordedRequest {
  host: string;
  servedBy: string;
  scheme: "http" | "https";
  method: string;
  url: string;
  httpVersion: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

const config = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as InternetConfig;
const recorded: RecordedRequest[] = [];

function handler(servedBy: string, scheme: "http" | "https", files: InternetHostConfig["files"] = {}) {
  return (req: IncomingMessage | Http2ServerRequest, anyRes: ServerResponse | Http2ServerResponse) => {
    const res = anyRes as ServerResponse;
    const url = new URL(req.url ?? "/", "http://x");
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (d: Buffer) => {
      size += d.length;
      if (chunks.length < 1024) chunks.push(d);
    });
    req.on("end", () => {
      const host = String(req.headers[":authority"] ?? req.headers.host ?? "");
      const rec: RecordedRequest = {
        host,
        servedBy,
        scheme,
        method: req.method ?? "",
        url: req.url ?? "",
        httpVersion: req.httpVersion,
        headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => !k.startsWith(":"))),
        body: Buffer.concat(chunks).toString("utf8").slice(0, 64 * 1024),
      };
      if (url.pathname !== "/bytes" && url.pathname !== "/ping") {
        recorded.push(rec);
        if (recorded.length > 1000) recorded.shift();
      }
      res.setHeader("x-served-by", servedBy);
      const file = files[url.pathname];
      if (file) {
        res.setHeader("content-type", file.contentType);
        res.end(file.body);
      } else if (url.pathname === "/ping") {
        res.setHeader("content-type", "text/plain");
        res.end("pong\n");
      } else if (url.pathname === "/bytes") {
        // a large body: throughput
        const n = Number(url.searchParams.get("n") ?? 1024 * 1024);
        res.setHeader("content-type", "application/octet-stream");
        res.setHeader("content-length", String(n));
        const block = Buffer.alloc(64 * 1024, 120);
        let left = n;
        const pump = () => {
          while (left > 0) {
            const b = block.subarray(0, Math.min(left, block.length));
            left -= b.length;
            if (!res.write(b)) {
              res.once("drain", pump);
              return;
            }
          }
          res.end();
        };
        pump();
      } else if (url.pathname === "/stream") {
        // chunks spaced in time: streaming must not wait for the end
        const n = Number(url.searchParams.get("chunks") ?? 3);
        const ms = Number(url.searchParams.get("ms") ?? 200);
        res.setHeader("content-type", "text/event-stream");
        let i = 0;
        const tick = () => {
          res.write(`data: ${i} ${Date.now()}\n\n`);
          if (++i < n) setTimeout(tick, ms);
          else res.end();
        };
        tick();
      } else if (url.pathname === "/upload") {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ received: size }));
      } else {
        // echo: what this stand-in received
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ ...rec, received: size }));
      }
    });
  };
}

const listening: Promise<void>[] = [];
function listen(server: { listen(port: number, host: string, cb: () => void): unknown; once(e: "error", cb: (e: Error) => void): unknown }, port: number, host: string): void {
  listening.push(
    new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    }),
  );
}

for (const h of config.hosts) {
  const name = h.names[0]!;
  const tlsServer = h.h2
    ? createSecureServer({ cert: h.certPem, key: h.keyPem, allowHTTP1: true }, handler(name, "https", h.files))
    : createHttps({ cert: h.certPem, key: h.keyPem }, handler(name, "https", h.files));
  tlsServer.on("secureConnection", (s: TLSSocket) => s.on("error", () => s.destroy()));
  // an upgrade (WebSocket-like): 101, then the bytes come back upper-cased
  tlsServer.on("upgrade", (req: IncomingMessage, socket: import("node:net").Socket) => {
    recorded.push({ host: String(req.headers.host ?? ""), servedBy: name, scheme: "https", method: req.method ?? "", url: req.url ?? "", httpVersion: req.httpVersion, headers: req.headers, body: "" });
    socket.write("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n");
    socket.on("data", (d: Buffer) => socket.write(d.toString().toUpperCase()));
    socket.on("error", () => socket.destroy());
  });
  listen(tlsServer, 443, h.ip);
  listen(createHttp(handler(name, "http", h.files)), 80, h.ip);
  // a raw TCP service: what a program that ignores the proxy opens
  listen(
    createNet((s) => {
      s.on("error", () => s.destroy());
      s.end(`hello from ${name}\n`);
    }),
    9000,
    h.ip,
  );
}

// DNS: A records for every host name (wildcards answer their subdomains), NXDOMAIN otherwise
function lookup(qname: string): string | null {
  const n = qname.toLowerCase().replace(/\.$/, "");
  for (const h of config.hosts) {
    for (const pat of h.names) {
      if (pat === n) return h.ip;
      if (pat.startsWith("*.") && n.endsWith(pat.slice(1)) && n.length > pat.length - 1) return h.ip;
    }
  }
  return null;
}
const dns = createSocket("udp4");
dns.on("message", (msg, rinfo) => {
  let q: dnsPacket.Packet;
  try {
    q = dnsPacket.decode(msg);
  } catch {
    return;
  }
  const question = q.questions?.[0];
  if (!question) return;
  const ip = lookup(question.name);
  const answers: dnsPacket.Answer[] = ip && question.type === "A" ? [{ type: "A", name: question.name, ttl: 5, class: "IN", data: ip }] : [];
  const reply = dnsPacket.encode({
    type: "response",
    id: q.id ?? 0,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (ip ? 0 : 3), // rcode 3: NXDOMAIN
    questions: q.questions ?? [],
    answers,
  });
  dns.send(reply, rinfo.port, rinfo.address);
});
listening.push(new Promise((resolve) => dns.bind(53, config.dnsIp, () => resolve())));

// control: the test reads and clears what the stand-ins received
listen(
  createHttp((req, res) => {
    if (req.method === "DELETE") recorded.length = 0;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(req.method === "DELETE" ? [] : recorded));
  }),
  8080,
  config.controlIp,
);

Promise.all(listening).then(
  () => process.stdout.write("ready\n"),
  (e: Error) => {
    process.stderr.write(`internet server failed: ${e.message}\n`);
    process.exit(1);
  },
);
process.on("SIGTERM", () => process.exit(0));
