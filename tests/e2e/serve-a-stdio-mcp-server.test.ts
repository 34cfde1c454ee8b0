// A user hosts an MCP server that speaks stdio (as most npm/PyPI MCP servers do): declared with
// `spec.runtime.transport: "stdio"`, it is served over Streamable HTTP and WebSocket by Hangar's
// bridge in the replica, one server process per client session. The same image also runs as a
// Streamable HTTP function and as a legacy WebSocket function, each reached by clients of the
// other transport through the run plane's bridging.

import { execFile, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, type RunningHangar, api, startHangar, useSdkAgainst, zipFiles } from "./harness.js";

let h: RunningHangar;

/** @blaxel/langgraph 0.2.18 installs @blaxel/core 0.2.18 (WebSocket to the root URL), when the e2e package has it. */
const LANGGRAPH = "@blaxel/langgraph";
type LangGraphTools = { blTools: (names: string[]) => Promise<Array<{ name: string; invoke: (a: unknown) => Promise<unknown> }>> };
const hasLanggraph = (() => {
  try {
    createRequire(import.meta.url).resolve(LANGGRAPH);
    return true;
  } catch {
    return false;
  }
})();

beforeAll(async () => {
  h = await startHangar({ env: { HANGAR_STANDBY_IDLE: "2s" } });
  useSdkAgainst(h);
});

afterAll(async () => {
  await h?.dispose();
});

/**
 * One MCP server, four transports (MCP_MODE): stdio (default), Streamable HTTP on /mcp (stateless),
 * Streamable HTTP with sessions of its own (the MCP TS SDK's stateful server), WebSocket on /.
 */
const SERVER = `
const http = require("http");
const { McpServer } = require("@modelcontextprotocol/sdk/server/mcp.js");
const { z } = require("zod");
const me = process.pid + "-" + Math.random().toString(36).slice(2);
function server() {
  const s = new McpServer({ name: "counter", version: "1.0.0" });
  let count = 0;
  const text = (t) => ({ content: [{ type: "text", text: String(t) }] });
  s.tool("add", "Adds n to this session's counter", { n: z.number() }, async ({ n }) => {
    console.error("counter: add " + n);
    return text((count += n));
  });
  s.tool("whoami", "Which server process this is", {}, async () => text(me));
  s.tool("crash", "Exits mid-call", {}, async () => process.exit(3));
  s.tool("slow", "Reports progress three times", {}, async (_a, extra) => {
    for (let i = 1; i <= 3; i++) {
      const token = extra._meta && extra._meta.progressToken;
      if (token !== undefined) await extra.sendNotification({ method: "notifications/progress", params: { progressToken: token, progress: i, total: 3 } });
      await new Promise((r) => setTimeout(r, 50));
    }
    return text("done");
  });
  return s;
}
const mode = process.env.MCP_MODE || "stdio";
if (mode === "stdio") {
  const { StdioServerTransport } = require("@modelcontextprotocol/sdk/server/stdio.js");
  server().connect(new StdioServerTransport());
} else if (mode === "http") {
  const { StreamableHTTPServerTransport } = require("@modelcontextprotocol/sdk/server/streamableHttp.js");
  http.createServer(async (req, res) => {
    if (!req.url.startsWith("/mcp")) { res.statusCode = 404; return res.end(); }
    if (req.method !== "POST") { res.statusCode = 405; return res.end(); }
    let body = "";
    for await (const c of req) body += c;
    const s = server();
    const t = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => { t.close(); s.close(); });
    await s.connect(t);
    await t.handleRequest(req, res, JSON.parse(body));
  }).listen(Number(process.env.PORT), process.env.HOST);
} else if (mode === "stateful") {
  // sessions kept in this process (Mcp-Session-Id), as the SDK's stateful example does
  const { StreamableHTTPServerTransport } = require("@modelcontextprotocol/sdk/server/streamableHttp.js");
  const { isInitializeRequest } = require("@modelcontextprotocol/sdk/types.js");
  const { randomUUID } = require("crypto");
  const sessions = {};
  http.createServer(async (req, res) => {
    if (!req.url.startsWith("/mcp")) { res.statusCode = 404; return res.end(); }
    let body;
    if (req.method === "POST") { let b = ""; for await (const c of req) b += c; body = JSON.parse(b); }
    const sid = req.headers["mcp-session-id"];
    let t = sid ? sessions[sid] : undefined;
    if (!sid && body && isInitializeRequest(body)) {
      t = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => { sessions[id] = t; } });
      t.onclose = () => { if (t.sessionId) delete sessions[t.sessionId]; };
      await server().connect(t);
    }
    if (!t) {
      res.writeHead(400, { "content-type": "application/json" });
      return res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message: "Bad Request: No valid session ID provided" }, id: null }));
    }
    await t.handleRequest(req, res, body);
  }).listen(Number(process.env.PORT), process.env.HOST);
} else {
  // a legacy WebSocket MCP server (as @blaxel/core's BlaxelMcpServerTransport): one JSON message per frame
  const { WebSocketServer } = require("ws");
  new WebSocketServer({ port: Number(process.env.PORT) }).on("connection", (ws) => {
    const t = { start: async () => {}, send: async (m) => ws.send(JSON.stringify(m)), close: async () => ws.close() };
    ws.on("message", (d) => t.onmessage && t.onmessage(JSON.parse(String(d))));
    ws.on("close", () => t.onclose && t.onclose());
    server().connect(t);
  });
}
`;

const FILES = {
  "package.json": JSON.stringify({ name: "counter", version: "1.0.0", private: true, dependencies: { "@modelcontextprotocol/sdk": "1.32.2", zod: "3.25.76", ws: "8.18.3" } }),
  "server.js": SERVER,
  // the docs' deployment configuration; the command is what speaks MCP on stdio
  "blaxel.toml": 'type = "function"\n\n[entrypoint]\nprod = "node server.js"\n\n[runtime]\ntransport = "stdio"\n',
};

type Fn = { status: string; metadata: { url: string }; events: { message: string }[] };
async function deployed(name: string, deadlineMs: number): Promise<Fn> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const fn = (await (await api(h, "GET", `/v0/functions/${name}`)).json()) as Fn;
    if (fn.status === "DEPLOYED") return fn;
    if (fn.status === "FAILED" || Date.now() > deadline) {
      const logs = (await (await api(h, "GET", `/v0/observability/logs?resourceType=functions&workloadIds=${name}`)).json()) as Record<string, { logs: Array<{ message: string }> }>;
      throw new Error(`function ${name}: ${fn.status} ${JSON.stringify(fn.events.at(-1))}\n${(logs[name]?.logs ?? []).slice(-15).map((l) => l.message).join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

const text = (r: unknown) => (r as { content: Array<{ text: string }> }).content[0]!.text;
const auth = () => ({ authorization: `Bearer ${h.apiKey}` });

/** The official MCP SDK client over Streamable HTTP at {url}/mcp. */
async function httpClient(url: string): Promise<Client> {
  const c = new Client({ name: "e2e", version: "1" });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: auth() } }));
  return c;
}

/** What @blaxel/core < 0.2.41 does: its WebSocket transport to the function's root URL. */
async function legacyWsClient(url: string): Promise<Client> {
  const { BlaxelMcpClientTransport } = (await import("@blaxel/core")) as unknown as { BlaxelMcpClientTransport: new (url: string, headers: Record<string, string>, o?: unknown) => never };
  const c = new Client({ name: "e2e-ws", version: "1" });
  await c.connect(new BlaxelMcpClientTransport(url, auth(), { retry: { max: 0 } }));
  return c;
}

describe("serving a stdio MCP server", () => {
  let url = "";
  let image = "";

  it("deploys a stdio MCP server from source; @blaxel/core lists and calls its tools over Streamable HTTP", { timeout: 300_000 }, async () => {
    const res = await api(h, "PUT", "/v0/functions/counter?upload=true", { metadata: { name: "counter" }, spec: { runtime: { memory: 1024, transport: "stdio", minScale: 2 } } });
    expect(res.status).toBe(200);
    const up = await fetch(res.headers.get("x-blaxel-upload-url")!, { method: "PUT", headers: { "content-type": "application/zip" }, body: zipFiles(FILES) });
    expect(up.status).toBe(200);
    const fn = await deployed("counter", 280_000);
    // two replicas: a session stays on the replica that holds it
    expect(((await (await api(h, "GET", "/v0/functions/counter/revisions")).json()) as Array<{ replicas: number }>)[0]!.replicas).toBe(2);
    url = fn.metadata.url;
    expect(((await (await api(h, "GET", "/v0/functions/counter")).json()) as { spec: { runtime: { transport: string } } }).spec.runtime.transport).toBe("stdio");
    image = ((await (await api(h, "GET", "/v0/functions/counter/revisions")).json()) as Array<{ image: string }>)[0]!.image;

    const { getTool } = await import("@blaxel/core");
    const tools = (await getTool("counter")) as Array<{ name: string; call: (args: unknown) => Promise<unknown> }>;
    expect(tools.map((t) => t.name).sort()).toEqual(["add", "crash", "slow", "whoami"]);
    expect(text(await tools.find((t) => t.name === "add")!.call({ n: 7 }))).toBe("7");
  });

  it("gives each client session its own server process (Streamable HTTP and WebSocket), and survives a crash mid-call", { timeout: 60_000 }, async () => {
    const a = await httpClient(url);
    const b = await httpClient(url);
    const w = await legacyWsClient(url);
    expect(text(await a.callTool({ name: "add", arguments: { n: 2 } }))).toBe("2");
    expect(text(await a.callTool({ name: "add", arguments: { n: 3 } }))).toBe("5");
    expect(text(await b.callTool({ name: "add", arguments: { n: 10 } }))).toBe("10");
    expect((await w.listTools()).tools.map((t) => t.name).sort()).toEqual(["add", "crash", "slow", "whoami"]);
    expect(text(await w.callTool({ name: "add", arguments: { n: 1 } }))).toBe("1");
    const pids = await Promise.all([a, b, w].map(async (c) => text(await c.callTool({ name: "whoami", arguments: {} }))));
    expect(new Set(pids).size).toBe(3);

    // progress of a call streams back to it through the run plane
    const seen: number[] = [];
    expect(text(await b.callTool({ name: "slow", arguments: {} }, undefined, { onprogress: (p) => seen.push(p.progress) }))).toBe("done");
    expect(seen).toEqual([1, 2, 3]);

    // a server that exits mid-call: that call gets a JSON-RPC error, the next one a new process
    await expect(a.callTool({ name: "crash", arguments: {} })).rejects.toThrow(/exited/);
    const again = text(await a.callTool({ name: "whoami", arguments: {} }));
    expect(again).not.toBe(pids[0]);
    expect(text(await a.callTool({ name: "add", arguments: { n: 1 } }))).toBe("1");
    await Promise.all([a.close(), b.close(), w.close()]);

    // the probe of @blaxel/core 0.2.41–0.2.72 (GET {url}/) is answered without "websocket": it then uses /mcp
    const probe = await fetch(`${url}/`, { headers: auth() });
    expect(probe.status).toBe(200);
    expect(await probe.text()).not.toMatch(/websocket/i);
    // a wrong key never reaches the bridge
    const wrong = await fetch(`${url}/mcp`, { method: "POST", headers: { authorization: "Bearer hgr_wrong", "content-type": "application/json" }, body: "{}" });
    expect(wrong.status).toBe(401);
  });

  it("bridges WebSocket clients to a Streamable HTTP function, and Streamable HTTP clients to a WebSocket function", { timeout: 150_000 }, async () => {
    expect(image).not.toBe("");
    for (const [name, mode, transport] of [["counter-http", "http", "http-stream"], ["counter-ws", "ws", "websocket"]] as const) {
      const res = await api(h, "PUT", `/v0/functions/${name}`, { metadata: { name }, spec: { runtime: { image, memory: 512, transport, envs: [{ name: "MCP_MODE", value: mode }] } } });
      expect(res.status).toBe(200);
    }
    const [httpFn, wsFn] = [await deployed("counter-http", 120_000), await deployed("counter-ws", 120_000)];

    // a legacy WebSocket client of the Streamable HTTP function
    const w = await legacyWsClient(httpFn.metadata.url);
    expect(text(await w.callTool({ name: "add", arguments: { n: 4 } }))).toBe("4");
    await w.close();

    // @blaxel/core 0.3.21 (Streamable HTTP) and the official client, of the WebSocket function
    const { getTool } = await import("@blaxel/core");
    const tools = (await getTool("counter-ws")) as Array<{ name: string; call: (args: unknown) => Promise<unknown> }>;
    expect(tools.map((t) => t.name).sort()).toEqual(["add", "crash", "slow", "whoami"]);
    const c = await httpClient(wsFn.metadata.url);
    expect(text(await c.callTool({ name: "add", arguments: { n: 5 } }))).toBe("5");
    expect(text(await c.callTool({ name: "add", arguments: { n: 5 } }))).toBe("10");
    await c.close();
    // and its own WebSocket clients still reach it directly
    const d = await legacyWsClient(wsFn.metadata.url);
    expect(text(await d.callTool({ name: "add", arguments: { n: 2 } }))).toBe("2");
    await d.close();
  });

  it("lists functions and calls a tool with the hangar CLI", { timeout: 60_000 }, async () => {
    const hangar = (...args: string[]) =>
      promisify(execFile)(process.execPath, [CLI, "--url", h.url, "--api-key", h.apiKey, ...args], { env: { ...process.env, HANGAR_CONFIG: join(tmpdir(), "hangar-e2e-none.json") } });
    const list = await hangar("get", "functions");
    expect(list.stdout).toMatch(/counter\s+DEPLOYED/);
    const call = await hangar("run", "function", "counter", "--tool", "add", "--args", '{"n":3}');
    expect(text(JSON.parse(call.stdout))).toBe("3");
    const tools = await hangar("run", "function", "counter", "--tools");
    expect((JSON.parse(tools.stdout) as Array<{ name: string }>).map((t) => t.name).sort()).toEqual(["add", "crash", "slow", "whoami"]);
    await expect(hangar("run", "function", "counter", "--tool", "add", "--args", "nope")).rejects.toMatchObject({ stderr: expect.stringMatching(/--args: not JSON/) });

    // the function's output (its server's stderr), followed while tools are called
    const follow = spawn(process.execPath, [CLI, "--url", h.url, "--api-key", h.apiKey, "logs", "function", "counter", "-f"], { env: { ...process.env, HANGAR_CONFIG: join(tmpdir(), "hangar-e2e-none.json") } });
    let followed = "";
    follow.stdout.on("data", (d: Buffer) => (followed += d.toString()));
    try {
      await new Promise((r) => setTimeout(r, 1_500));
      expect(follow.exitCode).toBeNull();
      await hangar("run", "function", "counter", "--tool", "add", "--args", '{"n":41}');
      for (let i = 0; i < 100 && !followed.includes("counter: add 41"); i++) await new Promise((r) => setTimeout(r, 100));
      expect(followed).toMatch(/\S+\/\S+ stderr: counter: add 41/);
    } finally {
      follow.kill();
    }
  });

  it("parks an idle stdio function and wakes it, bridge and all, on the next call", { timeout: 120_000 }, async () => {
    // (minScale replicas never park: a function of the same image with minScale 0)
    await api(h, "PUT", "/v0/functions/counter-idle", { metadata: { name: "counter-idle" }, spec: { runtime: { image, memory: 512, transport: "stdio" } } });
    const url = (await deployed("counter-idle", 100_000)).metadata.url;
    const c = await httpClient(url);
    expect(text(await c.callTool({ name: "add", arguments: { n: 1 } }))).toBe("1");
    await c.close();
    // HANGAR_STANDBY_IDLE is 2 s on this server: the replicas park once the session's streams are gone
    await new Promise((r) => setTimeout(r, 5_000));
    const t0 = performance.now();
    const d = await httpClient(url);
    const first = performance.now() - t0;
    expect(text(await d.callTool({ name: "add", arguments: { n: 2 } }))).toBe("2");
    console.log(`[functions] initialize of a new session on a parked stdio function answered in ${first.toFixed(1)} ms`);
    await d.close();
  });

  it.skipIf(!hasLanggraph)("lists and calls tools with @blaxel/langgraph 0.2.18 (its core speaks WebSocket), bridged or not", { timeout: 60_000 }, async () => {
    // imported once the SDK's env points here (its core reads it when loaded)
    const langgraph = (await import(LANGGRAPH)) as LangGraphTools;
    for (const fn of ["counter", "counter-http"]) {
      const tools = await langgraph.blTools([fn]);
      expect(tools.map((t) => t.name).sort()).toEqual(["add", "crash", "slow", "whoami"]);
      expect(JSON.stringify(await tools.find((t) => t.name === "add")!.invoke({ n: 3 }))).toContain('"3"');
    }
  });

  it("lists and calls tools with @blaxel/llamaindex: a bridged stdio function, a Streamable HTTP function and a sandbox's MCP server", { timeout: 90_000 }, async () => {
    const { blTools } = (await import("@blaxel/llamaindex")) as unknown as { blTools: (names: string[]) => Promise<LlamaTool[]> };
    for (const fn of ["counter", "counter-http"]) {
      const tools = await blTools([fn]);
      expect(tools.map((t) => t.metadata.name).sort()).toEqual(["add", "crash", "slow", "whoami"]);
      expect(text(await tools.find((t) => t.metadata.name === "add")!.call({ n: 6 }))).toBe("6");
    }
    // blTools(["sandbox/<name>"]): the sandbox API's own MCP server, as tools
    const { SandboxInstance } = await import("@blaxel/core");
    await SandboxInstance.create({ name: "tools-box", memory: 256 });
    const tools = await blTools(["sandbox/tools-box"]);
    expect(tools.map((t) => t.metadata.name)).toEqual(expect.arrayContaining(["processExecute", "fsReadFile", "fsWriteFile"]));
    await tools.find((t) => t.metadata.name === "fsWriteFile")!.call({ path: "/tmp/from-tools.txt", content: "written by a tool" });
    const run = await tools.find((t) => t.metadata.name === "processExecute")!.call({ command: "cat /tmp/from-tools.txt" });
    expect(JSON.stringify(run)).toContain("written by a tool");
    await api(h, "DELETE", "/v0/sandboxes/tools-box");
  });

  // last: it restarts the server
  it("keeps each session of a function's own Streamable HTTP server on the replica that issued it, across a server restart", { timeout: 180_000 }, async () => {
    const res = await api(h, "PUT", "/v0/functions/counter-sessions", { metadata: { name: "counter-sessions" }, spec: { runtime: { image, memory: 512, transport: "http-stream", minScale: 2, envs: [{ name: "MCP_MODE", value: "stateful" }] } } });
    expect(res.status).toBe(200);
    const fnUrl = (await deployed("counter-sessions", 120_000)).metadata.url;
    // sessions until both replicas hold some (a session's open event stream keeps its replica busier)
    const clients: Array<{ c: Client; t: StreamableHTTPClientTransport; replica: string }> = [];
    for (let i = 0; i < 8 && new Set(clients.map((x) => x.replica)).size < 2; i++) {
      const c = new Client({ name: "e2e", version: "1" });
      const t = new StreamableHTTPClientTransport(new URL(`${fnUrl}/mcp`), { requestInit: { headers: auth() } });
      await c.connect(t);
      // the id the client holds names the replica; the server's own id follows it
      expect(t.sessionId).toMatch(/^[a-z0-9]{12}\.[0-9a-f-]{36}$/);
      clients.push({ c, t, replica: text(await c.callTool({ name: "whoami", arguments: {} })) });
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(new Set(clients.map((x) => x.replica)).size).toBe(2);
    expect(new Set(clients.map((x) => x.t.sessionId!.split(".")[0])).size).toBe(2);
    // every call of a session reaches the server process that holds its counter
    for (let round = 1; round <= 4; round++) {
      const got = await Promise.all(clients.map(async (x) => [text(await x.c.callTool({ name: "add", arguments: { n: 1 } })), text(await x.c.callTool({ name: "whoami", arguments: {} })), x.replica]));
      for (const [count, who, replica] of got) {
        expect(count).toBe(String(round));
        expect(who).toBe(replica);
      }
    }
    // progress of a call on the function's own SSE stream comes through as it is sent
    const seen: number[] = [];
    expect(text(await clients[0]!.c.callTool({ name: "slow", arguments: {} }, undefined, { onprogress: (p) => seen.push(p.progress) }))).toBe("done");
    expect(seen).toEqual([1, 2, 3]);

    // a session whose replica is gone: 404, so the client starts a new session
    const gone = await fetch(`${fnUrl}/mcp`, {
      method: "POST",
      headers: { ...auth(), "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": "zzzzzzzzzzzz.0d0c7c2e-0000-4000-8000-000000000000" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(gone.status).toBe(404);
    expect(gone.headers.get("x-blaxel-source")).toBe("platform");
    expect(((await gone.json()) as { type: string }).type).toMatch(/mcp_session_not_found/);

    // the routing is in the session id, not in the server's memory: sessions go on after a kill -9
    await h.kill9();
    h = await h.restart();
    for (const x of clients) expect(text(await x.c.callTool({ name: "add", arguments: { n: 1 } }))).toBe("5");
    await Promise.all(clients.map((x) => x.c.close().catch(() => undefined)));
  });
});

/** What @blaxel/llamaindex's blTools gives: llamaindex FunctionTools. */
type LlamaTool = { metadata: { name: string }; call: (input: unknown) => Promise<unknown> };
