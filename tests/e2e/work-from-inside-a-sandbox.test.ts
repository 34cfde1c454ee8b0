// Code running inside a sandbox relies on what Blaxel's sandboxes give it: the sandbox API at
// http://localhost:8080 (for that sandbox only), its own memory and CPU limits in /proc, and an
// agent that an operator can upgrade without stopping the user's processes.

import { createHash } from "node:crypto";
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Lxcfs } from "@hangar/runtime";
import { agentBinaryPath } from "@hangar/sandbox-agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar, useSdkAgainst } from "./harness.js";

type Sdk = typeof import("@blaxel/core");
type Sandbox = InstanceType<Sdk["SandboxInstance"]>;

/** CRIU as criu-install.sh installs it; without it the checkpointed tier is off. */
const criuInstalled = existsSync("/opt/hangar/criu/tools.json");

let h: RunningHangar;
let SandboxInstance: Sdk["SandboxInstance"];

/** Runs a shell command in a new process; returns its stdout (exit code 0 expected). */
async function sh(sb: Sandbox, command: string): Promise<string> {
  const r = await sb.process.exec({ command, waitForCompletion: true });
  expect(r.exitCode, `${command}: ${r.stderr ?? ""}`).toBe(0);
  return r.stdout ?? "";
}

/** Whether the sandbox's record says it is checkpointed to disk (the linux driver's state). */
function checkpointed(id: string): boolean {
  const f = join(h.dataDir, "runtime", "sandboxes", `${id}.json`);
  return existsSync(f) && !!(JSON.parse(readFileSync(f, "utf8")) as { checkpoint?: unknown }).checkpoint;
}

async function idOf(name: string): Promise<string> {
  const dir = join(h.dataDir, "runtime", "sandboxes");
  for (const f of readdirSync(dir)) {
    const rec = JSON.parse(readFileSync(join(dir, f), "utf8")) as { id: string; spec: { name: string } };
    if (rec.spec.name === name) return rec.id;
  }
  throw new Error(`no record for ${name}`);
}

/** Waits until the sandbox is parked to disk (CRIU), or frozen when CRIU is missing. */
async function parked(name: string, withinMs = 30_000): Promise<void> {
  const id = await idOf(name);
  const t0 = Date.now();
  for (;;) {
    const state = ((await (await api(h, "GET", `/v0/sandboxes/${name}`)).json()) as { state: string }).state;
    if (state === "STANDBY" && (!criuInstalled || checkpointed(id))) return;
    if (Date.now() - t0 > withinMs) throw new Error(`${name} not parked within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// a private lxcfs daemon (the machine-wide one serves every server's sandboxes): this file kills it
const lxcfsDir = mkdtempSync(join(tmpdir(), "hangar-lxcfs-e2e-"));
const ENV = { HANGAR_STANDBY_IDLE: "1s", HANGAR_STANDBY_CHECKPOINT_AFTER: "1s", HANGAR_LXCFS_DIR: lxcfsDir };

beforeAll(async () => {
  h = await startHangar({ env: ENV });
  useSdkAgainst(h);
  ({ SandboxInstance } = await import("@blaxel/core"));
}, 180_000);

/** Removed after the server is gone (its uninstall needs the agent build it ran with). */
const leftovers: string[] = [];

afterAll(async () => {
  await h?.dispose();
  await new Lxcfs({ dir: lxcfsDir }).stop();
  for (const d of [...leftovers, lxcfsDir]) rmSync(d, { recursive: true, force: true });
});

describe("code inside a sandbox", () => {
  it("reaches its own sandbox API at localhost:8080 (processes, files), never another sandbox's, also after a restart and a park to disk", async () => {
    const a = await SandboxInstance.create({ name: "inside-a", memory: 512 });
    const b = await SandboxInstance.create({ name: "inside-b", memory: 512 });
    await a.fs.write("/tmp/mine.txt", "a's file");
    await a.process.exec({ name: "a-only", command: "sleep 600" });

    const check = async () => {
      // processes: the list includes the curl's own shell; a file op reads a's file
      const list = JSON.parse(await sh(a, "curl -sf http://localhost:8080/process")) as Array<{ name: string; command: string }>;
      expect(list.some((p) => p.command.includes("localhost:8080/process"))).toBe(true);
      expect(list.map((p) => p.name)).toContain("a-only");
      expect(await sh(a, "curl -sf 'http://localhost:8080/filesystem/%2Ftmp%2Fmine.txt?download=true'")).toBe("a's file");
      // a write through the relay lands in a's filesystem
      await sh(a, `curl -sf -X PUT -H 'content-type: application/json' -d '{"content":"via relay"}' 'http://localhost:8080/filesystem/%2Ftmp%2Frelay.txt'`);
      expect(await a.fs.read("/tmp/relay.txt")).toBe("via relay");
      // from b, localhost:8080 is b's API: a's file and processes are not there
      const fromB = await b.process.exec({ command: "curl -s -o /dev/null -w '%{http_code}' 'http://localhost:8080/filesystem/%2Ftmp%2Fmine.txt'", waitForCompletion: true });
      expect(fromB.stdout).toBe("404");
      const bList = JSON.parse(await sh(b, "curl -sf http://localhost:8080/process")) as Array<{ name: string }>;
      expect(bList.map((p) => p.name)).not.toContain("a-only");
      const kill = await b.process.exec({ command: "curl -s -o /dev/null -w '%{http_code}' -X DELETE http://localhost:8080/process/a-only", waitForCompletion: true });
      expect(kill.stdout).toBe("404");
      // drives (workspace resources) are not reachable from inside
      const drives = await a.process.exec({ command: "curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' -H 'content-type: application/json' http://localhost:8080/drives/mount", waitForCompletion: true });
      expect(drives.stdout).toBe("403");
    };
    await check();

    // after a server restart the socket is served again
    await h.stop();
    h = await h.restart();
    await check();

    // after a park (to disk where CRIU is installed) and a wake
    await parked("inside-a");
    await check();
    await a.delete();
    await b.delete();
  }, 240_000);
});

interface Health {
  version: string;
  upgradeCount: number;
  lastUpgrade: { status: string; step: string; version: string; error?: string };
}

async function health(name: string): Promise<Health> {
  return (await (await api(h, "GET", `/run/default/sandboxes/${name}/health`)).json()) as Health;
}

async function upgraded(name: string, count: number): Promise<Health> {
  const t0 = Date.now();
  for (;;) {
    const hl = await health(name);
    if (hl.lastUpgrade.status === "failed") throw new Error(`upgrade failed: ${hl.lastUpgrade.error}`);
    if (hl.upgradeCount === count && hl.lastUpgrade.status === "completed") return hl;
    if (Date.now() - t0 > 20_000) throw new Error(`no upgrade ${count}: ${JSON.stringify(hl)}\n${h.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("an operator upgrades the agent of live sandboxes", () => {
  it("sandbox.system.upgrade replaces the agent: a long process runs on with its output before and after, /health counts it, and it parks and wakes after", async () => {
    const sb = await SandboxInstance.create({ name: "upgrade-me", memory: 512 });
    await sb.process.exec({ name: "ticker", command: "sh -c 'i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done'" });
    await sb.process.exec({ name: "sleeper", command: "sleep 3600" });
    const h0 = await health("upgrade-me");
    expect(h0.upgradeCount).toBe(0);
    expect(h0.version).toMatch(/^0\.1\.0\+[0-9a-f]{16}$/);
    await new Promise((r) => setTimeout(r, 700));
    const before = await sb.process.logs("ticker", "stdout");
    expect(before).toContain("tick 2\n");

    // an unknown version is a clear 400; "latest" is this node's build
    await expect(sb.system.upgrade({ version: "v9.9.9" })).rejects.toThrow(/9\.9\.9/);
    expect((await api(h, "POST", "/run/default/sandboxes/upgrade-me/upgrade", { version: "v9.9.9" })).status).toBe(400);
    const t0 = performance.now();
    await sb.system.upgrade({ version: "latest" });
    const h1 = await upgraded("upgrade-me", 1);
    console.log(`sandbox.system.upgrade → /health upgradeCount 1 (polled every 100 ms): ${(performance.now() - t0).toFixed(0)} ms`);
    expect(h1.version).toBe(h0.version);

    const ticks = async () => Number(/tick (\d+)\n$/.exec(await sb.process.logs("ticker", "stdout"))![1]);
    const n1 = await ticks();
    await new Promise((r) => setTimeout(r, 600));
    const after = await sb.process.logs("ticker", "stdout");
    expect(after.startsWith(before)).toBe(true);
    expect(await ticks()).toBeGreaterThan(n1);
    expect((await sb.process.get("ticker")).status).toBe("running");
    expect((await sb.process.get("sleeper")).status).toBe("running");

    // parked to disk (CRIU) and woken after the upgrade: processes and count kept
    await parked("upgrade-me");
    expect((await sb.process.get("ticker")).status).toBe("running");
    expect((await health("upgrade-me")).upgradeCount).toBe(1);
    expect((await sb.process.logs("ticker", "stdout")).startsWith(after)).toBe(true);

    // the operator installs a new build and restarts the server: upgrade rolls it onto the live sandbox
    const dir = mkdtempSync(join(tmpdir(), "hangar-agent-next-"));
    const next = join(dir, "hangar-agent");
    copyFileSync(agentBinaryPath(), next);
    appendFileSync(next, `\nnext build ${Date.now()}\n`);
    const build = createHash("sha256").update(readFileSync(next)).digest("hex").slice(0, 16);
    leftovers.push(dir, join("/opt/hangar/agent", build));
    {
      await h.stop();
      h = await startHangar({ env: { ...ENV, HANGAR_AGENT_BINARY: next }, dataDir: h.dataDir, port: h.port, apiKey: h.apiKey, instance: h.instance });
      expect((await health("upgrade-me")).version).toBe(h0.version);
      await sb.system.upgrade({ version: build });
      const h2 = await upgraded("upgrade-me", 2);
      expect(h2.version).toBe(`0.1.0+${build}`);
      expect(await sh(sb, "tail -c 40 /.hangar/bin/hangar-agent")).toContain("next build");
      expect((await sb.process.get("ticker")).status).toBe("running");
      await sb.process.kill("sleeper");
      expect((await sb.process.wait("sleeper", { maxWait: 10_000 })).status).not.toBe("running");
      // and through the checkpointed tier again, now with the new binary bound
      await parked("upgrade-me");
      expect((await sb.process.get("ticker")).status).toBe("running");
      expect((await health("upgrade-me")).version).toBe(`0.1.0+${build}`);
      await sb.delete();
    }
  }, 240_000);
});

describe("code inside a sandbox sees its own limits", () => {
  it("free -m and /proc/meminfo show the sandbox's 512 MB and MemAvailable drops as it allocates; also after lxcfs dies and after a park to disk", async () => {
    const sb = await SandboxInstance.create({ name: "limits", memory: 512 });
    const totalMb = async () => Number(/Mem:\s+(\d+)/.exec(await sh(sb, "free -m"))![1]);
    const availKb = async () => Number(/MemAvailable:\s+(\d+) kB/.exec(await sh(sb, "cat /proc/meminfo"))![1]);
    expect(await totalMb()).toBe(512);
    const a0 = await availKb();
    expect(a0).toBeLessThanOrEqual(512 * 1024);
    await sb.process.exec({ name: "hog", command: "python3 -c 'import time; b = b\"x\" * (200 << 20); print(\"held\", flush=True); time.sleep(600)'" });
    const t0 = Date.now();
    while (!(await sb.process.logs("hog", "stdout")).includes("held") && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
    const a1 = await availKb();
    expect(a0 - a1).toBeGreaterThan(150 * 1024);
    // CPU: the sandbox's quota (0.25 CPU at 512 MB) as whole CPUs
    // (and its own CPU set: nproc and Node's availableParallelism read the affinity mask)
    const cpus = Number((await sh(sb, "grep -c ^processor /proc/cpuinfo")).trim());
    const online = (await sh(sb, "cat /sys/devices/system/cpu/online")).trim();
    const nproc = async () => Number((await sh(sb, "nproc")).trim());
    const [parallelism, nodeTotalMb] = (await sh(sb, "node -p 'os.availableParallelism() + \" \" + (os.totalmem() >> 20)'")).trim().split(" ").map(Number);
    console.log(`inside a 512 MB sandbox: free -m total ${await totalMb()} MB; MemAvailable ${a0} kB, ${a1} kB with 200 MB held; /proc/cpuinfo ${cpus} CPUs, online ${online}, nproc ${await nproc()}, availableParallelism ${parallelism}, os.totalmem ${nodeTotalMb} MB`);
    expect(cpus).toBe(1);
    expect(online).toMatch(/^\d+$/);
    expect(await nproc()).toBe(1);
    expect(parallelism).toBe(1);
    expect(nodeTotalMb).toBe(512);

    // lxcfs dies: reads fail (never the host's numbers) until the server starts it again and binds it again
    const pid = Number(readFileSync(`${lxcfsDir}.pid`, "utf8"));
    process.kill(pid, "SIGKILL");
    const t1 = Date.now();
    let seen = "";
    for (;;) {
      const r = await sb.process.exec({ command: "cat /proc/meminfo", waitForCompletion: true });
      seen = r.stdout ?? "";
      if (r.exitCode === 0) {
        expect(Number(/MemTotal:\s+(\d+) kB/.exec(seen)![1])).toBe(512 * 1024);
        break;
      }
      if (Date.now() - t1 > 20_000) throw new Error(`meminfo not back within 20 s: ${r.stderr}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    console.log(`lxcfs killed: meminfo back in the sandbox after ${Date.now() - t1} ms`);
    expect(Number(readFileSync(`${lxcfsDir}.pid`, "utf8"))).not.toBe(pid);

    // through the checkpointed tier (bind mounts of lxcfs files in the CRIU images)
    await parked("limits");
    expect(await totalMb()).toBe(512);
    expect(await nproc()).toBe(1);
    expect((await sb.process.get("hog")).status).toBe("running");
    await sb.delete();
  }, 120_000);

  it.skipIf(!existsSync("/usr/bin/runsc"))("under gVisor, its kernel shows the sandbox's memory itself (and localhost:8080 works)", async () => {
    const res = await api(h, "POST", "/v0/sandboxes", { metadata: { name: "limits-gvisor" }, spec: { runtime: { memory: 512, runtimeClass: "gvisor" } } });
    expect(res.status).toBe(200);
    const sb = await SandboxInstance.get("limits-gvisor");
    const free = await sh(sb, "free -m");
    const cpus = (await sh(sb, "grep -c ^processor /proc/cpuinfo")).trim();
    const nproc = (await sh(sb, "nproc")).trim();
    console.log(`inside a 512 MB gVisor sandbox: ${free.split("\n")[1]}; /proc/cpuinfo ${cpus} CPUs, nproc ${nproc}`);
    expect([cpus, nproc]).toEqual(["1", "1"]);
    expect(Number(/Mem:\s+(\d+)/.exec(free)![1])).toBeLessThanOrEqual(512);
    // the in-sandbox API works under gVisor too
    const list = JSON.parse(await sh(sb, "curl -sf http://localhost:8080/process")) as Array<{ command: string }>;
    expect(list.some((p) => p.command.includes("localhost:8080/process"))).toBe(true);
    await sb.delete();
  }, 60_000);
});
