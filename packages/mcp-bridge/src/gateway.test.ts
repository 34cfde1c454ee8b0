import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { McpGateway } from "./gateway.js";
import { RunPlaneMcpBridges } from "./run-plane.js";
import { WebSocketTransport } from "./ws-transport.js";

const FIXTURE = fileURLToPath(new URL("../test/stdio-server.cjs", import.meta.url));
const BUNDLE = fileURLToPath(new URL("../dist/mcp-bridge.cjs", import.meta.url));
const text = (r: unknown) => ((r as { content: Array<{ text: string }> }).content[0]!.text);

async function httpClient(url: string): Promise<Client> {
  const c = new Client({ name: "t", version: "1" });
  await c.connect(new StreamableHTTPClientTransport(new URL(url)));
  return c;
}
async function wsClient(url: string): Promise<Client> {
  const c = new Client({ name: "t", version: "1" });
  await c.connect(new WebSocketTransport(new WebSocket(url)));
  return c;
}

describe("McpGateway over a stdio server", () => {
  let gw: McpGateway;
  let server: Server;
  let base: string;
  beforeAll(async () => {
    gw = new McpGateway({ connect: () => new StdioClientTransport({ command: process.execPath, args: [FIXTURE], env: { ...process.env, FOO: "bar" } as Record<string, string>, stderr: "ignore" }), detachedMs: 200 });
    server = createServer((req, res) => void gw.handleHttp(req, res));
    server.on("upgrade", (req, socket, head) => gw.handleUpgrade(req, socket, head));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    base = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await gw.close();
    server.close();
  });

  it("gives each client session its own server process, over Streamable HTTP and WebSocket", async () => {
    const a = await httpClient(`http://${base}/mcp`);
    const b = await httpClient(`http://${base}/mcp`);
    const w = await wsClient(`ws://${base}/`);
    expect((await a.listTools()).tools.map((t) => t.name).sort()).toEqual(["add", "crash", "slow", "whoami"]);
    expect(text(await a.callTool({ name: "add", arguments: { n: 2 } }))).toBe("2");
    expect(text(await a.callTool({ name: "add", arguments: { n: 3 } }))).toBe("5");
    expect(text(await b.callTool({ name: "add", arguments: { n: 10 } }))).toBe("10");
    expect(text(await w.callTool({ name: "add", arguments: { n: 1 } }))).toBe("1");
    const pids = await Promise.all([a, b, w].map(async (c) => text(await c.callTool({ name: "whoami", arguments: {} }))));
    expect(new Set(pids).size).toBe(3);
    expect(pids[0]).toMatch(/ bar$/);
    expect(gw.size).toBe(3);
    await Promise.all([a.close(), w.close()]);
    await (b.transport as StreamableHTTPClientTransport).terminateSession();
    for (let i = 0; i < 100 && gw.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(gw.size).toBe(0);
    // the children are gone
    for (const pid of pids.map((p) => Number(p.split(" ")[0]))) {
      let alive = true;
      for (let i = 0; i < 100 && alive; i++) {
        try {
          process.kill(pid, 0);
          await new Promise((r) => setTimeout(r, 50));
        } catch {
          alive = false;
        }
      }
      expect(alive).toBe(false);
    }
  });

  it("streams progress to the call it belongs to", async () => {
    const c = await httpClient(`http://${base}/mcp`);
    const seen: number[] = [];
    const r = await c.callTool({ name: "slow", arguments: {} }, undefined, { onprogress: (p) => seen.push(p.progress) });
    expect(text(r)).toBe("done");
    expect(seen).toEqual([1, 2, 3]);
    await c.close();
  });

  it("fails a call whose server crashed with a JSON-RPC error; the next call works on a new process", async () => {
    for (const c of [await httpClient(`http://${base}/mcp`), await wsClient(`ws://${base}/mcp`)]) {
      const before = text(await c.callTool({ name: "whoami", arguments: {} }));
      await expect(c.callTool({ name: "crash", arguments: {} })).rejects.toThrow(/exited before answering/);
      const after = text(await c.callTool({ name: "whoami", arguments: {} }));
      expect(after).not.toBe(before);
      await c.close();
    }
  });

  it("answers a request of an unknown session 404 and a GET without a session 405", async () => {
    const r = await fetch(`http://${base}/mcp`, { method: "POST", headers: { "mcp-session-id": "nope", "content-type": "application/json", accept: "application/json, text/event-stream" }, body: "{}" });
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: { code: number } }).error.code).toBe(-32001);
    expect((await fetch(`http://${base}/mcp`, { headers: { accept: "text/event-stream" } })).status).toBe(405);
  });
});

describe("the bundled bridge (hangar-mcp-bridge)", () => {
  let child: ChildProcess;
  let base: string;
  beforeAll(async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    child = spawn(process.execPath, [BUNDLE, process.execPath, FIXTURE], { env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", FOO: "baz" }, stdio: ["ignore", "ignore", "inherit"] });
    base = `127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      if (await fetch(`http://${base}/`).then((r) => r.ok, () => false)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("the bridge did not listen");
  });
  afterAll(() => void child.kill("SIGKILL"));

  it("is reached by the run plane's bridges: a WebSocket client through its /mcp, a Streamable HTTP client through its WebSocket", async () => {
    const bridges = new RunPlaneMcpBridges();
    const front = createServer((req, res) => void bridges.http(req, res, { scope: "fn-a", upstream: `ws://${base}/` }));
    front.on("upgrade", (req, socket, head) => bridges.upgrade(req, socket, head, { scope: "fn-a", upstream: `http://${base}/mcp` }));
    front.listen(0, "127.0.0.1");
    await once(front, "listening");
    const at = `127.0.0.1:${(front.address() as AddressInfo).port}`;
    try {
      const w = await wsClient(`ws://${at}/`);
      expect(text(await w.callTool({ name: "add", arguments: { n: 6 } }))).toBe("6");
      const c = await httpClient(`http://${at}/mcp`);
      expect(text(await c.callTool({ name: "add", arguments: { n: 7 } }))).toBe("7");
      expect(text(await c.callTool({ name: "add", arguments: { n: 1 } }))).toBe("8");
      expect(bridges.size).toBe(2);
      // a session is only found again for the scope it was opened for
      const sid = (c.transport as StreamableHTTPClientTransport).sessionId!;
      const other = createServer((req, res) => void bridges.http(req, res, { scope: "fn-b", upstream: `ws://${base}/` }));
      other.listen(0, "127.0.0.1");
      await once(other, "listening");
      const r = await fetch(`http://127.0.0.1:${(other.address() as AddressInfo).port}/mcp`, { method: "POST", headers: { "mcp-session-id": sid, "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }) });
      expect(r.status).toBe(404);
      other.close();
      await Promise.all([w.close(), c.close()]);
    } finally {
      await bridges.close();
      front.close();
    }
  });

  it("serves the stdio command's tools at /mcp and on WebSocket, answers the GET / probe without 'websocket', and exits on SIGTERM", async () => {
    const probe = await (await fetch(`http://${base}/`)).text();
    expect(probe).not.toMatch(/websocket/i);
    const c = await httpClient(`http://${base}/mcp`);
    expect(text(await c.callTool({ name: "whoami", arguments: {} }))).toMatch(/ baz$/);
    const w = await wsClient(`ws://${base}/`);
    expect(text(await w.callTool({ name: "add", arguments: { n: 4 } }))).toBe("4");
    const pid = Number(text(await w.callTool({ name: "whoami", arguments: {} })).split(" ")[0]);
    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    expect(code).toBe(0);
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
