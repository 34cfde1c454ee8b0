// A user reaches a server running inside a sandbox through the sandbox's own URL: `sandbox.fetch()`
// of the SDK and the /port/{n}/… proxy, over HTTP and WebSocket, with the API key (never passed on
// to the app) or through a session.

import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebApp } from "./fixtures.js";
import { type RunningHangar, httpRequest, startHangar, useSdkAgainst } from "./harness.js";

let h: RunningHangar;
let sandbox: import("@blaxel/core").SandboxInstance;
let base: string;

beforeAll(async () => {
  h = await startHangar();
  useSdkAgainst(h);
  const { SandboxInstance } = await import("@blaxel/core");
  sandbox = await SandboxInstance.create({ name: "ports", memory: 512 });
  await startWebApp(sandbox, 3000);
  base = `${h.url}/run/default/sandboxes/ports`;
});

afterAll(async () => {
  await h?.dispose();
});

function openWs(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

async function echo(ws: WebSocket, text: string): Promise<string> {
  const reply = new Promise<string>((r) => ws.once("message", (d) => r(String(d))));
  ws.send(text);
  return reply;
}

describe("sandbox.fetch(port, path)", () => {
  it("reaches the port with the unmodified SDK: method, body, query and streamed responses", async () => {
    expect(sandbox.metadata.url).toBe(base);
    const page = await sandbox.fetch(3000, "/");
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("Hello from the sandbox on port 3000");
    const first = Number(await (await sandbox.fetch(3000, "count")).text());
    expect(Number(await (await sandbox.fetch(3000, "/count")).text())).toBe(first + 1);
    const seen = (await (await sandbox.fetch(3000, "/headers?x=1&y=two", { method: "POST", body: "payload", headers: { "x-mine": "kept" } })).json()) as { url: string; headers: Record<string, string> };
    expect(seen.url).toBe("/headers?x=1&y=two");
    expect(seen.headers["x-mine"]).toBe("kept");
    // Hangar's credentials never reach the app.
    expect(seen.headers["x-blaxel-authorization"]).toBeUndefined();
    expect(seen.headers.authorization).toBeUndefined();
    expect(JSON.stringify(seen.headers)).not.toContain(h.apiKey);
    expect(await (await sandbox.fetch(3000, "/stream")).text()).toBe("chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    expect((await sandbox.fetch(3000, "/missing")).status).toBe(404);
  });

  it("answers 502 when nothing listens on the port, and refuses out-of-range ports", async () => {
    const closed = await sandbox.fetch(3999, "/");
    expect(closed.status).toBe(502);
    expect(await closed.text()).toMatch(/nothing is listening on port 3999/);
    const bad = await fetch(`${base}/port/70000/`, { headers: { authorization: `Bearer ${h.apiKey}` } });
    expect(bad.status).toBe(400);
  });

  it("needs the API key", async () => {
    expect((await fetch(`${base}/port/3000/count`)).status).toBe(401);
    expect((await fetch(`${base}/port/3000/count`, { headers: { authorization: "Bearer hgr_wrong" } })).status).toBe(401);
    const ok = await fetch(`${base}/port/3000/headers`, { headers: { authorization: `Bearer ${h.apiKey}` } });
    expect(ok.status).toBe(200);
    // An Authorization header that carried the key is not passed on.
    expect(((await ok.json()) as { headers: Record<string, string> }).headers.authorization).toBeUndefined();
  });

  it("reaches the port through a session too", async () => {
    const { SandboxInstance } = await import("@blaxel/core");
    const session = await sandbox.sessions.create({ expiresAt: new Date(Date.now() + 600_000) });
    const remote = await SandboxInstance.fromSession(session);
    const res = await remote.fetch(3000, "/headers?via=session");
    expect(res.status).toBe(200);
    const seen = (await res.json()) as { url: string; headers: Record<string, string> };
    expect(seen.url).toBe("/headers?via=session");
    expect(seen.headers["x-blaxel-preview-token"]).toBeUndefined();
    expect((await httpRequest(`${session.url}/port/3000/count`)).status).toBe(401);
  });
});

describe("a server of the user's own on 8080", () => {
  it("runs when the sandbox declares port 8080 (the in-sandbox API relay steps aside), on /port/8080 and on a preview of 8080", async () => {
    const { SandboxInstance } = await import("@blaxel/core");
    const own = await SandboxInstance.create({ name: "own-8080", memory: 512, ports: [{ name: "api", target: 8080, protocol: "HTTP" }] });
    try {
      await startWebApp(own, 8080);
      const res = await fetch(`${h.url}/run/default/sandboxes/own-8080/port/8080/count`, { headers: { authorization: `Bearer ${h.apiKey}` } });
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^\d+$/);
      // its sandbox API still answers on the sandbox URL
      const r = await own.process.exec({ command: "echo api-ok", waitForCompletion: true });
      expect(r.logs?.trim()).toBe("api-ok");
      const p = await own.previews.create({ metadata: { name: "own" }, spec: { port: 8080, public: true } });
      // (a port of its own on the server's host, like any app preview: fetch reaches it as it is)
      expect(p.spec.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const viaPreview = await fetch(`${p.spec.url}/count`);
      expect(viaPreview.status).toBe(200);
      expect(await viaPreview.text()).toMatch(/^\d+$/);
    } finally {
      await own.delete();
    }
  });
});

describe("WebSockets on /port/{n}", () => {
  it("passes a WebSocket through to the app with the API key, pings included", async () => {
    const ws = await openWs(`${base.replace(/^http/, "ws")}/port/3000/ws`, { authorization: `Bearer ${h.apiKey}` });
    const pong = new Promise((r) => ws.once("pong", r));
    ws.ping("there?");
    await pong;
    expect(await echo(ws, "hello")).toMatch(/^echo:hello:\d+$/);
    expect(await echo(ws, "x".repeat(1000))).toMatch(/^echo:x{1000}:\d+$/);
    ws.close();
  });

  it("refuses a WebSocket without a valid key", async () => {
    await expect(openWs(`${base.replace(/^http/, "ws")}/port/3000/ws`)).rejects.toThrow(/HTTP 401/);
    await expect(openWs(`${base.replace(/^http/, "ws")}/port/3000/ws`, { authorization: "Bearer hgr_wrong" })).rejects.toThrow(/HTTP 401/);
  });

  it("reaches a WebSocket server the user writes in the sandbox, path and query kept", async () => {
    // A second echo server, hand-written with node's http upgrade event, on another port.
    await sandbox.fs.write(
      "/app/echo.js",
      String.raw`
const http = require("http"), crypto = require("crypto");
const s = http.createServer((q, r) => r.end("plain"));
s.on("upgrade", (req, sock) => {
  const a = crypto.createHash("sha1").update(req.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  sock.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + a + "\r\n\r\n");
  sock.on("data", (b) => {
    const len = b[1] & 0x7f, mask = b.subarray(2, 6), p = Buffer.from(b.subarray(6, 6 + len));
    for (let i = 0; i < p.length; i++) p[i] ^= mask[i % 4];
    if ((b[0] & 0x0f) === 8) return sock.end();
    const out = Buffer.from("got " + p.toString() + " at " + req.url);
    sock.write(Buffer.concat([Buffer.from([0x81, out.length]), out]));
  });
});
s.listen(8765, "0.0.0.0");
`,
    );
    await sandbox.process.exec({ name: "echo", command: "node /app/echo.js", waitForPorts: [8765] });
    expect(await (await sandbox.fetch(8765, "/")).text()).toBe("plain");
    const ws = await openWs(`${base.replace(/^http/, "ws")}/port/8765/chat?room=1`, { authorization: `Bearer ${h.apiKey}` });
    expect(await echo(ws, "hi")).toBe("got hi at /chat?room=1");
    ws.close();
  });
});
