// Pure checks of the generated OCI config, seccomp profile and nftables ruleset (no root needed).

import { describe, it, expect } from "vitest";
import { buildConfig, cpuCount, cpuQuota, parseCpuList, pickCpus, MASKED_PATHS, READONLY_PATHS, type SandboxConfigInput } from "./config.js";
import { seccompProfile, DENIED_SYSCALLS } from "./seccomp.js";
import { nftRuleset, parseCidr } from "./network.js";

const input: SandboxConfigInput = {
  hostname: "box",
  rootfs: "/run/hangar/b/x/rootfs",
  args: ["/.hangar/bin/hangar-agent"],
  env: { A: "1", PATH: "/bin" },
  cwd: "/",
  agentBinary: "/opt/agent",
  agentRunDir: "/run/hangar/s/x",
  etcDir: "/run/hangar/b/x/etc",
  netnsPath: "/run/netns/hgn1",
  cgroupsPath: "/hangar/x",
  memoryMb: 4096,
  hostCpus: 2,
  pidsLimit: 1024,
  nofile: 20000,
  nproc: 96365,
  userns: { hostId: 1_000_000_000, size: 65536 },
  cgroupMount: true,
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const cfg = buildConfig(input) as any;

describe("CPU set", () => {
  it("gives a sandbox its quota rounded up in CPUs, on the least used ones", () => {
    expect([512, 2048, 3072, 4096, 65536].map((m) => cpuCount(m, 2))).toEqual([1, 1, 2, 2, 2]);
    expect(cpuCount(8192, 8)).toBe(4);
    expect(parseCpuList("0-3,6\n")).toEqual([0, 1, 2, 3, 6]);
    expect(parseCpuList("1")).toEqual([1]);
    expect(pickCpus(1, [0, 1], new Map())).toEqual([0]);
    expect(pickCpus(1, [0, 1], new Map([[0, 1]]))).toEqual([1]);
    expect(pickCpus(2, [0, 1, 2, 3], new Map([[0, 2], [1, 1], [3, 1]]))).toEqual([1, 2]);
    expect(pickCpus(2, [4, 5], new Map())).toEqual([4, 5]);
  });
});

describe("OCI config", () => {
  it("isolates: namespaces, userns mapping, joined netns", () => {
    const types = cfg.linux.namespaces.map((n: { type: string }) => n.type).sort();
    expect(types).toEqual(["ipc", "mount", "network", "pid", "user", "uts"]);
    expect(cfg.linux.namespaces.find((n: { type: string }) => n.type === "network").path).toBe("/run/netns/hgn1");
    expect(cfg.linux.uidMappings).toEqual([{ containerID: 0, hostID: 1_000_000_000, size: 65536 }]);
    expect(cfg.hostname).toBe("box");
    expect(cfg.process.env).toEqual(["A=1", "PATH=/bin"]);
  });

  it("limits: memory, no swap, cpu from memory, pids, rlimits within the host's", () => {
    const r = cfg.linux.resources;
    expect(r.memory).toMatchObject({ limit: 4096 * 2 ** 20, swap: 4096 * 2 ** 20, swappiness: 0 });
    expect(r.cpu).toMatchObject({ quota: 200_000, period: 100_000 }); // 4096 MB → 2 vCPU
    expect(r.pids.limit).toBe(1024);
    expect(cfg.process.rlimits).toEqual([
      { type: "RLIMIT_NOFILE", hard: 20000, soft: 20000 },
      { type: "RLIMIT_NPROC", hard: 96365, soft: 96365 },
    ]);
    expect(cpuQuota(128, 2).quota).toBe(25_000); // floor 1/4 vCPU
    expect(r.cpu.cpus).toBeUndefined(); // no CPU set given: all
    expect((buildConfig({ ...input, cpus: "1" }) as typeof cfg).linux.resources.cpu.cpus).toBe("1");
    expect(cpuQuota(65536, 2).quota).toBe(200_000); // capped at the host
  });

  it("restricts: no new privileges, small capability set, masked /proc, seccomp", () => {
    expect(cfg.process.noNewPrivileges).toBe(true);
    const caps: string[] = cfg.process.capabilities.bounding;
    for (const c of ["CAP_SYS_ADMIN", "CAP_NET_RAW", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SYS_PTRACE", "CAP_NET_ADMIN", "CAP_SYS_MODULE"]) {
      expect(caps).not.toContain(c);
    }
    expect(cfg.process.capabilities.inheritable).toEqual([]);
    expect(cfg.process.capabilities.ambient).toBeUndefined();
    expect(cfg.linux.maskedPaths).toEqual(MASKED_PATHS);
    expect(MASKED_PATHS).toContain("/proc/kcore");
    expect(READONLY_PATHS).toContain("/proc/sysrq-trigger");
    expect(cfg.linux.seccomp).toBe(seccompProfile());
    const devs = cfg.linux.resources.devices;
    expect(devs[0]).toEqual({ allow: false, access: "rwm" });
  });

  it("mounts the agent and its run dir read-only and generated /etc files", () => {
    const byDest = new Map<string, { source: string; options: string[] }>(cfg.mounts.map((m: { destination: string }) => [m.destination, m]));
    expect(byDest.get("/.hangar/bin/hangar-agent")).toMatchObject({ source: "/opt/agent", options: expect.arrayContaining(["ro"]) });
    expect(byDest.get("/.hangar/run")).toMatchObject({ source: "/run/hangar/s/x", options: expect.arrayContaining(["ro"]) });
    for (const f of ["hostname", "hosts", "resolv.conf"]) expect(byDest.get(`/etc/${f}`)?.source).toBe(`/run/hangar/b/x/etc/${f}`);
    expect(cfg.linux.sysctl).toBeUndefined(); // the pre-built netns carries them
    expect((buildConfig({ ...input, netnsPath: null }) as { linux: { sysctl: object } }).linux.sysctl).toBeDefined();
  });
});

describe("seccomp profile", () => {
  it("denies the dangerous syscalls and namespace-creating clone, native ABI only", () => {
    const p = seccompProfile();
    expect(p.defaultAction).toBe("SCMP_ACT_ALLOW");
    expect(p.architectures).toHaveLength(1);
    for (const s of ["mount", "umount2", "unshare", "setns", "bpf", "perf_event_open", "kexec_load", "init_module", "finit_module", "keyctl", "add_key", "reboot", "swapon", "open_by_handle_at", "userfaultfd", "io_uring_setup", "fsopen", "move_mount", "pivot_root"]) {
      expect(DENIED_SYSCALLS).toContain(s);
    }
    expect(DENIED_SYSCALLS).not.toContain("ptrace");
    const clone = p.syscalls.filter((s) => s.names[0] === "clone");
    expect(clone.map((c) => c.args![0]!.value)).toContain(0x10000000);
    expect(p.syscalls.find((s) => s.names[0] === "clone3")?.errnoRet).toBe(38);
  });
});

describe("nftables ruleset", () => {
  const rs = nftRuleset({ table: "hangar", prefix: "hg", cidr: "10.88.0.0/16", dns: ["10.255.255.53"], hostPorts: [8443], allowPrivate: false });

  it("replaces the table atomically and matches only this driver's interfaces", () => {
    expect(rs.startsWith("add table inet hangar\ndelete table inet hangar\ntable inet hangar {")).toBe(true);
    expect(rs).toContain('iifname "hgv*" jump sandbox_to_host');
    expect(rs).toContain('oifname "hgv*" counter drop');
    expect(rs).toContain("ip saddr 10.88.0.0/16 oifname != \"hgv*\" masquerade");
  });

  it("allows DNS to the upstream nameservers only, and listed host ports", () => {
    expect(rs).toContain("ip daddr { 10.255.255.53 } meta l4proto { tcp, udp } th dport 53 accept");
    expect(rs).toContain("meta l4proto tcp th dport { 8443 } accept");
  });

  it("denies link-local, loopback, private ranges (merged, the sandbox range inside 10/8)", () => {
    const el = /elements = \{ ([^}]*) \}/.exec(rs)![1]!.split(", ");
    expect(el).toEqual(expect.arrayContaining(["169.254.0.0/16", "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]));
    expect(el).not.toContain("10.88.0.0/16");
    const open = nftRuleset({ table: "t", prefix: "hg", cidr: "10.88.0.0/16", dns: [], hostPorts: [], allowPrivate: true });
    expect(open).toContain("10.88.0.0/16");
    expect(open).not.toContain("192.168.0.0/16");
  });

  it("parses ranges", () => {
    expect(parseCidr("10.88.1.7/16")).toEqual({ base: (10 << 24 | 88 << 16) >>> 0, bits: 16 });
    expect(() => parseCidr("10.88.0.0/31")).toThrow();
  });
});
