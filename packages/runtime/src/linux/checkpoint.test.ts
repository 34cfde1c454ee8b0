// Checkpointed standby tier (CRIU) against the real kernel: a sandbox with a server holding state
// in memory, a TCP connection open from the host and files in its writable layer is dumped to disk
// (memory freed, tmpfs gone) and restored with all of that intact, several times; destroy after a
// checkpoint leaves no trace; a restore that fails falls back to a cold start with the files. The
// agent is built into a 0700 directory, as in a checkout under /root: what sandboxes bind must not
// come from there. Runs where CRIU ≥ 4.2 is installed (criu-install.sh); skipped with the reason
// otherwise.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { existsSync, mkdtempSync, copyFileSync, promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { agentBinaryPath } from "@hangar/sandbox-agent";
import { connect, type Socket } from "node:net";
import { LinuxDriver } from "./driver.js";
import { DEFAULT_CRIU_DIR } from "./criu.js";
import { mountTable } from "./crun.js";
import * as cg from "./cgroups.js";
import type { SandboxHandle } from "../driver.js";
import { linuxDriverAvailable, testDriverOptions, freshDriver, spec, agentSh } from "./testkit.js";
import { sleep } from "./proc.js";

// the agent as a checkout under a 0700 home holds it (mkdtemp makes 0700 dirs)
const privateDir = mkdtempSync(`${tmpdir()}/hangar-private-checkout-`);
if (existsSync(agentBinaryPath())) copyFileSync(agentBinaryPath(), `${privateDir}/hangar-agent`);
const opts = testDriverOptions("ckp", 7, {
  agentBinary: `${privateDir}/hangar-agent`,
  ...(process.env.HANGAR_TEST_LOG ? { logger: (await import("pino")).pino({ level: "info" }) } : {}),
});
// skipped only when CRIU is not installed (scripts/ensure.sh test installs it); an installed CRIU
// that does not work fails the tests
const criuMissing = !existsSync(`${DEFAULT_CRIU_DIR}/criu`);
const skip = !linuxDriverAvailable() || criuMissing;
if (skip) console.warn(`[checkpoint.test] skipped: ${criuMissing ? `CRIU is not installed (${DEFAULT_CRIU_DIR}; run packages/runtime/src/linux/criu-install.sh)` : "needs root, crun and cgroup v1"}`);

/**
 * A counter server in the sandbox (python3): every line received on a connection adds one to a
 * counter held in memory and gets the new value back; GET /n over a new connection returns it.
 */
const SERVER = `
import socket, threading
n = 0
lock = threading.Lock()
def serve(c):
    global n
    f = c.makefile("rwb", buffering=0)
    for line in f:
        with lock:
            n += 1
            v = n
        f.write(b"%d\\n" % v)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

/** Line-oriented client on a socket: send a line, wait for one line back. */
class LineClient {
  private buf = "";
  private waiting: ((l: string) => void)[] = [];
  constructor(readonly sock: Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        this.waiting.shift()?.(line);
      }
    });
  }
  static open(host: string, port: number): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, host, () => resolve(new LineClient(s)));
      s.once("error", reject);
    });
  }
  ask(line: string, timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer to ${line} in ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((l) => {
        clearTimeout(t);
        resolve(l);
      });
      this.sock.write(`${line}\n`);
    });
  }
}

async function waitPort(host: string, port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, host, () => {
        s.destroy();
        r(true);
      });
      s.once("error", () => r(false));
    });
    if (ok) return;
    await sleep(25);
  }
  throw new Error(`${host}:${port} never opened`);
}

describe.skipIf(skip)("LinuxDriver checkpoint/restore (CRIU)", () => {
  let d: LinuxDriver;

  beforeAll(async () => {
    d = await freshDriver(opts);
    expect(d.capabilities.checkpoint, `checkpointed tier off: ${d.checkpointReason}`).toBe(true);
  }, 300_000);

  afterAll(async () => {
    await d?.purge();
    await fs.rm(privateDir, { recursive: true, force: true });
  }, 60_000);

  it("checkpoints a sandbox to disk and restores it with memory, connections, files and processes intact, several times", async () => {
    const h: SandboxHandle = await d.create(spec("c1", { memoryMb: 256 }));
    const id = h.id;
    // the agent is bound from its installed copy, not from the private checkout
    const config = JSON.parse(await fs.readFile(`${opts.runDir}/b/${id}/config.json`, "utf8")) as { mounts: { destination: string; source: string }[] };
    const agentMount = config.mounts.find((m) => m.destination === "/.hangar/bin/hangar-agent");
    expect(agentMount?.source).toMatch(/^\/opt\/hangar\/agent\/[0-9a-f]{16}\/hangar-agent$/);
    expect((await fs.stat(privateDir)).mode & 0o777).toBe(0o700);
    await agentSh(h, "mkdir -p /data && echo hello > /data/a.txt && head -c 3000000 /dev/urandom > /data/big && rm -f /etc/motd && sha256sum /data/big > /data/big.sum");
    // the server and a second long-running process, started through the agent
    const srv = await h.agent.spawn({ argv: ["python3", "-c", SERVER], env: h.env, cwd: "/", tag: Buffer.from("server") });
    const sleeper = await h.agent.spawn({ argv: ["sleep", "100000"], env: h.env, cwd: "/" });
    await waitPort(h.address, 7000);
    const conn = await LineClient.open(h.address, 7000);
    expect(await conn.ask("x")).toBe("1");
    expect(await conn.ask("x")).toBe("2");
    const before = await h.agent.info();
    const memBefore = (await d.stats(id)).memoryBytes;
    expect(memBefore).toBeGreaterThan(3_000_000);

    let count = 2;
    const rounds: { dump: number; restore: number }[] = [];
    for (let round = 0; round < 3; round++) {
      const t0 = performance.now();
      await d.checkpoint(id);
      const dumpMs = performance.now() - t0;
      expect(await d.state(id)).toBe("checkpointed");
      // memory freed: no task, no cgroup, no tmpfs
      expect(await cg.cgroupPids(d.cgroupPath(id))).toEqual([]);
      expect(existsSync(cg.cgDir("memory", d.cgroupPath(id)))).toBe(false);
      const mounts = await mountTable();
      expect(mounts.has(`${opts.runDir}/b/${id}/rw`)).toBe(false);
      expect(mounts.has(`${opts.runDir}/b/${id}/rootfs`)).toBe(false);
      expect(existsSync(`${d.checkpointDir(id)}/files.tar`)).toBe(true);
      const rec = JSON.parse(await fs.readFile(`${opts.stateDir}/sandboxes/${id}.json`, "utf8"));
      expect(rec.checkpoint.imageBytes).toBeGreaterThan(0);

      const t1 = performance.now();
      const h2 = await d.restore(id);
      const restoreMs = performance.now() - t1;
      rounds.push({ dump: dumpMs, restore: restoreMs });
      expect(h2).toBe(h); // the same handle and AgentClient
      expect(await d.state(id)).toBe("running");
      expect(existsSync(d.checkpointDir(id))).toBe(false);
      // the open connection carries on with the in-memory counter
      expect(await conn.ask("x")).toBe(String(++count));
      // same address, new connections work
      const c2 = await LineClient.open(h.address, 7000);
      expect(await c2.ask("y")).toBe(String(++count));
      c2.sock.destroy();
      // the same agent (instance), its processes, the files
      const info = await h.agent.info();
      expect(info.instance).toBe(before.instance);
      const procs = await h.agent.listProcesses();
      expect(procs.find((p) => p.id === srv.id)?.running).toBe(true);
      expect(procs.find((p) => p.id === sleeper.id)?.running).toBe(true);
      const f = await agentSh(h, "cat /data/a.txt; sha256sum -c /data/big.sum >/dev/null && echo sum-ok; test -e /etc/motd || echo motd-gone; ip -4 -o addr show eth0 | awk '{print $4}'");
      expect(f.stdout.split("\n")).toEqual(["hello", "sum-ok", "motd-gone", `${h.address}/30`, ""]);
      // files written after a restore are kept by the next checkpoint
      await agentSh(h, `echo round${round} >> /data/rounds`);
    }
    expect((await agentSh(h, "cat /data/rounds")).stdout).toBe("round0\nround1\nround2\n");
    console.log(`[checkpoint] dump/restore ms: ${rounds.map((r) => `${r.dump.toFixed(0)}/${r.restore.toFixed(0)}`).join(", ")}; memory before ${memBefore} B`);
    conn.sock.destroy();
    await d.destroy(id);
  }, 180_000);

  it("checkpoints a frozen sandbox; a new driver (server restart) adopts it on disk and restores it on wake with the same handle; destroy after a checkpoint leaves no trace", async () => {
    const h = await d.create(spec("c2", { memoryMb: 128 }));
    const id = h.id;
    await agentSh(h, "echo kept > /root/f");
    const p = await h.agent.spawn({ argv: ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/tick; sleep 0.05; done"], env: h.env, cwd: "/" });
    await d.freeze(id);
    await d.checkpoint(id);
    expect(await d.state(id)).toBe("checkpointed");
    const rec = JSON.parse(await fs.readFile(`${opts.stateDir}/sandboxes/${id}.json`, "utf8"));
    expect(rec.checkpoint).toMatchObject({ cgroups: expect.any(Array), imageBytes: expect.any(Number) });

    // the server goes away; a new one adopts the checkpointed sandbox (still on disk), then wakes it
    await d.close();
    d = new LinuxDriver(opts);
    await d.preflight();
    expect(await d.state(id)).toBe("checkpointed");
    const h2 = (await d.adopt(spec(id, { memoryMb: 128 })))!;
    expect(h2).not.toBeNull();
    expect(h2.address).toBe(h.address);
    expect(await d.state(id)).toBe("checkpointed");
    expect(h2.agent.connected).toBe(false);
    expect(await d.restore(id)).toBe(h2);
    expect(await d.state(id)).toBe("running");
    const procs = await h2.agent.listProcesses();
    expect(procs.find((x) => x.id === p.id)?.running).toBe(true);
    const a = Number((await agentSh(h2, "cat /tmp/tick")).stdout);
    await sleep(300);
    const b = Number((await agentSh(h2, "cat /tmp/tick; cat /root/f")).stdout.split("\n")[0]);
    expect(b).toBeGreaterThan(a); // the loop runs again
    expect((await agentSh(h2, "cat /root/f")).stdout).toBe("kept\n");
    // the restored sandbox can be restarted (fresh processes on the same files and netns)
    const h3 = await d.restart(id, spec(id, { memoryMb: 128, envs: { X: "1" } }));
    expect((await agentSh(h3, "echo $X; cat /root/f; ip -4 -o addr show eth0 | awk '{print $4}'")).stdout).toBe(`1\nkept\n${h.address}/30\n`);

    // checkpointed, then destroyed: no images, mounts, cgroups, netns or veth are left
    await d.checkpoint(id);
    const slot = JSON.parse(await fs.readFile(`${opts.stateDir}/sandboxes/${id}.json`, "utf8")).slot as number;
    await d.destroy(id);
    expect(await d.state(id)).toBe("missing");
    expect(existsSync(d.checkpointDir(id))).toBe(false);
    expect(existsSync(`${opts.stateDir}/sandboxes/${id}.json`)).toBe(false);
    expect(existsSync(`${opts.runDir}/b/${id}`)).toBe(false);
    const mounts = await mountTable();
    expect([...mounts.keys()].filter((m) => m.includes(`/${id}/`) || m.endsWith(`/${id}`))).toEqual([]);
    for (const h of await cg.mountedHierarchies()) expect(existsSync(cg.cgDir(h, d.cgroupPath(id)))).toBe(false);
    expect(existsSync(`/run/netns/tckpn${slot}`)).toBe(false);
    for (let i = 0; i < 50 && existsSync(`/sys/class/net/tckpv${slot}`); i++) await sleep(20);
    expect(existsSync(`/sys/class/net/tckpv${slot}`)).toBe(false);
  }, 180_000);

  it("a restore that fails (damaged checkpoint image) is retried, then the sandbox starts again with its files and says its processes were lost", async () => {
    const h = await d.create(spec("c3", { memoryMb: 128 }));
    const id = h.id;
    await agentSh(h, "mkdir -p /work && echo precious > /work/notes.txt && head -c 200000 /dev/urandom > /work/blob && sha256sum /work/blob > /work/blob.sum");
    await h.agent.spawn({ argv: ["sleep", "100000"], env: h.env, cwd: "/" });
    await d.freeze(id);
    await d.checkpoint(id);
    // damage the process images: CRIU cannot restore from them
    const img = `${d.checkpointDir(id)}/img`;
    for (const f of await fs.readdir(img)) if (/^(core|pagemap|mm)-/.test(f)) await fs.writeFile(`${img}/${f}`, "damaged");

    const h2 = await d.restore(id);
    expect(h2).not.toBe(h); // a new agent: the old processes are gone
    expect(h2.recovered).toMatch(/restore from disk failed .*processes were lost/);
    expect(h2.address).toBe(h.address);
    expect(await d.state(id)).toBe("running");
    expect(existsSync(d.checkpointDir(id))).toBe(false);
    const rec = JSON.parse(await fs.readFile(`${opts.stateDir}/sandboxes/${id}.json`, "utf8"));
    expect(rec.checkpoint).toBeUndefined();
    const f = await agentSh(h2, "cat /work/notes.txt; cd /work && sha256sum -c blob.sum >/dev/null && echo sum-ok; ip -4 -o addr show eth0 | awk '{print $4}'");
    expect(f.stdout).toBe(`precious\nsum-ok\n${h.address}/30\n`);
    expect((await h2.agent.listProcesses()).filter((p) => p.running)).toEqual([]);
    // the recovered sandbox parks and wakes normally again
    await agentSh(h2, "echo again > /work/second");
    await d.freeze(id);
    await d.checkpoint(id);
    const h3 = await d.restore(id);
    expect(h3).toBe(h2);
    expect((await agentSh(h3, "cat /work/notes.txt /work/second")).stdout).toBe("precious\nagain\n");
    await d.destroy(id);
  }, 180_000);
});
