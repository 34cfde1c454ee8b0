// Idle sandboxes park themselves in standby with memory and processes kept, and wake on the next
// API call, preview hit or WebSocket — never losing a file, a process or a connection.

import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { startWebApp } from "./fixtures.js";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequestRaw } from "node:http";
import { join } from "node:path";
import { type RunningHangar, api, httpRequest, startHangar, useSdkAgainst } from "./harness.js";

/** CRIU as criu-install.sh installs it (scripts/ensure.sh test runs it); the linux driver also runs `criu check`. */
const criuInstalled = existsSync("/opt/hangar/criu/tools.json");
if (!criuInstalled) console.warn("[park-and-wake] checkpointed standby skipped: CRIU is not installed (packages/runtime/src/linux/criu-install.sh)");

let h: RunningHangar;
let SandboxInstance: typeof import("@blaxel/core").SandboxInstance;
let sandbox: import("@blaxel/core").SandboxInstance;
let previewUrl: string;

const IDLE_MS = 1_000;

async function state(name = "napper"): Promise<string> {
  return ((await (await api(h, "GET", `/v0/sandboxes/${name}`)).json()) as { state: string }).state;
}

async function waitForState(want: string, name = "napper", withinMs = 10_000): Promise<number> {
  const t0 = Date.now();
  while ((await state(name)) !== want) {
    if (Date.now() - t0 > withinMs) throw new Error(`${name} did not reach ${want} within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - t0;
}

describe("standby", () => {
  // (hooks inside the describe: the checkpointed-tier server below starts after this one is gone)
  beforeAll(async () => {
    h = await startHangar({ env: { HANGAR_STANDBY_IDLE: `${IDLE_MS / 1000}s` } });
    useSdkAgainst(h);
    ({ SandboxInstance } = await import("@blaxel/core"));
    sandbox = await SandboxInstance.create({ name: "napper", memory: 512, ports: [{ target: 3000 }] });
    await startWebApp(sandbox, 3000);
    const p = await sandbox.previews.create({ metadata: { name: "app" }, spec: { port: 3000, public: true } });
    previewUrl = p.spec.url!;
  });

  afterAll(async () => {
    await h?.dispose();
  });

  it("parks an idle sandbox and wakes it on an API call with memory and processes intact", async () => {
    expect((await httpRequest(`${previewUrl}/count`)).body).toBe("1");
    await waitForState("STANDBY");
    const r = await sandbox.process.exec({ command: "echo awake", waitForCompletion: true });
    expect(r.stdout).toBe("awake\n");
    expect(await state()).toBe("RUNNING");
    expect((await sandbox.process.get("web-3000")).status).toBe("running");
    expect((await httpRequest(`${previewUrl}/count`)).body).toBe("2");
  });

  it("wakes on a preview hit", async () => {
    await waitForState("STANDBY");
    const t0 = performance.now();
    const res = await httpRequest(`${previewUrl}/count`);
    const ms = performance.now() - t0;
    expect(res.body).toBe("3");
    expect(ms).toBeLessThan(1_000);
    expect(await state()).toBe("RUNNING");
  });

  it("wakes on a WebSocket, and traffic on it keeps the sandbox awake", async () => {
    await waitForState("STANDBY");
    const u = new URL(previewUrl);
    const ws = new WebSocket(`ws://127.0.0.1:${u.port}/ws`, { headers: { host: u.host } });
    await new Promise((r, j) => ws.once("open", r).once("error", j));
    const say = (m: string) => new Promise<string>((r) => { ws.once("message", (d) => r(String(d))); ws.send(m); });
    expect(await say("hi")).toBe("echo:hi:3");
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, IDLE_MS / 2));
      expect(await say(`tick${i}`)).toBe(`echo:tick${i}:3`);
    }
    expect(await state()).toBe("RUNNING");
    ws.close();
  });

  it("stays awake while a keepAlive process runs, until its keep-alive timeout", async () => {
    await sandbox.process.exec({ name: "guard", command: "sleep 600", keepAlive: true, timeout: 3 });
    await new Promise((r) => setTimeout(r, IDLE_MS * 2));
    expect(await state()).toBe("RUNNING");
    await waitForState("STANDBY", "napper", 10_000);
  });

  it("does not run process timeouts while the sandbox is parked", async () => {
    await sandbox.process.exec({ name: "timed", command: "sleep 600", timeout: 2 });
    expect((await api(h, "POST", "/v0/sandboxes/napper/standby")).status).toBe(200);
    await new Promise((r) => setTimeout(r, 3_000));
    const p = await sandbox.process.get("timed");
    expect(p.status).toBe("running");
    // Awake again (polling keeps it so), the remaining ~2 s of the timeout run out.
    const t0 = Date.now();
    while ((await sandbox.process.get("timed")).status === "running" && Date.now() - t0 < 6_000) await new Promise((r) => setTimeout(r, 200));
    const ranFor = Date.now() - t0;
    expect((await sandbox.process.get("timed")).status).not.toBe("running");
    expect(ranFor).toBeGreaterThan(1_000);
  });

  it("survives 1,000 standby/resume cycles with its server process, connections and files intact", async () => {
    await sandbox.fs.write("/tmp/cycles/marker.txt", "kept across standby");
    const before = Number((await httpRequest(`${previewUrl}/count`)).body);
    const u = new URL(previewUrl);
    const ws = new WebSocket(`ws://127.0.0.1:${u.port}/ws`, { headers: { host: u.host } });
    await new Promise((r, j) => ws.once("open", r).once("error", j));
    const say = (m: string) => new Promise<string>((r) => { ws.once("message", (d) => r(String(d))); ws.send(m); });
    const resumes: number[] = [];
    for (let i = 1; i <= 1_000; i++) {
      const parked = await api(h, "POST", "/v0/sandboxes/napper/standby");
      expect(parked.status).toBe(200);
      if (i % 100 === 0) expect(await state()).toBe("STANDBY");
      const t0 = performance.now();
      const res = await httpRequest(`${previewUrl}/count`);
      resumes.push(performance.now() - t0);
      expect(res.body).toBe(String(before + i));
      if (i % 100 === 0) {
        expect(await say(`cycle${i}`)).toBe(`echo:cycle${i}:${before + i}`);
        expect(await sandbox.fs.read("/tmp/cycles/marker.txt")).toBe("kept across standby");
      }
    }
    ws.close();
    resumes.sort((a, b) => a - b);
    console.log(`resume → response over 1,000 cycles: p50 ${resumes[500]!.toFixed(1)} ms, p90 ${resumes[900]!.toFixed(1)} ms`);
    expect((await sandbox.process.get("web-3000")).status).toBe("running");
    const fresh = new WebSocket(`ws://127.0.0.1:${u.port}/ws`, { headers: { host: u.host } });
    await new Promise((r, j) => fresh.once("open", r).once("error", j));
    fresh.close();
    const ls = await sandbox.fs.ls("/tmp/cycles");
    expect(ls.files.map((f) => f.name)).toEqual(["marker.txt"]);
  }, 300_000);
});

describe("open streams and standby", () => {
  // An open HTTP stream keeps its sandbox awake only while it carries data: after
  // HANGAR_STANDBY_CONNECTION_IDLE of silence (keepalives do not count) the sandbox may park.
  const CAP_MS = 2_000;
  let hs: RunningHangar;
  const run = (method: string, path: string, body?: unknown, init: Record<string, string> = {}) => api(hs, method, `/run/default/sandboxes/streamer${path}`, body, init);
  const streamerState = async () => ((await (await api(hs, "GET", "/v0/sandboxes/streamer")).json()) as { state: string }).state;

  /** Opens a watch stream; `lines` collects what it delivers (keepalives aside). */
  async function watch(dir: string) {
    const ac = new AbortController();
    const res = await fetch(`${hs.url}/run/default/sandboxes/streamer/watch/filesystem${dir}`, { headers: { authorization: `Bearer ${hs.apiKey}` }, signal: ac.signal });
    expect(res.status).toBe(200);
    const lines: string[] = [];
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    void (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line && line !== "[keepalive]") lines.push(line);
        }
      }
    })().catch(() => undefined);
    return { lines, close: () => ac.abort() };
  }

  async function until(what: string, ok: () => Promise<boolean> | boolean, withinMs = 10_000): Promise<number> {
    const t0 = Date.now();
    while (!(await ok())) {
      if (Date.now() - t0 > withinMs) throw new Error(`${what}: not within ${withinMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return Date.now() - t0;
  }

  beforeAll(async () => {
    hs = await startHangar({ env: { HANGAR_STANDBY_IDLE: `${IDLE_MS / 1000}s`, HANGAR_STANDBY_CONNECTION_IDLE: `${CAP_MS / 1000}s` } });
    expect((await api(hs, "POST", "/v0/sandboxes", { metadata: { name: "streamer" }, spec: { runtime: { memory: 512 } } })).status).toBe(200);
    for (const d of ["/quiet", "/busy"]) expect((await run("PUT", `/filesystem${d}`, { isDirectory: true })).status).toBe(200);
  });

  afterAll(async () => {
    await hs?.dispose();
  });

  it("lets a sandbox with a silent watch stream park after the idle cap, and the watch delivers again after wake", async () => {
    const w = await watch("/quiet");
    onTestFinished(w.close);
    const t0 = Date.now();
    // the stream counts as activity for the first CAP_MS, longer than the 1 s idle time
    await new Promise((r) => setTimeout(r, CAP_MS * 0.75));
    expect(await streamerState()).toBe("RUNNING");
    await until("STANDBY with a silent watch open", async () => (await streamerState()) === "STANDBY");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(CAP_MS);
    // parked with the stream still open: a file written through the API wakes the sandbox, the watch sees it
    expect((await run("PUT", "/filesystem/quiet/hello.txt", { content: "hi" })).status).toBe(200);
    expect(await streamerState()).toBe("RUNNING");
    await until("the watch event after wake", () => w.lines.some((l) => (JSON.parse(l) as { name: string }).name === "hello.txt"), 5_000);
    w.close();
  });

  it("keeps a sandbox awake while its watch stream delivers events, and lets it park once the stream closes", async () => {
    // a plain process (not keepAlive) writes every 300 ms: only the watch's events can keep the sandbox up
    // (paths in URLs and commands are relative to the working directory)
    const p = await run("POST", "/process", { name: "toucher", command: "sh -c 'i=0; while :; do i=$((i+1)); echo $i > busy/tick; sleep 0.3; done'" });
    expect(p.status).toBe(200);
    const w = await watch("/busy");
    onTestFinished(w.close);
    await new Promise((r) => setTimeout(r, CAP_MS + IDLE_MS * 2));
    expect(await streamerState()).toBe("RUNNING");
    expect(w.lines.length).toBeGreaterThan(5);
    w.close();
    await until("STANDBY once the watch closed", async () => (await streamerState()) === "STANDBY");
  });

  it("keeps a sandbox awake while a slow upload trickles in, and writes the file at the end", async () => {
    const states: string[] = [];
    const done = new Promise<number>((resolve, reject) => {
      const req = httpRequestRaw(
        { host: "127.0.0.1", port: hs.port, method: "PUT", path: "/run/default/sandboxes/streamer/filesystem/busy/upload.txt", headers: { authorization: `Bearer ${hs.apiKey}`, "content-type": "application/json" } },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
      req.write('{"content":"');
      let n = 0;
      const t = setInterval(() => {
        req.write("a");
        if (++n === Math.ceil((CAP_MS + IDLE_MS * 3) / 200)) {
          clearInterval(t);
          req.end('"}');
        }
      }, 200);
    });
    await new Promise((r) => setTimeout(r, 400)); // the upload's first bytes have woken the sandbox
    const watcher = setInterval(() => void streamerState().then((s) => states.push(s)), 250);
    onTestFinished(() => clearInterval(watcher));
    expect(await done).toBe(200);
    clearInterval(watcher);
    expect(states.length).toBeGreaterThan(10);
    expect(states.every((s) => s === "RUNNING")).toBe(true);
    const file = await run("GET", "/filesystem/busy/upload.txt");
    expect(((await file.json()) as { content: string }).content).toBe("a".repeat(Math.ceil((CAP_MS + IDLE_MS * 3) / 200)));
  });
});

/** The checkpointed record of the only sandbox of a server (the linux driver's state on disk), or null. */
function checkpointOf(hg: RunningHangar): { dumpMs: number; imageBytes: number; filesBytes: number } | null {
  const dir = join(hg.dataDir, "runtime", "sandboxes");
  for (const f of existsSync(dir) ? readdirSync(dir) : []) {
    if (!f.endsWith(".json")) continue;
    const rec = JSON.parse(readFileSync(join(dir, f), "utf8")) as { checkpoint?: { dumpMs: number; imageBytes: number; filesBytes: number } };
    if (rec.checkpoint) return rec.checkpoint;
  }
  return null;
}

describe.skipIf(!criuInstalled)("checkpointed standby (CRIU)", () => {
  let hc: RunningHangar;
  let sb: import("@blaxel/core").SandboxInstance;
  let url: string;

  beforeAll(async () => {
    // the port and key of the server above, when it ran: @blaxel/core keeps the settings it read first
    hc = await startHangar({ env: { HANGAR_STANDBY_IDLE: "1s", HANGAR_STANDBY_CHECKPOINT_AFTER: "1s" }, ...(h ? { port: h.port, apiKey: h.apiKey } : {}) });
    expect(hc.output()).toContain("standby tiers: frozen, checkpointed");
    useSdkAgainst(hc);
    ({ SandboxInstance } = await import("@blaxel/core"));
    sb = await SandboxInstance.create({ name: "sleeper", memory: 512, ports: [{ target: 3000 }] });
    await startWebApp(sb, 3000);
    url = (await sb.previews.create({ metadata: { name: "app" }, spec: { port: 3000, public: true } })).spec.url!;
  });

  afterAll(async () => {
    await hc?.dispose();
  });

  async function waitCheckpointed(withinMs = 20_000) {
    const t0 = Date.now();
    for (;;) {
      const c = checkpointOf(hc);
      if (c) return c;
      if (Date.now() - t0 > withinMs) throw new Error(`not checkpointed within ${withinMs} ms:\n${hc.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it("checkpoints an idle sandbox to disk and wakes it on an API call with its processes, their logs, memory and files intact", async () => {
    await sb.fs.write("/work/notes.txt", "written before the checkpoint");
    await sb.process.exec({ name: "ticker", command: "sh -c 'echo started; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done'" });
    expect((await httpRequest(`${url}/count`)).body).toBe("1");
    await new Promise((r) => setTimeout(r, 500));
    const logsBefore = await sb.process.logs("ticker", "stdout");
    expect(logsBefore).toContain("started\ntick 1\n");

    const resumes: number[] = [];
    for (let i = 1; i <= 5; i++) {
      const c = await waitCheckpointed();
      expect(c.imageBytes).toBeGreaterThan(0);
      expect((await (await api(hc, "GET", "/v0/sandboxes/sleeper")).json()).state).toBe("STANDBY");
      const t0 = performance.now();
      const p = await sb.process.get("ticker");
      resumes.push(performance.now() - t0);
      expect(p.status).toBe("running");
      expect(checkpointOf(hc)).toBeNull();
      // the web app's in-memory counter, the ticker's log (before and after), the files
      expect((await httpRequest(`${url}/count`)).body).toBe(String(i + 1));
      const logs = await sb.process.logs("ticker", "stdout");
      expect(logs.startsWith(logsBefore)).toBe(true);
      expect(await sb.fs.read("/work/notes.txt")).toBe("written before the checkpoint");
      expect((await sb.process.get("web-3000")).status).toBe("running");
      const r = await sb.process.exec({ command: "cat /work/notes.txt", waitForCompletion: true });
      expect(r.stdout).toBe("written before the checkpoint");
    }
    // the ticker kept ticking between wakes
    const last = Number(/tick (\d+)\n$/.exec(await sb.process.logs("ticker", "stdout"))![1]);
    expect(last).toBeGreaterThan(10);
    resumes.sort((a, b) => a - b);
    console.log(`resume from the checkpointed tier → API answer over 5 cycles: p50 ${resumes[2]!.toFixed(0)} ms (all: ${resumes.map((x) => x.toFixed(0)).join(", ")})`);
  }, 180_000);
});

describe.skipIf(!criuInstalled)("checkpointed standby under memory pressure", () => {
  let hp: RunningHangar;

  beforeAll(async () => {
    // "100%": the host always counts as short of memory, so frozen sandboxes go to disk at once
    hp = await startHangar({ env: { HANGAR_STANDBY_IDLE: "1s", HANGAR_STANDBY_CHECKPOINT_AFTER: "1h", HANGAR_STANDBY_MEMORY_LOW: "100%" } });
  });

  afterAll(async () => {
    await hp?.dispose();
  });

  it("checkpoints a frozen sandbox early when the host is short of memory, and wakes it intact", async () => {
    expect((await api(hp, "POST", "/v0/sandboxes", { metadata: { name: "squeezed" }, spec: { runtime: { memory: 512 } } })).status).toBe(200);
    const run = (command: string, more: object = {}) => api(hp, "POST", "/run/default/sandboxes/squeezed/process", { command, ...more });
    expect((await run("echo kept > /tmp/f", { waitForCompletion: true })).status).toBe(200);
    expect((await run("sleep 3600", { name: "sleeper" })).status).toBe(200);
    const t0 = Date.now();
    while (!checkpointOf(hp)) {
      if (Date.now() - t0 > 20_000) throw new Error(`not checkpointed under pressure:\n${hp.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(hp.output()).toContain("memory is low: checkpointing a frozen sandbox early");
    const r = (await (await run("cat /tmp/f", { waitForCompletion: true })).json()) as { stdout: string };
    expect(r.stdout).toBe("kept\n");
    const p = (await (await api(hp, "GET", "/run/default/sandboxes/squeezed/process/sleeper")).json()) as { status: string };
    expect(p.status).toBe("running");
  }, 120_000);

  it("keeps a checkpointed sandbox on disk across a server restart and restores it on the next request", async () => {
    const t0 = Date.now();
    while (!checkpointOf(hp)) {
      if (Date.now() - t0 > 20_000) throw new Error(`not checkpointed again:\n${hp.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await hp.stop();
    hp = await hp.restart();
    expect(checkpointOf(hp)).not.toBeNull(); // adopted without restoring
    expect(((await (await api(hp, "GET", "/v0/sandboxes/squeezed")).json()) as { state: string }).state).toBe("STANDBY");
    const r = (await (await api(hp, "POST", "/run/default/sandboxes/squeezed/process", { command: "cat /tmp/f", waitForCompletion: true })).json()) as { stdout: string };
    expect(r.stdout).toBe("kept\n");
    const p = (await (await api(hp, "GET", "/run/default/sandboxes/squeezed/process/sleeper")).json()) as { status: string };
    expect(p.status).toBe("running");
  }, 120_000);

  it("wakes a sandbox whose checkpoint cannot be restored with its files, and says on the sandbox that its processes were lost", async () => {
    const t0 = Date.now();
    while (!checkpointOf(hp)) {
      if (Date.now() - t0 > 20_000) throw new Error(`not checkpointed again:\n${hp.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // damage the process images of the only checkpoint on disk
    const root = join(hp.dataDir, "runtime", "checkpoints");
    for (const id of readdirSync(root)) {
      for (const f of readdirSync(join(root, id, "img"))) if (/^(core|pagemap|mm)-/.test(f)) writeFileSync(join(root, id, "img", f), "damaged");
    }
    const res = await api(hp, "POST", "/run/default/sandboxes/squeezed/process", { command: "cat /tmp/f", waitForCompletion: true });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { stdout: string }).stdout).toBe("kept\n");
    const sandbox = (await (await api(hp, "GET", "/v0/sandboxes/squeezed")).json()) as { status: string; events: { status: string; message: string }[] };
    expect(sandbox.status).toBe("DEPLOYED");
    expect(sandbox.events.at(-1)).toMatchObject({ status: "RECOVERED", message: expect.stringContaining("processes were lost") });
    // the old process is gone, the sandbox runs new ones
    expect((await api(hp, "GET", "/run/default/sandboxes/squeezed/process/sleeper")).status).toBe(404);
    const r = (await (await api(hp, "POST", "/run/default/sandboxes/squeezed/process", { command: "echo alive", waitForCompletion: true })).json()) as { stdout: string };
    expect(r.stdout).toBe("alive\n");
    expect(hp.output()).toContain("sandbox recovered with its files");
  }, 120_000);
});
