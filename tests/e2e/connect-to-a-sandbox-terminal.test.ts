// A user opens an interactive terminal in a sandbox: Blaxel's `bl connect sandbox` (a WebSocket to
// metadata.url + /terminal/ws with the API key in ?token= and no headers, wire spec §5.4 D) and
// `hangar connect`.

import { spawn } from "node:child_process";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, type RunningHangar, startHangar, useSdkAgainst } from "./harness.js";

let h: RunningHangar;
let wsBase: string;

beforeAll(async () => {
  h = await startHangar();
  useSdkAgainst(h);
  const { SandboxInstance } = await import("@blaxel/core");
  const sandbox = await SandboxInstance.create({ name: "term", memory: 256 });
  wsBase = `${sandbox.metadata.url!.replace(/^http/, "ws")}/terminal/ws`;
});

afterAll(async () => {
  await h?.dispose();
});

/** Opens a terminal WebSocket (no headers at all, like the Go CLI); rejects with the HTTP status on refusal. */
function openTerminal(url: string): Promise<{ ws: WebSocket; output: () => string; waitFor: (re: RegExp) => Promise<string> }> {
  const ws = new WebSocket(url);
  let out = "";
  const waiters: Array<() => void> = [];
  ws.on("message", (raw) => {
    const m = JSON.parse(String(raw)) as { type: string; data?: string };
    if (m.type === "output") out += m.data ?? "";
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = (re: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${re} in terminal output: ${JSON.stringify(out)}`)), 20_000);
      const check = () => {
        if (re.test(out)) {
          clearTimeout(timer);
          resolve(out);
        } else waiters.push(check);
      };
      check();
    });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve({ ws, output: () => out, waitFor }));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

describe("the terminal WebSocket", () => {
  it("accepts the API key as ?token= alone and runs commands", async () => {
    const t = await openTerminal(`${wsBase}?token=${encodeURIComponent(h.apiKey)}&cols=100&rows=30`);
    t.ws.send(JSON.stringify({ type: "input", data: "echo term-$((6*7)) $(hostname)\r" }));
    expect(await t.waitFor(/term-42 term/)).toContain("term-42 term");
    t.ws.send(JSON.stringify({ type: "resize", cols: 120, rows: 40 }));
    t.ws.send(JSON.stringify({ type: "input", data: "stty size\r" }));
    await t.waitFor(/40 120/);
    t.ws.close();
  });

  it("refuses a wrong or missing token with 401", async () => {
    await expect(openTerminal(`${wsBase}?token=hgr_wrong&cols=80&rows=24`)).rejects.toThrow(/HTTP 401/);
    await expect(openTerminal(`${wsBase}?token=&cols=80&rows=24`)).rejects.toThrow(/HTTP 401/);
    await expect(openTerminal(`${wsBase}?cols=80&rows=24`)).rejects.toThrow(/HTTP 401/);
  });

  it("takes ?token= only on the terminal: other sandbox paths still need a header", async () => {
    const res = await fetch(`${h.url}/run/default/sandboxes/term/process?token=${encodeURIComponent(h.apiKey)}`);
    expect(res.status).toBe(401);
  });
});

describe("hangar connect", () => {
  it("bridges a local terminal (a pty from script(1)) to a shell in the sandbox", async () => {
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} connect term`;
    const child = spawn("script", ["-qfec", cmd, "/dev/null"], {
      env: { ...process.env, HANGAR_URL: h.url, HANGAR_API_KEY: h.apiKey, HANGAR_WORKSPACE: "default", HANGAR_CONFIG: "/nonexistent/hangar.json", TERM: "xterm" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    const until = async (re: RegExp, ms = 20_000) => {
      for (const deadline = Date.now() + ms; !re.test(out); ) {
        if (Date.now() > deadline) throw new Error(`no ${re} in: ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      // The shell's first output shows the terminal is open (keys typed earlier would be echoed locally).
      await until(/[^]/);
      child.stdin.write("echo connected-$((6*7))\r");
      await until(/connected-42/);
      child.stdin.write("exit\r");
      expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r("timeout"), 20_000))])).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
