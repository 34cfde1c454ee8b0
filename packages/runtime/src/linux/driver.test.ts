// Lifecycle of the linux driver against the real kernel (root, crun, cgroup v1).

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { existsSync, promises as fs, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { connect } from "node:net";
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { lookup } from "node:dns/promises";
import { LinuxDriver, findCommand } from "./driver.js";
import { CAPABILITIES } from "./config.js";
import type { SandboxHandle } from "../driver.js";
import { linuxDriverAvailable, testDriverOptions, freshDriver, spec, agentSh, agentRun } from "./testkit.js";
import { sleep } from "./proc.js";

const opts = testDriverOptions("drv", 1);

/** CapEff bitmask of the sandbox's capability set. */
function capMask(): bigint {
  const bits: Record<string, number> = {
    CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_FOWNER: 3, CAP_FSETID: 4, CAP_KILL: 5, CAP_SETGID: 6, CAP_SETUID: 7,
    CAP_SETPCAP: 8, CAP_NET_BIND_SERVICE: 10, CAP_SYS_CHROOT: 18, CAP_SETFCAP: 31,
  };
  return CAPABILITIES.reduce((m, c) => m | (1n << BigInt(bits[c]!)), 0n);
}

describe.skipIf(!linuxDriverAvailable())("LinuxDriver (crun)", () => {
  let d: LinuxDriver;
  const handles = new Map<string, SandboxHandle>();
  const keep = (h: SandboxHandle | null) => {
    if (h) handles.set(h.id, h);
    return h!;
  };

  beforeAll(async () => {
    d = await freshDriver(opts);
  }, 300_000);

  afterAll(async () => {
    await d?.purge();
  }, 60_000);

  const sh = (id: string, script: string) => agentSh(handles.get(id)!, script);

  it("creates a sandbox: hostname, env, agent as PID 1, address, limits, restrictions", async () => {
    const h = keep(await d.create(spec("d1", { envs: { FOO: "bar baz", HOME: "/override" }, memoryMb: 256 })));
    const info = await h.agent.info();
    expect(info.pid).toBe(1);
    expect(info.hostname).toBe("sb-d1");
    expect(h.id).toBe("d1");
    expect(h.address).toMatch(/^10\.89\.1\.\d+$/);
    expect(h.env).toMatchObject({ FOO: "bar baz", HOME: "/override", PATH: expect.stringContaining("/usr/bin") });
    expect(h.image.home).toBe("/blaxel");

    const r = await sh("d1", 'hostname; echo "$FOO"; tr "\\0" " " < /proc/1/cmdline; echo; cat /etc/hostname; grep -c nameserver /etc/resolv.conf');
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe("sb-d1");
    expect(lines[1]).toBe("bar baz");
    expect(lines[2]).toContain("/.hangar/bin/hangar-agent --socket /.hangar/run/agent.sock --api-port 8080 --api-socket /.hangar/run/api.sock");
    expect(lines[3]).toBe("sb-d1");

    // PID 1 (the agent) is what every process inherits from
    const st = await sh("d1", "grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd):' /proc/1/status; cat /proc/self/uid_map");
    expect(st.stdout).toMatch(/NoNewPrivs:\s+1/);
    expect(st.stdout).toMatch(/Seccomp:\s+2/);
    const capEff = BigInt("0x" + /CapEff:\s+([0-9a-f]+)/.exec(st.stdout)![1]);
    expect(capEff).toBe(capMask());
    expect(st.stdout).toMatch(/^\s*0\s+1000000000\s+65536$/m);

    const lim = await sh(
      "d1",
      "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/memory/memory.swappiness; df -k / | tail -1",
    );
    const [mem, pids, quota, swappiness, df] = lim.stdout.trim().split("\n");
    expect(Number(mem)).toBe(256 * 1024 * 1024);
    expect(Number(pids)).toBe(1024);
    expect(Number(quota)).toBe(25_000); // 256 MB → 1/8 vCPU, floored at 1/4
    expect(Number(swappiness)).toBe(0);
    expect(Number(df!.trim().split(/\s+/)[1])).toBe(128 * 1024); // upper tmpfs = half the memory

    const stats = await d.stats("d1");
    expect(stats.memoryLimitBytes).toBe(256 * 1024 * 1024);
    expect(stats.pids).toBeGreaterThanOrEqual(1);
    expect(stats.cpuNanos).toBeGreaterThan(0);
    expect(await d.state("d1")).toBe("running");
    expect(await d.list()).toContain("d1");
  });

  it("rejects a duplicate id, an unknown image and bad ids before creating anything", async () => {
    await expect(d.create(spec("d1"))).rejects.toMatchObject({ code: "sandbox_already_exists" });
    await expect(d.create(spec("d2", { image: "nope/nope:1" }))).rejects.toMatchObject({ code: "invalid_image" });
    expect(existsSync(`${opts.runDir}/b/d2`)).toBe(false);
    expect(() => d.create(spec("../x"))).toThrow();
    expect(await d.state("nope")).toBe("missing");
  });

  it("restart applies the new env and keeps files", async () => {
    expect((await sh("d1", "echo kept > /blaxel/file && mkdir -p /data && echo top > /data/x")).code).toBe(0);
    const pid1 = await d.hostPid("d1");
    const h = keep(await d.restart("d1", spec("d1", { envs: { FOO: "new" }, memoryMb: 256 })));
    expect(h.env.FOO).toBe("new");
    expect(await d.hostPid("d1")).not.toBe(pid1);
    const r = await sh("d1", 'echo "$FOO"; cat /blaxel/file /data/x');
    expect(r.stdout).toBe("new\nkept\ntop\n");
  });

  it("freezes and thaws in milliseconds, keeping processes", async () => {
    await sh("d1", "nohup sleep 1000 >/dev/null 2>&1 &");
    await d.freeze("d1");
    expect(await d.state("d1")).toBe("frozen");
    const t0 = performance.now();
    await d.thaw("d1");
    const r = await sh("d1", "for p in /proc/[0-9]*; do cat $p/comm; done | sort | uniq -c");
    expect(performance.now() - t0).toBeLessThan(100); // thaw + a round trip through the agent
    expect(await d.state("d1")).toBe("running");
    expect(r.stdout).toMatch(/sleep/);
  });

  it("the host reaches a sandbox port at its address; DNS works inside", async () => {
    const h = keep(await d.create(spec("d3")));
    // a TCP echo server inside (perl-base is in every Debian image)
    void agentRun(h, ["perl", "-MIO::Socket::INET", "-e", 'my $s=IO::Socket::INET->new(LocalPort=>7777,Listen=>5,ReuseAddr=>1) or die; while(my $c=$s->accept){print $c "hello from inside\\n"; close $c}'], { timeoutMs: 60_000 });
    let got = "";
    for (let i = 0; i < 100 && !got; i++) {
      got = await new Promise<string>((resolve) => {
        const c = connect(7777, h.address);
        let buf = "";
        c.on("data", (b) => (buf += b.toString()));
        c.on("end", () => resolve(buf));
        c.on("error", () => resolve(""));
      });
      if (!got) await sleep(50);
    }
    expect(got).toBe("hello from inside\n");
    // only Hangar (root) opens connections to sandboxes: another user of the host reaches nothing
    const other = spawnSync("setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups", "perl", "-MIO::Socket::INET", "-e", `exit(IO::Socket::INET->new(PeerAddr=>"${h.address}",PeerPort=>7777,Timeout=>2) ? 0 : 3)`], { encoding: "utf8" });
    expect(other.status).toBe(3);

    const hostResolves = await lookup("deb.debian.org").then(() => true, () => false);
    if (hostResolves) {
      const r = await sh("d3", "getent hosts deb.debian.org");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/deb\.debian\.org/);
    }
  });

  it("adopts sandboxes after a server restart, restarting a dead container with its files", async () => {
    await sh("d3", "echo survived > /root/mark");
    // "restart" the server: a new driver instance over the same directories
    await d.close();
    const d2 = new LinuxDriver(opts);
    await d2.preflight();
    expect((await d2.list()).sort()).toEqual(["d1", "d3"]);
    const h1 = keep(await d2.adopt(spec("d1", { envs: { FOO: "new" } })));
    expect((await sh("d1", "cat /blaxel/file")).stdout).toBe("kept\n");
    expect(h1?.address).toMatch(/^10\.89\.1\./);
    expect(await d2.state("d1")).toBe("running");

    // d3's container dies while nobody watches; adopt starts it again with its files
    const pid = await d2.hostPid("d3");
    process.kill(pid!, "SIGKILL");
    for (let i = 0; i < 100 && (await d2.state("d3")) !== "stopped"; i++) await sleep(20);
    expect(await d2.state("d3")).toBe("stopped");
    const h3 = keep(await d2.adopt(spec("d3")));
    expect(h3).not.toBeNull();
    expect(await d2.state("d3")).toBe("running");
    expect((await sh("d3", "cat /root/mark")).stdout).toBe("survived\n");
    // d3 started again by the new driver is placed beside the adopted d1, not on its CPU
    const cpuset = (id: string) => readFileSync(`/sys/fs/cgroup/cpuset/${opts.cgroupParent}/${id}/cpuset.cpus`, "utf8").trim();
    if (existsSync(`/sys/fs/cgroup/cpuset/${opts.cgroupParent}/d1`) && availableParallelism() > 1) {
      expect(cpuset("d1")).toMatch(/^\d+$/);
      expect(cpuset("d3")).toMatch(/^\d+$/);
      expect(cpuset("d3")).not.toBe(cpuset("d1"));
    }
    expect(await d2.adopt(spec("zzzz"))).toBeNull();
    d = d2;
  });

  it("creates and destroys sandboxes in parallel", async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `p${i}`);
    const hs = await Promise.all(ids.map((id) => d.create(spec(id))));
    expect(new Set(hs.map((h) => h.address)).size).toBe(8);
    const outs = await Promise.all(hs.map((h) => agentSh(h, "hostname")));
    expect(outs.map((o) => o.stdout.trim())).toEqual(ids.map((id) => `sb-${id}`));
    await Promise.all(ids.map((id) => d.destroy(id)));
    for (const id of ids) expect(await d.state(id)).toBe("missing");
  });

  it("destroy removes every trace", async () => {
    const rec = JSON.parse(await fs.readFile(`${opts.stateDir}/sandboxes/d3.json`, "utf8")) as { slot: number };
    const slot = d.network!.slot(rec.slot);
    const traces = [
      `${opts.runDir}/b/d3`,
      `${opts.runDir}/s/d3`,
      `${opts.runDir}/crun/d3`,
      `${opts.stateDir}/sandboxes/d3.json`,
      slot.netnsPath,
      ...["memory", "pids", "cpu", "freezer", "devices"].map((c) => `/sys/fs/cgroup/${c}/${opts.cgroupParent}/d3`),
    ];
    for (const t of traces) expect(existsSync(t), t).toBe(true);
    await d.destroy("d3");
    for (const t of traces) expect(existsSync(t), t).toBe(false);
    const mounts = await fs.readFile("/proc/self/mountinfo", "utf8");
    expect(mounts).not.toContain(`${opts.runDir}/b/d3`);
    // the host veth goes away with the netns, asynchronously
    for (let i = 0; i < 100 && existsSync(`/sys/class/net/${slot.hostIf}`); i++) await sleep(20);
    expect(existsSync(`/sys/class/net/${slot.hostIf}`)).toBe(false);
    expect(await d.state("d3")).toBe("missing");
    await d.destroy("d3"); // idempotent
  });
});

describe.skipIf(!linuxDriverAvailable())("LinuxDriver without a user namespace", () => {
  const o = testDriverOptions("drvu", 2, { userns: false });
  let d: LinuxDriver;
  beforeAll(async () => {
    d = await freshDriver(o);
  }, 300_000);
  afterAll(async () => {
    await d?.purge();
  }, 60_000);

  it("runs with host uids and the same restrictions", async () => {
    const h = await d.create(spec("u1"));
    const r = await agentRun(h, ["sh", "-c", "cat /proc/self/uid_map; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; touch /etc/x && echo ok"]);
    expect(r.stdout).toMatch(/^\s*0\s+0\s+4294967295$/m);
    expect(r.stdout).toMatch(/NoNewPrivs:\s+1/);
    expect(r.stdout).toContain("ok");
    await d.destroy("u1");
  });
});

describe.skipIf(!linuxDriverAvailable() || !findCommand("runsc"))("LinuxDriver, runtime class gvisor (runsc)", () => {
  const o = testDriverOptions("drvg", 4);
  let d: LinuxDriver;
  beforeAll(async () => {
    d = await freshDriver(o);
  }, 300_000);
  afterAll(async () => {
    await d?.purge();
  }, 60_000);

  it("runs the agent under gVisor's kernel with the same interface", async () => {
    const h = await d.create(spec("g1", { runtimeClass: "gvisor", envs: { FOO: "g" } }));
    expect((await h.agent.info()).hostname).toBe("sb-g1");
    const r = await agentSh(h, 'uname -r; echo "$FOO"; mount -t tmpfs x /mnt; echo m=$?; unshare -U true; echo u=$?; echo kept > /blaxel/f');
    expect(r.stdout).toMatch(/^4\.4\.0\ng\n/); // gVisor reports its own kernel
    expect(r.stdout).toMatch(/m=[1-9]/);
    expect(r.stdout).toMatch(/u=[1-9]/);
    expect(await d.state("g1")).toBe("running");
    expect((await d.stats("g1")).memoryLimitBytes).toBe(256 * 1024 * 1024);

    // network policy is the host's: the sandbox cannot open connections to its gateway
    const gw = h.address.replace(/\d+$/, (n) => String(Number(n) - 1));
    const t = await agentRun(h, ["timeout", "2", "bash", "-c", `exec 3<>/dev/tcp/${gw}/22`]);
    expect(t.code).not.toBe(0);

    await d.freeze("g1");
    expect(await d.state("g1")).toBe("frozen");
    await d.thaw("g1");
    const h2 = await d.restart("g1", spec("g1", { runtimeClass: "gvisor", envs: { FOO: "h" } }));
    expect((await agentSh(h2, 'echo "$FOO"; cat /blaxel/f')).stdout).toBe("h\nkept\n");
    await d.destroy("g1");
    expect(await d.state("g1")).toBe("missing");
    expect(existsSync(`${o.runDir}/b/g1`)).toBe(false);
    for (const c of ["memory", "pids"]) expect(existsSync(`/sys/fs/cgroup/${c}/${o.cgroupParent}/g1`)).toBe(false);
  }, 60_000);
});

describe.skipIf(!linuxDriverAvailable())("LinuxDriver after kill -9 of the server", () => {
  const o = testDriverOptions("drvk", 5);
  afterAll(async () => {
    await new LinuxDriver(o).purge();
  }, 60_000);

  it("finds the sandbox again with its processes and files", async () => {
    await freshDriver(o).then((d) => d.close());
    const child = spawn(process.execPath, ["--conditions=hangar-source", "--import", "tsx", fileURLToPath(new URL("./kill9-child.ts", import.meta.url)), "drvk", "5", "k1"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on("data", (b: Buffer) => b.toString().includes("ready") && resolve());
      child.on("exit", (c) => reject(new Error(`child exited ${c}`)));
    });
    child.removeAllListeners("exit");
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));

    const d = new LinuxDriver(o);
    await d.preflight();
    expect(await d.list()).toEqual(["k1"]);
    expect(await d.state("k1")).toBe("running");
    const h = await d.adopt(spec("k1"));
    expect(h).not.toBeNull();
    const r = await agentSh(h!, "cat /blaxel/mark; for p in /proc/[0-9]*; do cat $p/comm; done | grep -c sleep");
    expect(r.stdout).toBe("before-kill\n1\n");
    await d.destroy("k1");
    expect(await d.list()).toEqual([]);
    await d.close();
  }, 60_000);
});
