// HTTP and WebSocket reverse proxying from the edge to a port inside a sandbox.

import { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse, Agent, request as httpRequest } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { HangarError, sendProblem } from "@hangar/common";

export interface ProxyTarget {
  host: string;
  port: number;
  /** Path and query to send upstream. */
  path: string;
}

export interface ProxyOptions {
  /** Request headers to drop (lowercase), besides hop-by-hop ones. */
  dropHeaders?: readonly string[];
  /** Headers added to the upstream request when the client did not send them. */
  addRequestHeaders?: Record<string, string>;
  /** Headers set on the response (override upstream's). */
  responseHeaders?: Record<string, string>;
  /** Headers set on the proxy's own error answers (502/504), e.g. CORS. */
  errorHeaders?: Record<string, string>;
  /** A Set-Cookie added to the response, after upstream's own. */
  setCookie?: string;
  /** Headers on the proxy's own error answers whatever the request (e.g. X-Blaxel-Source: platform). */
  platformHeaders?: Record<string, string>;
  /** Closes the exchange when the app sends or receives nothing for this long (504 if it never answered). */
  idleTimeoutMs?: number;
  /** Changes the upstream's response headers (lowercase names) before they are sent. */
  rewriteResponseHeaders?: (headers: IncomingHttpHeaders) => void;
}

const HOP_BY_HOP = ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"];

const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, timeout: 60_000 });

function upstreamHeaders(req: IncomingMessage, opts: ProxyOptions): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = { ...req.headers };
  const conn = String(req.headers.connection ?? "").toLowerCase().split(",").map((s) => s.trim());
  for (const h of [...HOP_BY_HOP, ...conn, ...(opts.dropHeaders ?? [])]) delete out[h];
  const fwd = req.headers["x-forwarded-for"];
  out["x-forwarded-for"] = fwd ? `${fwd}, ${req.socket.remoteAddress}` : (req.socket.remoteAddress ?? "");
  out["x-forwarded-host"] ??= req.headers.host;
  out["x-forwarded-proto"] ??= "encrypted" in req.socket ? "https" : "http";
  for (const [k, v] of Object.entries(opts.addRequestHeaders ?? {})) if (out[k.toLowerCase()] === undefined) out[k.toLowerCase()] = v;
  return out;
}

/** Proxies one HTTP request; errors reaching the upstream become 502/504 problems. */
export function proxyHttp(req: IncomingMessage, res: ServerResponse, target: ProxyTarget, opts: ProxyOptions = {}): void {
  const up = httpRequest(
    { host: target.host, port: target.port, method: req.method, path: target.path, headers: upstreamHeaders(req, opts), agent },
    (ures) => {
      const headers = { ...ures.headers };
      for (const h of HOP_BY_HOP) if (h !== "transfer-encoding") delete headers[h];
      for (const [k, v] of Object.entries(opts.responseHeaders ?? {})) headers[k.toLowerCase()] = v;
      if (opts.setCookie) headers["set-cookie"] = [...[headers["set-cookie"] ?? []].flat(), opts.setCookie];
      opts.rewriteResponseHeaders?.(headers);
      res.writeHead(ures.statusCode ?? 502, ures.statusMessage, headers);
      ures.pipe(res);
      ures.on("error", () => res.destroy());
    },
  );
  if (opts.idleTimeoutMs) up.setTimeout(opts.idleTimeoutMs, () => up.destroy(Object.assign(new Error("idle"), { code: "IDLE" })));
  up.on("error", (e: NodeJS.ErrnoException) => {
    if (!res.headersSent && req.headers.origin) for (const [k, v] of Object.entries(opts.errorHeaders ?? {})) res.setHeader(k, v);
    if (!res.headersSent) for (const [k, v] of Object.entries(opts.platformHeaders ?? {})) res.setHeader(k, v);
    // refused, unreachable, or the app dropped the connection (it crashed): a bad gateway, not a timeout
    const refused = e.code === "ECONNREFUSED" || e.code === "EHOSTUNREACH" || e.code === "ECONNRESET";
    sendProblem(
      res,
      new HangarError(
        refused ? "upstream_unreachable" : "upstream_timeout",
        e.code === "ECONNRESET" ? `the app on port ${target.port} closed the connection without answering` : e.code === "IDLE" ? `the app on port ${target.port} sent nothing for ${Math.round(opts.idleTimeoutMs! / 1000)} s` : refused ? `nothing is listening on port ${target.port} in the sandbox` : `port ${target.port}: ${e.code ?? e.message}`,
      ),
    );
  });
  res.on("close", () => {
    if (!res.writableFinished) up.destroy();
  });
  req.pipe(up);
}

/** Proxies a WebSocket (or any Upgrade) request by splicing the two sockets after the handshake. */
export function proxyUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: ProxyTarget, opts: ProxyOptions = {}): void {
  const headers = upstreamHeaders(req, opts);
  headers.connection = "Upgrade";
  headers.upgrade = req.headers.upgrade;
  const up: Socket = connect(target.port, target.host);
  const fail = () => {
    socket.end("HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    up.destroy();
  };
  up.once("error", fail);
  up.once("connect", () => {
    up.off("error", fail);
    let head1 = `${req.method} ${target.path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined) continue;
      for (const vv of Array.isArray(v) ? v : [v]) head1 += `${k}: ${vv}\r\n`;
    }
    up.write(`${head1}\r\n`);
    if (head.length) up.write(head);
    up.pipe(socket);
    socket.pipe(up);
    up.on("error", () => socket.destroy());
    socket.on("error", () => up.destroy());
    up.on("close", () => socket.destroy());
    socket.on("close", () => up.destroy());
  });
}
