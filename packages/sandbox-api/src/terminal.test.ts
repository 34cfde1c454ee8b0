// The terminal WebSocket (a PTY held by the agent) and its HTML page.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { raw, startSandbox, waitFor, type SandboxHarness } from "../test/harness.js";

let h: SandboxHarness;

beforeAll(async () => {
  h = await startSandbox();
});
afterAll(async () => {
  await h?.stop();
});

interface Term {
  ws: WebSocket;
  output: () => string;
  errors: string[];
  closed: Promise<{ code: number; reason: string }>;
  send(m: unknown): void;
}

async function open(query: string): Promise<Term> {
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}/terminal/ws${query}`);
  let out = "";
  const errors: string[] = [];
  ws.on("message", (d) => {
    const m = JSON.parse(d.toString()) as { type: string; data: string };
    if (m.type === "output") out += m.data;
    if (m.type === "error") errors.push(m.data);
  });
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on("close", (code, reason) => r({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return { ws, output: () => out, errors, closed, send: (m) => ws.send(typeof m === "string" || Buffer.isBuffer(m) ? m : JSON.stringify(m)) };
}

describe("terminal", () => {
  it("runs an interactive shell under a PTY: input, output, resize, exit", async () => {
    const t = await open("?cols=100&rows=30&workingDir=/tmp&token=ignored");
    t.send({ type: "input", data: "tty; stty size; pwd\n" });
    await waitFor(() => /\/dev\/pts\/\d+/.test(t.output()) && t.output().includes("30 100") && t.output().includes("/tmp\r\n"), 5000, "tty, size and cwd");
    t.send({ type: "resize", cols: 120, rows: 40 });
    t.send({ type: "input", data: "stty size\n" });
    await waitFor(() => t.output().includes("40 120"), 5000, "resized");
    t.send({ type: "input", data: "printf '\\303\\251\\342\\234\\223\\n'\n" });
    await waitFor(() => t.output().includes("é✓"), 5000, "UTF-8 output");
    t.send(Buffer.from("echo binary-input-ok\n"));
    await waitFor(() => t.output().includes("binary-input-ok\r\n"), 5000, "binary frame as input");
    t.send({ type: "bogus" });
    await waitFor(() => t.errors.length > 0, 2000, "error message");
    t.send({ type: "input", data: "exit 3\n" });
    const c = await t.closed;
    expect(c).toEqual({ code: 1000, reason: "shell exited with code 3" });
  });

  it("reports a bad working directory and unknown paths", async () => {
    const t = await open("?workingDir=/does/not/exist");
    const c = await t.closed;
    expect(c.code).toBe(1011);
    expect(t.errors[0]).toContain("/does/not/exist");
    await expect(new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${h.port}/elsewhere/ws`);
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode));
      ws.on("open", () => reject(new Error("opened")));
      ws.on("error", () => {});
    })).resolves.toBe(404);
  });

  it("re-attaches to a live session by sessionId, replaying recent output", async () => {
    const a = await open("?sessionId=keep-me");
    a.send({ type: "input", data: "export MARK=remembered; echo first-visit\n" });
    await waitFor(() => a.output().includes("first-visit\r\n"), 5000, "first output");
    a.ws.close();
    await a.closed;
    const b = await open("?sessionId=keep-me");
    await waitFor(() => b.output().includes("first-visit"), 5000, "replayed output");
    b.send({ type: "input", data: "echo $MARK\n" });
    await waitFor(() => b.output().includes("remembered\r\n"), 5000, "same shell");
    b.send({ type: "input", data: "exit\n" });
    await b.closed;
  });

  it("serves a terminal page", async () => {
    const r = await raw(h.port, "GET", "/terminal");
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toContain("text/html");
    expect(r.text).toContain("/ws");
    expect((await raw(h.port, "GET", "/terminal/ws")).status).toBe(400);
  });
});
