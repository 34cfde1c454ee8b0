// Escape and containment suite: each test is one attack run from inside a sandbox (through its
// agent). Every attack must fail inside and leave the host and the other sandbox working.
// Targets on the host are real: listeners on loopback, on the sandboxes' gateway addresses and on
// all interfaces, and a test-made network namespace that owns 169.254.169.254 and is routed from
// the host — each is first shown reachable from the host, so a failure inside is the sandbox's
// boundary (Hangar's nft rules, namespaces, seccomp, cgroups), not a missing target.
//
// The same attacks run against both runtime classes: "default" (crun) and "gvisor" (runsc, skipped
// only where runsc is not installed). Under gVisor the attacker talks to gVisor's own kernel (the
// Sentry), so a few attacks end differently; those tests say how, and assert what matters there:
// nothing reaches the host or the neighbour. Found with runsc 20221219 (Debian's): syscalls denied
// by Hangar's profile fail with EPERM there too (runsc --oci-seccomp applies it in the Sentry);
// coreutils' statx (ls, stat, mount(8)) fails with EINVAL (gVisor rejects AT_NO_AUTOMOUNT), so
// these tests use globs, perl and raw syscalls; /proc/<pid>/status has no NoNewPrivs line; and a
// memory bomb gets the Sentry OOM-killed in the sandbox's memory cgroup: the whole sandbox stops.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { promises as fs, statfsSync } from "node:fs";
import { createServer, connect, type Server } from "node:net";
import { createServer as createHttpServer } from "node:http";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { networkInterfaces } from "node:os";
import { randomBytes } from "node:crypto";
import type { RuntimeClass, RuntimeSandboxSpec, SandboxHandle } from "../driver.js";
import { LinuxDriver, findCommand, type LinuxDriverOptions } from "./driver.js";
import { linuxDriverAvailable, testDriverOptions, freshDriver, spec as baseSpec, agentSh, agentRun } from "./testkit.js";
import { sleep } from "./proc.js";
import * as cg from "./cgroups.js";

/** Each runtime class gets its own test driver (run dir, cgroups, veth names, nft table, range). */
const CLASSES: Array<{ runtimeClass: RuntimeClass; name: string; net: number }> = [
  { runtimeClass: "default", name: "esc", net: 3 },
  { runtimeClass: "gvisor", name: "escg", net: 6 },
];
const META_NS = "tescmeta";
const META_HOST_IF = "tescm0";

/** Exit of `bash -c 'exec 3<>/dev/tcp/ip/port'` inside: 0 = connected. */
async function tcpFrom(h: SandboxHandle, ip: string, port: number): Promise<number | null> {
  const r = await agentRun(h, ["timeout", "2", "bash", "-c", `exec 3<>/dev/tcp/${ip}/${port}`]);
  return r.code;
}

function tcpFromHost(ip: string, port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ host: ip, port });
    const t = setTimeout(() => {
      c.destroy();
      resolve(false);
    }, timeoutMs);
    c.on("connect", () => {
      clearTimeout(t);
      c.destroy();
      resolve(true);
    });
    c.on("error", () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve((server.address() as { port: number }).port));
  });
}

/** The host's own IPv4 addresses outside Hangar's and this test's links (eth0 and the like). */
function hostIPv4s(): string[] {
  return Object.entries(networkInterfaces())
    .filter(([name]) => !/^(t[a-z]+v\d+|hgv\d+|tescm0)$/.test(name))
    .flatMap(([, addrs]) => addrs ?? [])
    .filter((a) => a.family === "IPv4" && !a.internal)
    .map((a) => a.address)
    .slice(0, 4);
}

function ipRun(args: string[]): void {
  spawnSync("ip", args, { stdio: "ignore" });
}

describe.skipIf(!linuxDriverAvailable())("escape and containment", () => {
  const servers: Server[] = [];
  let loopbackPort = 0;
  let anyPort = 0;
  let meta: ChildProcess | null = null;

  const cleanupMeta = () => {
    meta?.kill("SIGKILL");
    ipRun(["route", "del", "169.254.169.254/32"]);
    ipRun(["netns", "del", META_NS]);
    ipRun(["link", "del", META_HOST_IF]);
  };

  // the host's targets, shared by both runtime classes
  beforeAll(async () => {
    cleanupMeta();
    // a host service on loopback only, and a Hangar-like HTTP port on every interface
    const lo = createServer((s) => {
      s.on("error", () => {});
      s.end("loopback\n");
    });
    servers.push(lo);
    loopbackPort = await listen(lo, 0, "127.0.0.1");
    const http = createHttpServer((_q, s) => s.end("hangar\n"));
    http.on("connection", (s) => s.on("error", () => {}));
    servers.push(http as unknown as Server);
    anyPort = await listen(http as unknown as Server, 0, "0.0.0.0");
    // a "metadata service": a netns owning 169.254.169.254, routed from the host
    ipRun(["netns", "add", META_NS]);
    ipRun(["link", "add", META_HOST_IF, "type", "veth", "peer", "name", "eth0", "netns", META_NS]);
    ipRun(["addr", "add", "10.89.253.1/30", "dev", META_HOST_IF]);
    ipRun(["link", "set", META_HOST_IF, "up"]);
    ipRun(["-n", META_NS, "addr", "add", "10.89.253.2/30", "dev", "eth0"]);
    ipRun(["-n", META_NS, "addr", "add", "169.254.169.254/32", "dev", "lo"]);
    ipRun(["-n", META_NS, "link", "set", "lo", "up"]);
    ipRun(["-n", META_NS, "link", "set", "eth0", "up"]);
    ipRun(["-n", META_NS, "route", "add", "default", "via", "10.89.253.1"]);
    ipRun(["route", "add", "169.254.169.254/32", "via", "10.89.253.2"]);
    meta = spawn("ip", ["netns", "exec", META_NS, process.execPath, "-e", "require('http').createServer((q,s)=>s.end('metadata')).listen(80,'169.254.169.254')"], {
      stdio: "ignore",
    });
    for (let i = 0; i < 100 && !(await tcpFromHost("169.254.169.254", 80, 200)); i++) await sleep(50);
  }, 60_000);

  afterAll(() => {
    for (const s of servers) s.close();
    cleanupMeta();
  });

  for (const { runtimeClass, name, net } of CLASSES) {
    const gvisor = runtimeClass === "gvisor";
    describe.skipIf(gvisor && !findCommand("runsc"))(`runtime class ${runtimeClass}`, () => {
      attacks(runtimeClass, testDriverOptions(name, net), () => ({ loopbackPort, anyPort }));
    });
  }
});

/** The attacks against one runtime class; `targets` are the host's listeners (known after beforeAll). */
function attacks(runtimeClass: RuntimeClass, opts: LinuxDriverOptions, targets: () => { loopbackPort: number; anyPort: number }): void {
  const gvisor = runtimeClass === "gvisor";
  const spec = (id: string, over: Partial<RuntimeSandboxSpec> = {}) => baseSpec(id, { memoryMb: 256, runtimeClass, ...over });
  let d: LinuxDriver;
  let a: SandboxHandle; // the attacker
  let b: SandboxHandle; // a neighbour
  let loopbackPort = 0;
  let anyPort = 0;
  const secret = randomBytes(16).toString("hex");

  beforeAll(async () => {
    ({ loopbackPort, anyPort } = targets());
    d = await freshDriver(opts);
    if (gvisor) expect(d.gvisor, "runsc is installed but the driver did not set it up").not.toBeNull();
    [a, b] = await Promise.all([d.create(spec("atk1")), d.create(spec("nbr1"))]);
    if (gvisor) expect((await agentSh(a, "uname -r")).stdout).toBe("4.4.0\n"); // really under gVisor's kernel
    // Hangar's data dir holds a secret the sandbox must not read
    await fs.writeFile(`${opts.stateDir}/escape-secret`, secret, { mode: 0o600 });
  }, 300_000);

  afterAll(async () => {
    await d?.purge();
  }, 60_000);

  /** The other sandbox and the host still work. */
  async function othersHealthy(): Promise<void> {
    const r = await agentSh(b, "echo ok");
    expect(r.stdout).toBe("ok\n");
    expect(spawnSync("true").status).toBe(0);
    expect(await tcpFromHost("127.0.0.1", anyPort)).toBe(true);
  }

  it("cannot read the host's /etc/shadow or Hangar's data dir", async () => {
    const hostShadow = await fs.readFile("/etc/shadow", "utf8");
    const r = await agentSh(
      a,
      `cat /etc/shadow; echo ---; cd /; cat ${opts.stateDir}/escape-secret /proc/1/root${opts.stateDir}/escape-secret ../../../../..${opts.stateDir}/escape-secret 2>&1; ` +
        `find / -xdev -name escape-secret 2>/dev/null; grep -rs ${secret} /etc /root /tmp /var /.hangar 2>/dev/null; echo done`,
    );
    const [shadow, rest] = r.stdout.split("---\n");
    expect(shadow).not.toBe(hostShadow);
    expect(rest).not.toContain(secret);
    expect(rest).toContain("No such file or directory");
    expect(rest!.trim().endsWith("done")).toBe(true);
    await othersHealthy();
  });

  it("cannot see the host's or the other sandbox's processes", async () => {
    await agentSh(b, "nohup sleep 4242 >/dev/null 2>&1 &");
    // the glob, not `ls`: under gVisor (runsc 20221219) coreutils' statx fails (EINVAL for AT_NO_AUTOMOUNT)
    const r = await agentSh(a, "set -- /proc/[0-9]*; echo $#; cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; kill -0 " + process.pid + " 2>&1; echo kill=$?");
    expect(r.stdout).not.toContain("4242");
    expect(r.stdout).not.toContain("vitest");
    expect(r.stdout).not.toContain("node");
    const count = Number(r.stdout.split("\n")[0]);
    expect(count).toBeGreaterThan(0); // the agent and this shell, at least
    expect(count).toBeLessThan(10);
    expect(r.stdout).toContain("kill=1");
    await othersHealthy();
  });

  it("cannot reach the host's loopback services", async () => {
    expect(await tcpFromHost("127.0.0.1", loopbackPort)).toBe(true);
    const gateway = a.address.replace(/\d+$/, (n) => String(Number(n) - 1));
    // in parallel: each refused attempt waits out its 2 s timeout
    const ips = ["127.0.0.1", gateway, ...hostIPv4s()];
    const codes = await Promise.all(ips.map((ip) => tcpFrom(a, ip, loopbackPort)));
    ips.forEach((ip, i) => expect(codes[i], ip).not.toBe(0));
    await othersHealthy();
  });

  it("cannot reach a Hangar-like HTTP port on the host (gateway address, host addresses)", async () => {
    const gateways = [a.address, b.address].map((ip) => ip.replace(/\d+$/, (n) => String(Number(n) - 1)));
    const ips = [...gateways, ...hostIPv4s()];
    for (const ip of ips) expect(await tcpFromHost(ip, anyPort), `host reaches ${ip}`).toBe(true);
    const codes = await Promise.all(ips.map((ip) => tcpFrom(a, ip, anyPort)));
    ips.forEach((ip, i) => expect(codes[i], ip).not.toBe(0));
    await othersHealthy();
  });

  it("cannot reach another sandbox", async () => {
    void agentRun(b, ["perl", "-MIO::Socket::INET", "-e", 'my $s=IO::Socket::INET->new(LocalPort=>7777,Listen=>5,ReuseAddr=>1) or die; while(my $c=$s->accept){print $c "b\\n"; close $c}'], { timeoutMs: 120_000 });
    let up = false;
    for (let i = 0; i < 100 && !up; i++) if (!(up = await tcpFromHost(b.address, 7777, 500))) await sleep(50);
    expect(up).toBe(true);
    expect(await tcpFrom(a, b.address, 7777)).not.toBe(0);
    const ping = await agentRun(a, ["perl", "-MSocket", "-e", `socket(my $s, PF_INET, SOCK_RAW, 1) or die "raw: $!\\n"`]);
    expect(ping.stderr).toContain("Operation not permitted"); // no NET_RAW
    await othersHealthy();
  });

  it("cannot reach 169.254.169.254 (metadata), though the host routes to it", async () => {
    expect(await tcpFromHost("169.254.169.254", 80)).toBe(true);
    expect(await Promise.all([tcpFrom(a, "169.254.169.254", 80), tcpFrom(a, "10.89.253.2", 80)])).not.toContain(0);
    await othersHealthy();
  });

  it("cannot mount a filesystem (also not through a new user namespace)", async () => {
    // mount(2) itself, with real arguments: under gVisor mount(8) gives up before it ("mount point is
    // not a directory": gVisor's statx rejects AT_NO_AUTOMOUNT), so this is what shows the filter there
    const direct = await agentRun(a, ["perl", "-e", `$! = 0; my $r = syscall(165, my $s = "x", my $t = "/mnt", my $f = "tmpfs", 0, 0); print $r == -1 ? $!+0 : "ok", "\\n"`]);
    expect(direct.stdout).toBe("1\n"); // EPERM
    const r = await agentSh(a, "mount -t tmpfs x /mnt; echo m=$?; mount --bind /etc /mnt; echo b=$?; unshare -Urm mount -t tmpfs x /mnt; echo u=$?; grep -c ' /mnt ' /proc/self/mountinfo");
    expect(r.stdout).toMatch(/m=(?!0)\d+/);
    expect(r.stdout).toMatch(/b=(?!0)\d+/);
    expect(r.stdout).toMatch(/u=(?!0)\d+/);
    expect(r.stdout.trim().endsWith("0")).toBe(true);
    await othersHealthy();
  });

  it("cannot use denied syscalls (mount API, modules, bpf, perf, keyrings, userfaultfd, io_uring, namespaces)", async () => {
    // x86_64 numbers; each must fail with EPERM from the seccomp filter
    const calls: Record<string, string> = {
      mount: "165, 0, 0, 0, 0, 0", umount2: "166, 0, 0", init_module: "175, 0, 0, 0", finit_module: "313, 0, 0, 0",
      bpf: "321, 0, 0, 0", perf_event_open: "298, 0, 0, 0, 0, 0", keyctl: "250, 0, 0", add_key: "248, 0, 0, 0, 0, 0",
      userfaultfd: "323, 0", io_uring_setup: "425, 1, 0", unshare_user: "272, 0x10000000", setns: "308, 0, 0",
      fsopen: "430, 0, 0", open_tree: "428, 0, 0, 0", kexec_load: "246, 0, 0, 0, 0", reboot: "169, 0, 0, 0, 0",
      swapon: "167, 0, 0", open_by_handle_at: "304, 0, 0, 0", clone_newuser: "56, 0x10000011, 0, 0, 0, 0",
    };
    if (process.arch !== "x64") return;
    const script = Object.entries(calls)
      .map(([n, args]) => `$! = 0; my $r_${n} = syscall(${args}); print "${n} ", ($r_${n} == -1 ? $!+0 : "ok:$r_${n}"), "\\n";`)
      .join("\n");
    const r = await agentRun(a, ["perl", "-e", script]);
    const results = Object.fromEntries(r.stdout.trim().split("\n").map((l) => l.split(" ") as [string, string]));
    for (const n of Object.keys(calls)) expect(results[n], n).toBe("1"); // EPERM
    await othersHealthy();
  });

  it("cannot bypass the syscall filter through the 32-bit or x32 ABI", async () => {
    if (process.arch !== "x64") return;
    const src = `#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
  long r;
  if (argv[1][0] == 'i') { /* i386 unshare(CLONE_NEWUSER) = 310 */
    __asm__ volatile ("int $0x80" : "=a"(r) : "a"(310L), "b"(0x10000000L) : "memory");
  } else { /* x32 unshare = 272 | __X32_SYSCALL_BIT */
    r = syscall(272 | 0x40000000, 0x10000000);
    if (r < 0) r = -errno;
  }
  printf("%ld\\n", r);
  return 0;
}`;
    const dir = await fs.mkdtemp("/tmp/hangar-esc-");
    await fs.writeFile(`${dir}/abi.c`, src);
    expect(spawnSync("gcc", ["-O0", "-static", "-o", `${dir}/abi`, `${dir}/abi.c`]).status).toBe(0);
    await a.agent.writeFile("/tmp/abi", await fs.readFile(`${dir}/abi`), { mode: 0o755 });
    await fs.rm(dir, { recursive: true, force: true });
    for (const mode of ["i386", "x32"]) {
      const r = await agentRun(a, ["/tmp/abi", mode]);
      // killed by the filter (SIGSYS) or refused — never 0 (a new user namespace)
      const refused = r.signal === 31 || r.signal === 9 || /^-(1|38|22)$/.test(r.stdout.trim());
      expect(refused, `${mode}: ${JSON.stringify(r)}`).toBe(true);
    }
    await othersHealthy();
  });

  it("cannot write /proc/sysrq-trigger or kernel sysctls; /proc/kcore is hidden", async () => {
    const r = await agentSh(
      a,
      "echo h > /proc/sysrq-trigger; echo s=$?; echo 1 > /proc/sys/vm/drop_caches; echo v=$?; echo x > /proc/sys/kernel/hostname; echo k=$?; " +
        "head -c1 /proc/kcore 2>/dev/null | wc -c; cat /proc/keys 2>/dev/null | wc -c",
    );
    expect(r.stdout).toMatch(/s=[1-9]/);
    expect(r.stdout).toMatch(/v=[1-9]/);
    expect(r.stdout).toMatch(/k=[1-9]/);
    expect(r.stdout.trim().split("\n").slice(-2)).toEqual(["0", "0"]);
    expect(spawnSync("hostname").stdout.toString().trim()).not.toBe("x");
    await othersHealthy();
  });

  it("cannot ptrace or read the memory of a process outside", async () => {
    // the host's pids do not exist in the sandbox's PID namespace; ptrace inside is allowed
    const host = process.pid;
    const r = await agentRun(a, [
      "perl",
      "-e",
      `$!=0; my $r = syscall(101, 16, ${host}, 0, 0); print "attach ", ($r == -1 ? $!+0 : "ok"), "\\n";` +
        `open(my $f, "<", "/proc/${host}/mem") ? print "mem open\\n" : print "mem ", $!+0, "\\n";`,
    ]);
    expect(r.stdout).toContain("attach 3"); // ESRCH
    expect(r.stdout).toMatch(/mem (2|3|13)/);
    await othersHealthy();
  });

  it("cannot escalate through a setuid binary as a non-root user (no_new_privs)", async () => {
    // root inside makes a setuid-root shell; uid 1000 running it stays 1000
    // (perl's stat, not ls: see the process test about gVisor's statx)
    const made = await agentSh(a, `cp /bin/bash /tmp/rootbash && chmod 4755 /tmp/rootbash && perl -e 'printf "%o %d\\n", (stat "/tmp/rootbash")[2] & 07777, (stat _)[4]'`);
    expect(made.stdout).toBe("4755 0\n"); // setuid, owned by root
    const r = await agentRun(a, ["/tmp/rootbash", "-p", "-c", "id -u; id -eu 2>/dev/null; grep NoNewPrivs /proc/self/status; perl -e 'print \"nnp=\", syscall(157, 39, 0, 0, 0, 0), \"\\n\"'; su -c id root </dev/null 2>&1; echo su=$?"], {
      uid: 1000,
      gid: 1000,
      cwd: "/tmp",
    });
    expect(r.stdout.split("\n")[0]).toBe("1000");
    // gVisor's /proc/<pid>/status has no NoNewPrivs line; prctl(PR_GET_NO_NEW_PRIVS) answers on both
    if (!gvisor) expect(r.stdout).toMatch(/NoNewPrivs:\s+1/);
    expect(r.stdout).toContain("nnp=1\n");
    expect(r.stdout).not.toMatch(/uid=0/);
    expect(r.stdout).toMatch(/su=[1-9]/);
    await othersHealthy();
  });

  it("a fork bomb hits the pids limit; the host and the other sandbox stay fine", async () => {
    const h = await d.create(spec("bomb1", { memoryMb: 256 }));
    void agentRun(h, ["bash", "-c", ":(){ :|:& };:"], { timeoutMs: 120_000 }).catch(() => {});
    let peak = 0;
    for (let i = 0; i < 30; i++) {
      peak = Math.max(peak, (await d.stats("bomb1")).pids);
      if (peak >= 1000) break;
      await sleep(100);
    }
    expect(peak).toBeGreaterThan(100);
    expect(peak).toBeLessThanOrEqual(1024);
    await othersHealthy();
    const t0 = performance.now();
    await d.destroy("bomb1");
    expect(performance.now() - t0).toBeLessThan(10_000);
    await othersHealthy();
  });

  const memoryBomb = gvisor
    ? "a memory bomb stops at the memory limit (the Sentry is OOM-killed: the sandbox stops, restartable); the neighbour and the host live on"
    : "a memory bomb kills only its own process (137); the sandbox, its neighbour and the host live on";
  it(memoryBomb, async () => {
    const h = await d.create(spec("mem1", { memoryMb: 256 }));
    if (gvisor) {
      // Under gVisor every process of the sandbox lives in one host process, the Sentry (gVisor's
      // kernel), whose own memory accounting does not stop the allocation: the host's OOM killer,
      // confined to the sandbox's memory cgroup, kills the Sentry, so the whole sandbox stops (not
      // just the process) — still only this sandbox, and a restart brings it back with its files.
      const mem = cg.cgDir("memory", d.cgroupPath("mem1"));
      await agentSh(h, "echo kept > /blaxel/f");
      const gone = new Promise<"disconnected">((r) => h.agent.once("disconnect", () => r("disconnected")));
      // the cgroup goes with the container once the Sentry is dead: sample it while the bomb runs
      let maxUsage = 0;
      let oomKills = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const [u, o] = await Promise.all([fs.readFile(`${mem}/memory.max_usage_in_bytes`, "utf8"), fs.readFile(`${mem}/memory.oom_control`, "utf8")]).catch(() => ["0", ""]);
          maxUsage = Math.max(maxUsage, Number(u));
          oomKills = Math.max(oomKills, Number(/oom_kill (\d+)/.exec(o)?.[1] ?? 0));
          await sleep(5);
        }
      })();
      const bomb = agentSh(h, `perl -e '$x = "a" x (1024*1024*1024); print length($x)'`, { timeoutMs: 60_000 });
      bomb.catch(() => {});
      const out = await Promise.race([bomb.then((r) => r.code), gone]);
      sampling = false;
      await sampler;
      expect([137, "disconnected"]).toContain(out);
      expect(maxUsage).toBeGreaterThan(0);
      expect(maxUsage).toBeLessThanOrEqual(256 * 1024 * 1024);
      // the OOM killer acted: its count was seen, or the Sentry is gone with its cgroup
      const cgroupGone = !(await fs.stat(mem).then(() => true, () => false));
      expect(oomKills > 0 || (out === "disconnected" && cgroupGone)).toBe(true);
      if (out === "disconnected") {
        expect(await d.state("mem1")).toBe("stopped");
        const h2 = await d.restart("mem1", spec("mem1"));
        expect((await agentSh(h2, "cat /blaxel/f")).stdout).toBe("kept\n");
      } else expect((await agentSh(h, "echo alive")).stdout).toBe("alive\n");
      expect((await d.stats("mem1")).memoryLimitBytes).toBe(256 * 1024 * 1024);
      await othersHealthy();
      await d.destroy("mem1");
      return;
    }
    const r = await agentSh(h, `perl -e '$x = "a" x (1024*1024*1024); print length($x)'`);
    expect(r.code).toBe(137);
    expect((await agentSh(h, "echo alive")).stdout).toBe("alive\n");
    expect((await d.stats("mem1")).memoryLimitBytes).toBe(256 * 1024 * 1024);
    await othersHealthy();
    await d.destroy("mem1");
  });

  it("filling the disk ends in ENOSPC on the sandbox's own tmpfs; the host disk is untouched", async () => {
    const h = await d.create(spec("disk1", { memoryMb: 256 }));
    const before = statfsSync("/");
    const r = await agentSh(h, "dd if=/dev/zero of=/root/fill bs=1M count=1024 2>&1; echo dd=$?; du -m /root/fill | cut -f1");
    const after = statfsSync("/");
    expect(r.stdout).toContain("No space left on device");
    expect(r.stdout).toMatch(/dd=[1-9]/);
    const mb = Number(r.stdout.trim().split("\n").pop());
    expect(mb).toBeGreaterThan(100);
    expect(mb).toBeLessThanOrEqual(128); // half of the 256 MB memory limit
    const usedDelta = ((before.bavail - after.bavail) * before.bsize) / 2 ** 20;
    expect(usedDelta).toBeLessThan(50);
    expect((await agentSh(h, "rm /root/fill && echo freed")).stdout).toBe("freed\n");
    await othersHealthy();
    await d.destroy("disk1");
  });

  it("cannot write to the host's agent directory or replace the agent", async () => {
    const r = await agentSh(a, "touch /.hangar/run/x; echo r=$?; cp /bin/true /.hangar/bin/hangar-agent; echo b=$?");
    expect(r.stdout).toMatch(/r=[1-9]/);
    expect(r.stdout).toMatch(/b=[1-9]/);
    await othersHealthy();
  });
}
