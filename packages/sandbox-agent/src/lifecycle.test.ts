import { mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { agentBinaryPath } from "./binary.js";
import type { AgentInfo, AgentProcess } from "./types.js";
import { ENV, Tracker, sleep, startAgent, waitFor, type AgentHarness } from "../test/harness.js";

/** Host pid of the first child of pid (the agent under `unshare --fork`). */
async function childPid(pid: number): Promise<number> {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8");
  return Number(children.trim().split(/\s+/)[0]);
}

describe("agent lifecycle", () => {
  const started: AgentHarness[] = [];
  const start = async (...args: Parameters<typeof startAgent>) => {
    const h = await startAgent(...args);
    started.push(h);
    return h;
  };
  afterEach(async () => {
    await Promise.all(started.splice(0).map((h) => h.stop()));
  });

  it("buffers output while no host is connected and replays it after reconnecting", async () => {
    const h = await start();
    const { id } = await h.client.spawn({ argv: ["sh", "-c", "sleep 0.4; echo hello; echo world >&2; exit 7"], env: ENV, cwd: "/" });
    const running = await h.client.spawn({ argv: ["sh", "-c", "echo early; sleep 100"], env: ENV, cwd: "/" });
    await sleep(100);
    await h.disconnect();
    await sleep(800);
    const client = await h.listen();
    let snapshot: AgentProcess[] = [];
    client.on("connect", (_info: AgentInfo, procs: AgentProcess[]) => (snapshot = procs));
    const t = new Tracker(client);
    await client.waitConnected(3000);
    expect(snapshot.find((p) => p.id === id)).toMatchObject({ running: false, exitCode: 7 });
    expect(snapshot.find((p) => p.id === running.id)).toMatchObject({ running: true });
    const r = await t.wait(id);
    expect(r.stdout).toBe("hello\n");
    expect(r.stderr).toBe("world\n");
    expect(r.exit.exitCode).toBe(7);
    expect(t.stdout(running.id)).toBe(""); // delivered to the first host already, not replayed
    await client.signal(running.id, 9);
    await t.wait(running.id);
  });

  it("keeps the newest output when a disconnected process overflows its buffer", async () => {
    const h = await start();
    const { id } = await h.client.spawn({ argv: ["sh", "-c", "sleep 0.3; head -c 3000000 /dev/zero | tr '\\0' a; echo END"], env: ENV, cwd: "/" });
    await sleep(50);
    await h.disconnect();
    await sleep(1500);
    const client = await h.listen();
    const t = new Tracker(client);
    await client.waitConnected(3000);
    const r = await t.wait(id);
    const m = /\n\[hangar-agent: (\d+) bytes of output dropped\]\n/.exec(r.stdout);
    expect(m).not.toBeNull();
    const kept = r.out.length - Buffer.byteLength(m![0]);
    expect(kept).toBeLessThanOrEqual(1024 * 1024 + 65536);
    expect(kept).toBeGreaterThan(512 * 1024);
    expect(Number(m![1]) + kept).toBe(3_000_004);
    expect(r.stdout.endsWith("aaaEND\n")).toBe(true);
  });

  it("detaches until SIGUSR1 and keeps its processes meanwhile", async () => {
    const h = await start();
    const t = new Tracker(h.client);
    const { id } = await h.client.spawn({ argv: ["sh", "-c", "sleep 0.3; echo done"], env: ENV, cwd: "/" });
    const before = h.client.agentInfo!;
    let disconnects = 0;
    h.client.on("disconnect", () => disconnects++);
    await h.client.detach(10_000);
    expect(h.client.connected).toBe(false);
    expect(disconnects).toBe(1);
    await sleep(600);
    expect(h.client.connected).toBe(false);
    const t0 = performance.now();
    process.kill(h.child.pid!, "SIGUSR1");
    const info = await h.client.waitConnected(2000);
    const took = performance.now() - t0;
    expect(took).toBeLessThan(100);
    expect(info.instance).toBe(before.instance);
    const r = await t.wait(id);
    expect(r.stdout).toBe("done\n");
  });

  it("comes back by itself after the quiet time of a detach", async () => {
    const h = await start();
    await h.client.detach(300);
    await sleep(150);
    expect(h.client.connected).toBe(false);
    await h.client.waitConnected(2000);
  });

  it("accepts only an agent with the right token and wipes the token from its environment", async () => {
    const warnings: string[] = [];
    const bad = await start({ token: "wrong", listen: { token: "s3cret-token", onWarning: (m) => warnings.push(m) }, noWait: true });
    await expect(bad.client.waitConnected(500)).rejects.toThrow(/no agent connected/);
    expect(warnings.some((w) => w.includes("wrong token"))).toBe(true);

    const good = await start({ token: "s3cret-token", listen: { token: "s3cret-token" } });
    expect(good.client.connected).toBe(true);
    const environ = await readFile(`/proc/${good.child.pid}/environ`, "utf8");
    expect(environ).not.toContain("s3cret-token");
    const cmdline = await readFile(`/proc/${good.child.pid}/cmdline`, "utf8");
    expect(cmdline).not.toContain("s3cret-token");
  });

  it("drops a connection that never says HELLO, and one that breaks the protocol", async () => {
    const warnings: string[] = [];
    const h = await start({ listen: { helloTimeoutMs: 200, onWarning: (m) => warnings.push(m) } });
    const idle = net.connect(h.hostSock);
    const closed = new Promise((r) => idle.on("close", r));
    await closed;
    expect(warnings.some((w) => w.includes("HELLO"))).toBe(true);
    const liar = net.connect(h.hostSock);
    const header = Buffer.alloc(12);
    header.writeUInt32LE(64 * 1024 * 1024, 0); // larger than any frame may be
    header[4] = 0x40;
    liar.write(header);
    await new Promise((r) => liar.on("close", r));
    expect(warnings.some((w) => w.includes("exceeds"))).toBe(true);
    expect(h.client.connected).toBe(true); // the real agent is untouched
    await h.client.ping();
  });

  it("replaces the connection when the agent reconnects", async () => {
    const h = await start();
    const events: string[] = [];
    h.client.on("disconnect", () => events.push("disconnect"));
    h.client.on("connect", () => events.push("connect"));
    // A second agent on the same socket looks exactly like a reconnect. The first one is stopped
    // meanwhile (two live agents would keep replacing each other).
    process.kill(h.child.pid!, "SIGSTOP");
    const second = spawn(agentBinaryPath(), ["--socket", h.hostSock], { stdio: "ignore" });
    try {
      await waitFor(() => events.length >= 2, 3000, "reconnect");
      expect(events).toEqual(["disconnect", "connect"]);
      expect(h.client.agentInfo!.pid).toBe(second.pid);
      await h.client.ping();
    } finally {
      second.kill("SIGKILL");
      process.kill(h.child.pid!, "SIGCONT");
    }
    await waitFor(() => events.length >= 4 && h.client.connected, 3000, "first agent back");
    expect(h.client.agentInfo!.pid).toBe(h.child.pid);
  });

  it("terminates its processes on SIGTERM and exits", async () => {
    const h = await start({ args: ["--stop-timeout", "500"] });
    const a = await h.client.spawn({ argv: ["sleep", "100"], env: ENV, cwd: "/" });
    const b = await h.client.spawn({ argv: ["sh", "-c", "trap '' TERM; sleep 100"], env: ENV, cwd: "/" });
    const exited = new Promise<number | null>((r) => h.child.once("exit", (code) => r(code)));
    h.child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(() => process.kill(a.pid, 0)).toThrow();
    // b ignored SIGTERM: it was killed after the stop timeout
    await waitFor(() => {
      try {
        process.kill(b.pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 4000, "process ignoring SIGTERM to be killed");
  });

  it("reaps orphaned grandchildren as PID 1", async () => {
    const h = await start({ wrap: ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"] });
    const t = new Tracker(h.client);
    expect(h.client.agentInfo!.pid).toBe(1);
    const r = await t.run({ argv: ["sh", "-c", "(sleep 0.2; exit 3) & (sleep 0.1 &) ; echo $!; exit 0"], env: ENV, cwd: "/" });
    const orphan = Number(r.stdout.trim());
    expect(orphan).toBeGreaterThan(1);
    await sleep(500);
    // no zombies and no leftovers: only the agent remains in its PID namespace
    const pids = (await h.client.readdir("/proc")).map((e) => e.name).filter((nm) => /^\d+$/.test(nm));
    const states = await Promise.all(
      pids.map(async (p) => {
        const stat = (await h.client.readFile(`/proc/${p}/stat`).catch(() => Buffer.from(""))).toString();
        return { pid: Number(p), state: stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) };
      }),
    );
    expect(states.filter((s) => s.state === "Z")).toEqual([]);
    expect(states.map((s) => s.pid)).toEqual([1]);

    // SIGTERM to PID 1 takes the whole namespace down, orphans included
    await h.client.spawn({ argv: ["sh", "-c", "sleep 100 & exit 0"], env: ENV, cwd: "/" });
    const agentHostPid = await childPid(h.child.pid!);
    const gone = new Promise((r) => h.child.once("exit", r));
    process.kill(agentHostPid, "SIGTERM");
    await gone;
  });

  it("relays 127.0.0.1:<port> inside its network namespace to the api socket", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hangar-api-"));
    const apiSock = join(dir, "api.sock");
    const connections: number[] = [];
    const server = net.createServer((s) => {
      connections.push(1);
      s.pipe(s); // echo, half-close included
    });
    await new Promise<void>((r) => server.listen(apiSock, () => r()));
    try {
      const h = await start({ wrap: ["unshare", "--net"], args: ["--api-port", "8080", "--api-socket", apiSock] });
      const t = new Tracker(h.client);
      const script = `
        const net = require("net"); const crypto = require("crypto");
        const data = crypto.randomBytes(3 * 1024 * 1024);
        const s = net.connect(8080, "127.0.0.1", () => { s.end(data); });
        const parts = [];
        s.on("data", (d) => parts.push(d));
        s.on("end", () => {
          const back = Buffer.concat(parts);
          console.log(back.length, back.equals(data));
        });
        s.on("error", (e) => { console.log("error", e.message); process.exit(1); });`;
      const r = await t.run({ argv: [process.execPath, "-e", script], env: ENV, cwd: "/" }, 20_000);
      expect(r.stderr).toBe("");
      expect(r.stdout.trim()).toBe(`${3 * 1024 * 1024} true`);
      // many short connections
      const many = `
        const net = require("net"); let ok = 0; const n = 50;
        for (let i = 0; i < n; i++) {
          const s = net.connect(8080, "127.0.0.1", () => s.end("ping" + i));
          let got = ""; s.on("data", (d) => (got += d)); s.on("end", () => { if (got === "ping" + i) ok++; if (ok === n) console.log("all ok"); });
        }`;
      expect((await t.run({ argv: [process.execPath, "-e", many], env: ENV, cwd: "/" }, 20_000)).stdout.trim()).toBe("all ok");
      expect(connections.length).toBe(51);

      // detach closes relayed connections and stops accepting until SIGUSR1
      const hold = await h.client.spawn({
        argv: [process.execPath, "-e", `const s = require("net").connect(8080, "127.0.0.1"); s.on("close", () => console.log("closed")); s.on("error", () => {});`],
        env: ENV,
        cwd: "/",
      });
      await waitFor(() => connections.length === 52, 3000, "held connection");
      await h.client.detach(10_000);
      process.kill(h.child.pid!, "SIGUSR1");
      await h.client.waitConnected(2000);
      const held = await t.wait(hold.id);
      expect(held.stdout).toBe("closed\n");
      const again = await t.run({ argv: [process.execPath, "-e", many], env: ENV, cwd: "/" }, 20_000);
      expect(again.stdout.trim()).toBe("all ok");
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
