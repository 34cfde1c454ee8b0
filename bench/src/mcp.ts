// MCP: the stdio bridge's cost per tools/call. The same stdio MCP server (the bridge's test
// fixture) called by the official SDK client straight over stdio, and through the bundled
// in-sandbox bridge (node dist/mcp-bridge.cjs <server>) over Streamable HTTP and WebSocket on
// loopback, in the same run. Then functions on the run plane: tools/call through the edge against
// the same server called straight, and the first call to a parked function.

import { type ChildProcess, spawn } from "node:child_process";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { WebSocketTransport } from "@hangar/mcp-bridge";
import { REPO, type RunningHangar, api, startHangar, zipFiles } from "@hangar/testkit";
import { buildSync } from "esbuild";
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

// ---- functions on the run plane --------------------------------------------------------------

/**
 * An MCP server as a function: the official SDK's Server bundled into one file. MCP_MODE
 * "stateless" answers JSON without sessions (Blaxel's template); "stateful" keeps sessions
 * (Mcp-Session-Id) and answers over SSE, the SDK's defaults. `whoami` answers the replica's address.
 */
const FUNCTION_SERVER = `
const http = require("http");
const os = require("os");
const { randomUUID } = require("crypto");
const { Server } = require("@modelcontextprotocol/sdk/server/index.js");
const { StreamableHTTPServerTransport } = require("@modelcontextprotocol/sdk/server/streamableHttp.js");
const { CallToolRequestSchema, ListToolsRequestSchema, isInitializeRequest } = require("@modelcontextprotocol/sdk/types.js");
const ip = Object.values(os.networkInterfaces()).flat().find((i) => i.family === "IPv4" && !i.internal).address;
function server() {
  const s = new Server({ name: "bench", version: "1.0.0" }, { capabilities: { tools: {} } });
  s.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [{ name: "add", inputSchema: { type: "object", properties: { n: { type: "number" } } } }, { name: "whoami", inputSchema: { type: "object" } }] }));
  s.setRequestHandler(CallToolRequestSchema, async (r) => ({ content: [{ type: "text", text: r.params.name === "whoami" ? ip : String((r.params.arguments || {}).n) }] }));
  return s;
}
const stateful = process.env.MCP_MODE === "stateful";
const sessions = {};
http.createServer(async (req, res) => {
  let body;
  if (req.method === "POST") { let b = ""; for await (const c of req) b += c; body = JSON.parse(b); }
  if (!stateful) {
    if (req.method !== "POST") { res.statusCode = 405; return res.end(); }
    const s = server();
    const t = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => { t.close(); s.close(); });
    await s.connect(t);
    return t.handleRequest(req, res, body);
  }
  const sid = req.headers["mcp-session-id"];
  let t = sid ? sessions[sid] : undefined;
  if (!sid && body && isInitializeRequest(body)) {
    t = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => { sessions[id] = t; } });
    t.onclose = () => { if (t.sessionId) delete sessions[t.sessionId]; };
    await server().connect(t);
  }
  if (!t) { res.statusCode = 404; return res.end(); }
  await t.handleRequest(req, res, body);
}).listen(Number(process.env.PORT), process.env.HOST);
`;

async function deployFunction(h: RunningHangar, name: string, zip: Buffer, spec: Record<string, unknown>): Promise<string> {
  const res = await api(h, "PUT", `/v0/functions/${name}?upload=true`, { metadata: { name }, spec: { runtime: { memory: 512, transport: "http-stream", ...spec } } });
  if (!res.ok) throw new Error(`create ${name}: HTTP ${res.status} ${await res.text()}`);
  await fetch(res.headers.get("x-blaxel-upload-url")!, { method: "PUT", body: zip });
  for (let i = 0; ; i++) {
    const f = (await (await api(h, "GET", `/v0/functions/${name}`)).json()) as { status: string; metadata: { url: string }; events: { message: string }[] };
    if (f.status === "DEPLOYED") return f.metadata.url;
    if (f.status === "FAILED" || i > 3000) throw new Error(`function ${name} is ${f.status}: ${f.events.at(-1)?.message}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One tools/call on a fresh connection (no session: the stateless server), ms to the whole answer. */
function coldCall(url: URL, headers: Record<string, string>): Promise<number> {
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "add", arguments: { n: 1 } } });
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "POST", agent: false, headers: { ...headers, "content-type": "application/json", accept: "application/json, text/event-stream", connection: "close" } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => (res.statusCode === 200 && text.includes('"text":"1"') ? resolve(performance.now() - t0) : reject(new Error(`cold call: HTTP ${res.statusCode} ${text.slice(0, 300)}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * tools/call through the run plane (edge → replica) against the same MCP server called straight at
 * the replica's address, alternating, with the official SDK client; and the first call to a parked
 * replica. Its own server: replicas park after 1 s idle.
 */
export async function benchMcpRunPlane(out: { rows: Row[]; log: (m: string) => void }, n = 500, cold = 20): Promise<void> {
  const h = await startHangar({ env: { HANGAR_STANDBY_IDLE: "1s", HANGAR_STANDBY_CONNECTION_IDLE: "1s", HANGAR_LOG_LEVEL: "warn" } });
  try {
    const bundle = buildSync({ stdin: { contents: FUNCTION_SERVER, resolveDir: REPO, loader: "js" }, bundle: true, platform: "node", target: "node18", format: "cjs", write: false, logLevel: "error" }).outputFiles[0]!.text;
    const zip = zipFiles({ Dockerfile: 'FROM hangar/base\nWORKDIR /f\nCOPY server.js .\nCMD ["node", "server.js"]\n', "server.js": bundle });
    const auth = { authorization: `Bearer ${h.apiKey}` };
    for (const mode of ["stateless", "stateful"] as const) {
      const url = await deployFunction(h, `bench-mcp-${mode}`, zip, { maxScale: 1, envs: [{ name: "MCP_MODE", value: mode }] });
      const edge = new Client({ name: "bench", version: "1" });
      await edge.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: auth } }));
      const ip = ((await edge.callTool({ name: "whoami", arguments: {} })) as { content: Array<{ text: string }> }).content[0]!.text;
      const direct = new Client({ name: "bench", version: "1" });
      await direct.connect(new StreamableHTTPClientTransport(new URL(`http://${ip}/mcp`)));
      const call = (c: Client) => c.callTool({ name: "add", arguments: { n: 1 } });
      for (let i = 0; i < 100; i++) await Promise.all([call(edge), call(direct)]);
      const viaEdge: number[] = [];
      const straight: number[] = [];
      // alternate, so drift hits both alike (and the run plane's traffic keeps the replica awake)
      for (let i = 0; i < n; i++) {
        viaEdge.push(...(await timeEach(1, () => call(edge))));
        straight.push(...(await timeEach(1, () => call(direct))));
      }
      const e = dist(viaEdge);
      const d = dist(straight);
      out.log(`mcp ${mode}: run plane p50 ${fmt(e.p50)} ms, direct p50 ${fmt(d.p50)} ms`);
      out.rows.push({
        measure: `MCP tools/call through the run plane (${mode === "stateless" ? "stateless server, JSON answers" : "server sessions, SSE answers"})`,
        hangar: `p50 ${fmt(e.p50)} ms, p90 ${fmt(e.p90)} ms`,
        peer: `the SDK client straight to the replica: p50 ${fmt(d.p50)} ms`,
        ratio: `+${fmt(e.p50 - d.p50)} ms`,
        target: "≤ +1 ms",
        met: e.p50 - d.p50 <= 1,
      });
      await Promise.all([edge.close(), direct.close()]);
      if (mode !== "stateless") continue;
      // the first call to a parked replica: idle 1 s, parked at the next standby tick
      const runUrl = new URL(`${url}/mcp`);
      const warm = await timeEach(cold, () => coldCall(runUrl, auth));
      const woken: number[] = [];
      for (let i = 0; i < cold; i++) {
        await new Promise((r) => setTimeout(r, 3_500));
        woken.push(await coldCall(runUrl, auth));
      }
      const w = dist(woken);
      const a = dist(warm);
      out.log(`mcp: first call to a parked function p50 ${fmt(w.p50)} ms (awake: ${fmt(a.p50)} ms)`);
      out.rows.push({
        measure: "MCP tools/call to a parked function (its replica woken by the call, new connection)",
        hangar: `p50 ${fmt(w.p50)} ms, p90 ${fmt(w.p90)} ms`,
        peer: `the same call to the awake replica: p50 ${fmt(a.p50)} ms`,
        ratio: `+${fmt(w.p50 - a.p50)} ms for the wake`,
        target: "≤ 30 ms p50",
        met: w.p50 <= 30,
      });
    }
  } finally {
    await h.dispose();
  }
}
