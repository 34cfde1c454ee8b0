// hangar-mcp-bridge: runs inside a function's replica sandbox in front of an MCP server that speaks
// stdio. `node mcp-bridge.cjs <command> [args…]` listens on $HOST:$PORT and serves
//   POST/GET/DELETE /mcp  MCP Streamable HTTP (sessions: one child process per client session)
//   WebSocket on / or /mcp  one child process per socket (Blaxel's SDKs before 0.2.41)
//   GET /                 a small JSON description (Blaxel's SDKs 0.2.41–0.2.72 probe it; no
//                         "websocket" in it, so they use /mcp)
// The child gets the sandbox's environment and working directory; its stderr is the bridge's.
// SIGTERM closes every session (children get EOF, then SIGTERM) and exits.

import { webcrypto } from "node:crypto";
import { createServer } from "node:http";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { McpGateway } from "./gateway.js";

// Node 18 (Debian bookworm's, in Hangar's base image) has no global Web Crypto; the SDK uses it
(globalThis as { crypto?: unknown }).crypto ??= webcrypto;

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write("usage: mcp-bridge <command> [args...]  (serves the stdio MCP server <command> on $HOST:$PORT)\n");
  process.exit(2);
}
const log = (m: string) => process.stderr.write(`[hangar-mcp-bridge] ${m}\n`);
const spawnServer = () => new StdioClientTransport({ command, args, env: process.env as Record<string, string>, cwd: process.cwd(), stderr: "inherit" });

/**
 * One server process is kept started ahead, so a new session does not wait for it to load (an
 * SDK client re-initializes after each pause). A spare that exits unused within 5 s is not
 * replaced until a session asks (a broken command does not loop).
 */
let spare: WarmServer | null = null;
let stopping = false;
class WarmServer implements Transport {
  onclose?: () => void;
  onerror?: (e: Error) => void;
  onmessage?: (m: JSONRPCMessage) => void;
  private readonly t = spawnServer();
  private readonly born = Date.now();
  private taken = false;
  readonly ready: Promise<void>;
  constructor() {
    this.t.onmessage = (m) => this.onmessage?.(m);
    this.t.onerror = (e) => this.onerror?.(e);
    this.t.onclose = () => {
      if (!this.taken && spare === this) {
        spare = null;
        if (Date.now() - this.born > 5_000) warm();
      }
      this.onclose?.();
    };
    this.ready = this.t.start();
    this.ready.catch(() => undefined);
  }
  take(): this {
    this.taken = true;
    return this;
  }
  start(): Promise<void> {
    return this.ready;
  }
  send(m: JSONRPCMessage): Promise<void> {
    return this.t.send(m);
  }
  close(): Promise<void> {
    return this.t.close();
  }
}
const warm = () => {
  if (!stopping) spare = new WarmServer();
};

const gateway = new McpGateway({
  connect: () => {
    const s = spare ?? new WarmServer();
    spare = null;
    warm();
    return s.take();
  },
  log,
  // Hangar sets it: the run plane sends a session's requests to the replica whose id starts it
  ...(process.env.HANGAR_REPLICA_ID ? { sessionIdPrefix: process.env.HANGAR_REPLICA_ID } : {}),
});
const pathOf = (url: string | undefined) => new URL(url ?? "/", "http://bridge").pathname.replace(/\/+$/, "") || "/";

const server = createServer((req, res) => {
  const path = pathOf(req.url);
  if (path === "/mcp") {
    gateway.handleHttp(req, res).catch((e: Error) => {
      log(`request failed: ${e.message}`);
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end();
    });
  } else if (path === "/" && req.method === "GET") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ server: "hangar-mcp-bridge", transport: "http-stream", endpoint: "/mcp", command }));
  } else {
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "not found: MCP is served at /mcp" }));
  }
});
server.on("upgrade", (req, socket, head) => {
  const path = pathOf(req.url);
  if (path === "/" || path === "/mcp") gateway.handleUpgrade(req, socket, head);
  else socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
});
// Idle keep-alive connections are left for the run plane to close (its pool drops them after 60 s):
// with Node's 5 s, a replica thawed after a longer park would close pooled connections just as
// the run plane reuses them.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.listen(Number(process.env.PORT ?? 80), process.env.HOST ?? "0.0.0.0");
warm();

const stop = () => {
  if (stopping) return;
  stopping = true;
  server.close();
  void spare?.close();
  void gateway.close().finally(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
