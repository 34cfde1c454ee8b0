// MCP: the stdio bridge's cost per tools/call. The same stdio MCP server (the bridge's test
// fixture) called by the official SDK client straight over stdio, and through the bundled
// in-sandbox bridge (node dist/mcp-bridge.cjs <server>) over Streamable HTTP and WebSocket on
// loopback, in the same run.

import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { WebSocketTransport } from "@hangar/mcp-bridge";
import { REPO } from "@hangar/testkit";
import WebSocket from "ws";
import { type Row, dist, fmt, timeEach } from "./stats.js";

const FIXTURE = join(REPO, "packages/mcp-bridge/test/stdio-server.cjs");
const BUNDLE = join(REPO, "packages/mcp-bridge/dist/mcp-bridge.cjs");

async function calls(c: Client, n: number): Promise<number[]> {
  for (let i = 0; i < 50; i++) await c.callTool({ name: "add", arguments: { n: 1 } });
  return timeEach(n, () => c.callTool({ name: "add", arguments: { n: 1 } }));
}

export async function benchMcp(out: { rows: Row[]; log: (m: string) => void }, n = 500): Promise<void> {
  const direct = new Client({ name: "bench", version: "1" });
  await direct.connect(new StdioClientTransport({ command: process.execPath, args: [FIXTURE], stderr: "ignore" }));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const bridge: ChildProcess = spawn(process.execPath, [BUNDLE, process.execPath, FIXTURE], { env: { ...process.env, PORT: String(port), HOST: "127.0.0.1" }, stdio: "ignore" });
  try {
    for (let i = 0; ; i++) {
      if (await fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false)) break;
      if (i > 200) throw new Error("the bridge did not listen");
      await new Promise((r) => setTimeout(r, 50));
    }
    const http = new Client({ name: "bench", version: "1" });
    await http.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)));
    const ws = new Client({ name: "bench", version: "1" });
    await ws.connect(new WebSocketTransport(new WebSocket(`ws://127.0.0.1:${port}/`)));
    const d = dist(await calls(direct, n));
    const hd = dist(await calls(http, n));
    const wd = dist(await calls(ws, n));
    out.log(`mcp: stdio p50 ${fmt(d.p50)} ms, bridge http p50 ${fmt(hd.p50)} ms, ws p50 ${fmt(wd.p50)} ms`);
    out.rows.push({
      measure: "MCP tools/call through the stdio bridge (Streamable HTTP, SSE answers)",
      hangar: `p50 ${fmt(hd.p50)} ms, p90 ${fmt(hd.p90)} ms`,
      peer: `the SDK client straight over stdio: p50 ${fmt(d.p50)} ms`,
      ratio: `+${fmt(hd.p50 - d.p50)} ms`,
      target: "",
      met: null,
    });
    out.rows.push({
      measure: "MCP tools/call through the stdio bridge (WebSocket)",
      hangar: `p50 ${fmt(wd.p50)} ms, p90 ${fmt(wd.p90)} ms`,
      peer: `straight over stdio: p50 ${fmt(d.p50)} ms`,
      ratio: `+${fmt(wd.p50 - d.p50)} ms`,
      target: "",
      met: null,
    });
    await Promise.all([http.close(), ws.close()]);
  } finally {
    await direct.close();
    bridge.kill("SIGTERM");
  }
}
