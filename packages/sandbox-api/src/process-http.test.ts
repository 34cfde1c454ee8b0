import { execFileSync } from "node:child_process";
// Process API over raw HTTP against a real agent in a chroot.

import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { raw, sleep, startSandbox, waitFor, type SandboxHarness } from "../test/harness.js";

let h: SandboxHarness;

beforeAll(async () => {
  h = await startSandbox({
    env: { FROM_SANDBOX: "sandbox", OVERRIDE: "sandbox" },
    limits: { restartDelayMs: 50, execKeepaliveMs: 200, streamKeepaliveMs: 200, stopGraceMs: 2000 },
  });
});
afterAll(async () => {
  await h?.stop();
});

interface Proc {
  pid: string;
  name: string;
  status: string;
  exitCode: number;
  logs: string;
  stdout: string;
  stderr: string;
  completedAt: string | null;
  startedAt: string;
  workingDir: string;
  restartCount: number;
  keepAlive: boolean;
}

const exec = async (body: Record<string, unknown>) => raw(h.port, "POST", "/process", body);
const run = async (body: Record<string, unknown>) => (await exec({ waitForCompletion: true, ...body })).json<Proc>();
const get = async (id: string) => (await raw(h.port, "GET", `/process/${id}`)).json<Proc>();

/** Reads a streaming response until it ends. */
function stream(path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = init.body ? Buffer.from(JSON.stringify(init.body)) : undefined;
    const req = request(
      { host: "127.0.0.1", port: h.port, path, method: init.method ?? "GET", headers: { ...(payload ? { "content-type": "application/json" } : {}), ...init.headers } },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (payload) req.write(payload);
    req.end();
  });
}

describe("exec", () => {
  it("execs a plain command without a shell in between, and falls back to the shell with its semantics", async () => {
    // one simple command is exec'ed directly, as the shell would, with the variables it would export
    const direct = await run({ command: "env", workingDir: "/tmp" });
    expect(direct.stdout).toMatch(/^PWD=\/tmp$/m);
    expect(direct.stdout).toMatch(/^SHLVL=\d+$/m);
    expect(direct.stdout).toMatch(/^FROM_SANDBOX=sandbox$/m);
    // not found, not executable, no #! line: the shell answers exactly as before
    const missing = await run({ command: "no-such-command-xyz --flag" });
    expect(missing).toMatchObject({ status: "failed", exitCode: 127 });
    expect(missing.stderr).toContain("not found");
    await run({ command: "printf 'echo from-script\\n' > /tmp/noshebang; chmod +x /tmp/noshebang" });
    expect((await run({ command: "/tmp/noshebang" })).stdout).toBe("from-script\n");
    await run({ command: "chmod -x /tmp/noshebang" });
    expect(await run({ command: "/tmp/noshebang" })).toMatchObject({ status: "failed", exitCode: 126 });
    expect(await run({ command: "true" })).toMatchObject({ status: "completed", exitCode: 0 });
    expect(await run({ command: "false" })).toMatchObject({ status: "failed", exitCode: 1 });
  });

  it("runs through the shell and returns output, status and Go-formatted times", async () => {
    const p = await run({ command: "echo out; echo err >&2; echo $FROM_SANDBOX $OVERRIDE $EXTRA; pwd", env: { OVERRIDE: "request", EXTRA: "x" } });
    expect(p).toMatchObject({ status: "completed", exitCode: 0, stdout: "out\nsandbox request x\n/blaxel\n", stderr: "err\n", workingDir: "/blaxel" });
    expect(p.logs).toContain("out\n");
    expect(p.logs).toContain("err\n");
    expect(p.name).toMatch(/^proc-[a-z0-9]{8}$/);
    expect(p.pid).toMatch(/^\d+$/);
    expect(p.startedAt).toMatch(/^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$/);
    expect(p.completedAt).toMatch(/GMT$/);
    const failed = await run({ command: "exit 7" });
    expect(failed).toMatchObject({ status: "failed", exitCode: 7 });
  });

  it("answers at once without waitForCompletion (completedAt empty; null in the list)", async () => {
    const p = (await exec({ command: "sleep 0.3; echo late", name: "bg-one" })).json<Proc>();
    expect(p).toMatchObject({ status: "running", completedAt: "", name: "bg-one" });
    const listed = (await raw(h.port, "GET", "/process")).json<Proc[]>().find((x) => x.pid === p.pid)!;
    expect(listed.completedAt).toBeNull();
    await waitFor(async () => (await get("bg-one")).status === "completed", 5000, "completion");
    expect((await get(p.pid)).stdout).toBe("late\n");
  });

  it("checks names (400 while running), working directories and finds by name (most recent)", async () => {
    await exec({ command: "sleep 5", name: "dup" });
    const again = await exec({ command: "true", name: "dup" });
    expect(again.status).toBe(400);
    expect(again.json<{ error: string }>().error).toContain("dup");
    await raw(h.port, "DELETE", "/process/dup/kill");
    await waitFor(async () => (await get("dup")).status === "killed", 3000, "kill");
    const second = await run({ command: "echo second", name: "dup" });
    expect((await get("dup")).pid).toBe(second.pid);
    const missing = await exec({ command: "true", workingDir: "/no/such/dir" });
    expect(missing.status).toBe(400);
    expect(missing.json<{ error: string }>().error).toContain("/no/such/dir");
    await raw(h.port, "PUT", "/filesystem/%2Ftmp%2Fwd%2Fsub", { isDirectory: true });
    expect((await run({ command: "pwd", workingDir: "/tmp/wd/sub" })).stdout).toBe("/tmp/wd/sub\n");
    expect((await raw(h.port, "GET", "/process/does-not-exist")).status).toBe(404);
    expect((await exec({ command: "" })).status).toBe(400);
    expect((await exec({ nope: 1 })).status).toBe(400);
  });

  it("kills the whole process group at the timeout (status killed)", async () => {
    const p = (await exec({ command: "sleep 30 & echo $! > /tmp/child.pid; sleep 30", timeout: 1 })).json<Proc>();
    const done = await waitFor(async () => {
      const x = await get(p.pid);
      return x.status !== "running" ? x : null;
    }, 5000, "timeout kill");
    expect(done.status).toBe("killed");
    expect(done.logs).toContain("timeout");
    const check = await run({ command: "kill -0 $(cat /tmp/child.pid) 2>/dev/null && echo alive || echo gone" });
    expect(check.stdout).toBe("gone\n");
  });

  it("stops (SIGTERM → stopped) and kills (SIGKILL → killed); 404 when not running", async () => {
    const a = (await exec({ command: "sleep 30", name: "to-stop" })).json<Proc>();
    expect((await raw(h.port, "DELETE", "/process/to-stop")).json()).toEqual({ message: "Process stopped successfully" });
    await waitFor(async () => (await get(a.pid)).status === "stopped", 3000, "stopped");
    const trap = (await exec({ command: "trap '' TERM; sleep 30", name: "stubborn" })).json<Proc>();
    await sleep(100);
    expect((await raw(h.port, "DELETE", "/process/stubborn/kill")).json()).toEqual({ message: "Process killed successfully" });
    await waitFor(async () => (await get(trap.pid)).status === "killed", 3000, "killed");
    const done = await run({ command: "true" });
    expect((await raw(h.port, "DELETE", `/process/${done.pid}`)).status).toBe(404);
    expect((await raw(h.port, "DELETE", `/process/${done.pid}/kill`)).status).toBe(404);
  });

  it("streams NDJSON for Accept: text/event-stream, with keepalives and the result last", async () => {
    const r = await stream("/process", { method: "POST", body: { command: "echo one; sleep 0.5; echo two >&2; echo three", waitForCompletion: true }, headers: { accept: "text/event-stream" } });
    expect(r.status).toBe(200);
    expect(r.type).toContain("application/x-ndjson");
    const lines = r.text.trim().split("\n").map((l) => JSON.parse(l) as { type: string; data?: string });
    expect(lines.some((l) => l.type === "keepalive" && l.data === undefined)).toBe(true);
    expect(lines.filter((l) => l.type === "stdout").map((l) => l.data).join("")).toBe("one\nthree\n");
    expect(lines.filter((l) => l.type === "stderr").map((l) => l.data)).toEqual(["two\n"]);
    const last = lines[lines.length - 1]!;
    expect(last.type).toBe("result");
    expect(JSON.parse(last.data!)).toMatchObject({ status: "completed", exitCode: 0, stdout: "one\nthree\n" });
    const bad = await stream("/process", { method: "POST", body: { command: "true", workingDir: "/nope" }, headers: { accept: "text/event-stream" } });
    expect(bad.status).toBe(400);
  });
});

describe("logs", () => {
  it("returns logs and streams them with prefixes: backfill, live, notices, keepalives, end at exit", async () => {
    const p = (await exec({ command: "echo first; echo e1 >&2; sleep 0.6; printf 'partial'; sleep 0.3; echo ' line'; echo last", name: "streamer" })).json<Proc>();
    await sleep(200);
    const s = await stream(`/process/${p.pid}/logs/stream`);
    expect(s.type).toContain("text/plain");
    const lines = s.text.split("\n").filter(Boolean);
    expect(lines.filter((l) => !l.startsWith("[keepalive]"))).toEqual(["stdout:first", "stderr:e1", "stdout:partial line", "stdout:last"]);
    expect(lines).toContain("[keepalive]");
    const logs = (await raw(h.port, "GET", "/process/streamer/logs")).json<{ logs: string; stdout: string; stderr: string }>();
    expect(logs).toEqual({ logs: "first\ne1\npartial line\nlast\n", stdout: "first\npartial line\nlast\n", stderr: "e1\n" });
    const stopped = (await exec({ command: "echo up; sleep 30", name: "noticed" })).json<Proc>();
    const live = stream(`/process/${stopped.pid}/logs/stream`);
    await sleep(200);
    await raw(h.port, "DELETE", "/process/noticed");
    const out = (await live).text.split("\n").filter((l) => l && !l.startsWith("[keepalive]"));
    expect(out).toEqual(["stdout:up", "[Process is being gracefully terminated]"]);
    expect((await raw(h.port, "GET", "/process/nope/logs/stream")).status).toBe(404);
  });

  it("bounds the output of chatty processes in memory and spills the rest to disk with a marker", async () => {
    const k = await startSandbox({ limits: { log: { memoryLimit: 16 * 1024, fileLimit: 256 * 1024 } } });
    try {
      const p = (await raw(k.port, "POST", "/process", { command: "seq 1 300000", waitForCompletion: true })).json<Proc>();
      expect(p.status).toBe("completed");
      expect(p.logs.startsWith("1\n2\n3\n")).toBe(true);
      expect(p.logs.endsWith("299999\n300000\n")).toBe(true);
      expect(p.logs).toContain("bytes of output omitted");
      expect(p.logs.length).toBeLessThan(256 * 1024 + 16 * 1024 + 200);
      const rec = k.services.processes.get(p.pid);
      expect(Buffer.byteLength(rec.logs.tail().logs)).toBeLessThanOrEqual(16 * 1024);
      const listed = (await raw(k.port, "GET", "/process")).json<Proc[]>()[0]!;
      expect(listed.logs.length).toBeLessThanOrEqual(4096);
    } finally {
      await k.stop();
    }
  });

  it("keeps all process logs of a sandbox within its disk budget, forgetting the oldest finished processes first", async () => {
    const k = await startSandbox({ limits: { log: { memoryLimit: 4 * 1024, fileLimit: 64 * 1024 }, logDiskBudget: 160 * 1024 } });
    try {
      for (let i = 0; i < 6; i++) {
        const p = (await raw(k.port, "POST", "/process", { name: `chatty-${i}`, command: `head -c 60000 /dev/zero | tr '\\0' ${i}`, waitForCompletion: true })).json<Proc>();
        expect(p.status).toBe("completed");
      }
      const du = Number(execFileSync("du", ["-sb", k.services.logDir], { encoding: "utf8" }).split("\t")[0]);
      expect(du).toBeLessThan(160 * 1024 + 64 * 1024); // the budget, plus directory entries and record headers
      const names = (await raw(k.port, "GET", "/process")).json<Proc[]>().map((p) => p.name);
      expect(names).not.toContain("chatty-0");
      expect(names).toContain("chatty-5");
      const last = (await raw(k.port, "GET", "/process/chatty-5/logs")).json<{ stdout: string }>().stdout;
      expect(last).toBe("5".repeat(60000));
    } finally {
      await k.stop();
    }
  });

  it("handles hundreds of processes at once", async () => {
    const n = 300;
    const started = await Promise.all(Array.from({ length: n }, (_, i) => exec({ command: `for j in 1 2 3; do echo p${i}-$j; done; sleep 0.2`, name: `many-${i}` })));
    expect(started.every((r) => r.status === 200)).toBe(true);
    await waitFor(async () => (await raw(h.port, "GET", "/process")).json<Proc[]>().filter((p) => p.name.startsWith("many-") && p.status === "completed").length === n, 20_000, "all done");
    const some = await Promise.all([0, 150, 299].map((i) => raw(h.port, "GET", `/process/many-${i}/logs`)));
    expect(some.map((r) => r.json<{ stdout: string }>().stdout)).toEqual(["p0-1\np0-2\np0-3\n", "p150-1\np150-2\np150-3\n", "p299-1\np299-2\np299-3\n"]);
  });
});

describe("lifecycle features", () => {
  it("restarts on failure up to maxRestarts, keeping the pid", async () => {
    const ok = await run({ command: "if [ -f /tmp/r1 ]; then echo ok; else touch /tmp/r1; echo fail; exit 3; fi", restartOnFailure: true, maxRestarts: 2 });
    // waitForCompletion returns at the final exit, after the restart
    expect(ok).toMatchObject({ status: "completed", restartCount: 1 });
    expect(ok.logs).toContain("[Process failed with exit code 3. Attempting restart 1/2...]");
    expect(ok.logs).toContain("ok\n");
    const bad = await run({ command: "echo try; exit 1", restartOnFailure: true, maxRestarts: 2 });
    expect(bad).toMatchObject({ status: "failed", restartCount: 2, exitCode: 1 });
    expect(bad.stdout.match(/try/g)).toHaveLength(3);
  });

  it("holds keep-alive while a keepAlive process runs; its timeout defaults to 600 s and pauses while frozen", async () => {
    expect(h.services.keepAliveActive()).toBe(false);
    const changes: boolean[] = [];
    h.services.on("keepAlive", (a) => changes.push(a));
    const p = (await exec({ command: "sleep 30", keepAlive: true, name: "ka" })).json<Proc>();
    expect(p.keepAlive).toBe(true);
    expect(h.services.keepAliveActive()).toBe(true);
    expect(h.services.processes.get("ka").timeoutMs).toBe(600_000);
    await raw(h.port, "DELETE", "/process/ka/kill");
    await waitFor(() => !h.services.keepAliveActive(), 3000, "keep-alive released");
    expect(changes).toEqual([true, false]);

    const t = (await exec({ command: "sleep 30", keepAlive: true, timeout: 1, name: "ka-timed" })).json<Proc>();
    h.services.pauseTimers();
    await sleep(1500);
    expect((await get(t.pid)).status).toBe("running");
    h.services.resumeTimers();
    await waitFor(async () => (await get(t.pid)).status === "killed", 3000, "timeout after resume");
    expect(h.services.keepAliveActive()).toBe(false);
    const none = (await exec({ command: "true", keepAlive: true, timeout: 0 })).json<Proc>();
    expect(h.services.processes.get(none.pid).timeoutMs).toBe(0);
  });

  it("feeds stdin (raw bytes whatever the content type) and closes it", async () => {
    const p = (await exec({ command: "cat", stdin: true, name: "catter" })).json<Proc & { stdin: boolean }>();
    expect(p.stdin).toBe(true);
    const w = await raw(h.port, "POST", "/process/catter/stdin", "hello {not json}\n", { "content-type": "application/json" });
    expect(w.status).toBe(200);
    await raw(h.port, "POST", `/process/${p.pid}/stdin`, Buffer.from([0xe2, 0x9c, 0x93, 0x0a]), { "content-type": "application/octet-stream" });
    await waitFor(async () => (await get("catter")).stdout === "hello {not json}\n✓\n", 3000, "echoed input");
    expect((await raw(h.port, "DELETE", "/process/catter/stdin")).status).toBe(200);
    await waitFor(async () => (await get("catter")).status === "completed", 3000, "EOF ends cat");
    expect((await raw(h.port, "POST", "/process/catter/stdin", "more")).status).toBe(409);
    const noPipe = await run({ command: "true" });
    expect((await raw(h.port, "POST", `/process/${noPipe.pid}/stdin`, "x")).status).toBe(409);
  });
});

describe("ports", () => {
  const server = (port: number, host = "0.0.0.0") => `node -e "require('http').createServer((q,s)=>s.end('hi')).listen(${port}, '${host}', () => console.log('listening'))"`;

  it("waits for ports, lists a process's ports, and fails clearly when the process exits first", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const t0 = Date.now();
    const r = await exec({ command: `sleep 0.3; ${server(port)}`, waitForPorts: [port], name: "web" });
    expect(r.status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    const p = r.json<Proc>();
    const ports = (await raw(h.port, "GET", `/network/process/${p.pid}/ports`)).json<{ pid: number; ports: Array<{ localPort: number; state: string; processName: string }> }>();
    expect(ports.pid).toBe(Number(p.pid));
    expect(ports.ports).toEqual(expect.arrayContaining([expect.objectContaining({ localPort: port, state: "LISTEN", processName: "node" })]));
    await raw(h.port, "DELETE", "/process/web/kill");
    const dead = await exec({ command: "exit 2", waitForPorts: [port + 1] });
    expect(dead.status).toBe(422);
    expect(dead.json<{ error: string }>().error).toContain("exited");
    expect((await raw(h.port, "GET", "/network/process/abc/ports")).status).toBe(400);
  });

  it("calls the monitor callback when the process opens a port", async () => {
    const calls: Array<{ pid: number; port: number }> = [];
    const cb: Server = createServer((req, res) => {
      let b = "";
      req.on("data", (c: Buffer) => (b += c));
      req.on("end", () => {
        calls.push(JSON.parse(b));
        res.end();
      });
    });
    await new Promise<void>((r) => cb.listen(0, "127.0.0.1", r));
    try {
      const port = 20000 + Math.floor(Math.random() * 20000);
      const p = (await exec({ command: `sleep 0.5; ${server(port)}`, name: "mon" })).json<Proc>();
      const m = await raw(h.port, "POST", `/network/process/${p.pid}/monitor`, { callback: `http://127.0.0.1:${(cb.address() as AddressInfo).port}/cb` });
      expect(m.json()).toEqual({ pid: Number(p.pid), message: "Port monitoring started" });
      await waitFor(() => calls.length > 0, 8000, "monitor callback");
      expect(calls[0]).toEqual({ pid: Number(p.pid), port });
      // A monitor registered after the port opened reports it at once, and each port only once.
      const late = await raw(h.port, "POST", `/network/process/${p.pid}/monitor`, { callback: `http://127.0.0.1:${(cb.address() as AddressInfo).port}/cb` });
      expect(late.status).toBe(200);
      await waitFor(() => calls.length > 1, 2000, "late monitor callback");
      expect(calls[1]).toEqual({ pid: Number(p.pid), port });
      await sleep(2_500);
      expect(calls).toHaveLength(2);
      expect((await raw(h.port, "DELETE", `/network/process/${p.pid}/monitor`)).status).toBe(200);
      await raw(h.port, "DELETE", "/process/mon/kill");
    } finally {
      cb.close();
    }
  });
});

describe("server restart", () => {
  it("rebuilds the process table from the agent, keeping running processes, their output and pids", async () => {
    const k = await startSandbox();
    try {
      const p = (await raw(k.port, "POST", "/process", { command: "echo before; sleep 0.8; echo during; sleep 30", name: "survivor", keepAlive: true })).json<Proc>();
      const quick = (await raw(k.port, "POST", "/process", { command: "sleep 0.5; exit 4", name: "exits-while-away" })).json<Proc>();
      await sleep(200);
      await k.restartServer();
      await sleep(1000);
      const again = (await raw(k.port, "GET", "/process/survivor")).json<Proc>();
      expect(again).toMatchObject({ pid: p.pid, name: "survivor", status: "running", keepAlive: true });
      expect(again.stdout).toContain("during\n");
      expect(k.services.keepAliveActive()).toBe(true);
      const gone = (await raw(k.port, "GET", `/process/${quick.pid}`)).json<Proc>();
      expect(gone).toMatchObject({ status: "failed", exitCode: 4 });
      await raw(k.port, "DELETE", "/process/survivor/kill");
      await waitFor(async () => (await raw(k.port, "GET", "/process/survivor")).json<Proc>().status === "killed", 3000, "killed after restart");
    } finally {
      await k.stop();
    }
  });
});
