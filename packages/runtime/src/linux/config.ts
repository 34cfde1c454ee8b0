// Builds the OCI runtime config (config.json) of a sandbox in-process.

import { dirname } from "node:path";
import { seccompProfile } from "./seccomp.js";
import { SANDBOX_CA_DIR } from "../egress.js";

/** Where the agent and its socket directory appear inside every sandbox. */
export const AGENT_PATH = "/.hangar/bin/hangar-agent";
export const AGENT_RUN_DIR = "/.hangar/run";
/** The Debian trust store the egress CA bundle is bound over. */
export const TRUST_STORE = "/etc/ssl/certs/ca-certificates.crt";

/** Docker's default capability set minus NET_RAW, MKNOD and AUDIT_WRITE. */
export const CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
];

/** Docker's masked and read-only /proc and /sys paths. */
export const MASKED_PATHS = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/proc/interrupts",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
  "/sys/kernel/debug",
  "/sys/kernel/security",
];
export const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

export interface UserNsMapping {
  /** First host uid/gid of the shared range mapped to 0 inside. */
  hostId: number;
  size: number;
}

export interface SandboxConfigInput {
  hostname: string;
  /** Rootfs mount point (the overlay). */
  rootfs: string;
  /** argv of PID 1 (the agent). */
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** Host path of the static agent binary. */
  agentBinary: string;
  /** Host dir bind-mounted read-only at /.hangar/run (holds agent.sock). */
  agentRunDir: string;
  /** [host file, sandbox path] bound read-only over /proc and /sys files (LXCFS's). */
  procBinds?: [string, string][];
  /** Host files bind-mounted over /etc/hostname, /etc/hosts, /etc/resolv.conf. */
  etcDir: string;
  /** Network namespace file the sandbox joins. */
  netnsPath: string | null;
  /** OCI cgroupsPath, e.g. "/hangar/<id>". */
  cgroupsPath: string;
  memoryMb: number;
  /** Host CPUs: the CPU quota never exceeds them. */
  hostCpus: number;
  /** The host CPUs it may run on (cpuset, e.g. "1" or "0-1"); absent: all. */
  cpus?: string;
  pidsLimit: number;
  /** Hard limits of the host (root lacks CAP_SYS_RESOURCE: rlimits must stay within them). */
  nofile: number;
  nproc: number;
  /** Shared user-namespace range, or null to run without a user namespace. */
  userns: UserNsMapping | null;
  /**
   * Join this user namespace (already mapped to `userns`) instead of creating one, e.g.
   * "/proc/self/fd/3": the one owning the sandbox's netns (see hangar-launch --userns-of-netns).
   */
  usernsPath?: string;
  /** Mount the sandbox's own cgroup hierarchies read-only at /sys/fs/cgroup. */
  cgroupMount: boolean;
  /**
   * Host dir with the egress CA files (ca.crt, bundle.crt) bound read-only at /.hangar/ca; with
   * `trustStore`, its bundle.crt is also bound over the image's /etc/ssl/certs/ca-certificates.crt.
   */
  caDir?: string;
  trustStore?: boolean;
  /**
   * Config for gVisor (runsc): the agent's directory is bound (single-file binds are not
   * supported there) and the soft nofile limit is small (without close_range in gVisor, a spawn
   * marks every fd up to it close-on-exec one by one).
   */
  gvisor?: boolean;
  /** Host directories bound at their destination (volumes). */
  binds?: Array<{ source: string; destination: string; readOnly: boolean }>;
}

/**
 * CPU quota in microseconds per 100 ms period: memory/2048 vCPU, at least 1/4 vCPU, at most the
 * host. The burst lets a sandbox bank one period's unused quota, so short interactive work (an
 * exec, a request) runs at full speed while the average stays capped.
 */
export function cpuQuota(memoryMb: number, hostCpus: number): { quota: number; period: number; shares: number; burst: number } {
  const period = 100_000;
  const vcpu = Math.min(Math.max(memoryMb / 2048, 0.25), hostCpus);
  const quota = Math.round(vcpu * period);
  return { quota, period, shares: Math.max(2, Math.round(vcpu * 1024)), burst: quota };
}

/** The vCPUs a sandbox sees (its CPU set's size): its CPU quota rounded up. */
export function cpuCount(memoryMb: number, hostCpus: number): number {
  const { quota, period } = cpuQuota(memoryMb, hostCpus);
  return Math.min(Math.ceil(quota / period), hostCpus);
}

/**
 * The `count` CPUs of `hostCpus` used by the fewest sandboxes (`use`: sandboxes per CPU), lowest
 * numbers first among equals; in ascending order.
 */
export function pickCpus(count: number, hostCpus: readonly number[], use: ReadonlyMap<number, number>): number[] {
  const order = [...hostCpus].sort((a, b) => (use.get(a) ?? 0) - (use.get(b) ?? 0) || a - b);
  return order.slice(0, count).sort((a, b) => a - b);
}

/** CPU numbers of a cpuset list ("0-3,6" → [0,1,2,3,6]). */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.trim().split(",").filter(Boolean)) {
    const [a, b] = part.split("-").map(Number);
    if (!Number.isInteger(a)) continue;
    for (let i = a!; i <= (Number.isInteger(b) ? b! : a!); i++) out.push(i);
  }
  return out;
}

export function buildConfig(c: SandboxConfigInput): object {
  const mem = c.memoryMb * 1024 * 1024;
  const cpu = cpuQuota(c.memoryMb, c.hostCpus);
  const env = Object.entries(c.env).map(([k, v]) => `${k}=${v}`);
  const namespaces: Array<{ type: string; path?: string }> = [
    { type: "pid" },
    { type: "ipc" },
    { type: "uts" },
    { type: "mount" },
    c.netnsPath ? { type: "network", path: c.netnsPath } : { type: "network" },
  ];
  if (c.userns) namespaces.push(c.usernsPath ? { type: "user", path: c.usernsPath } : { type: "user" });
  const mounts: object[] = [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", ...(c.userns ? [] : ["gid=5"])],
    },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    ...(c.cgroupMount
      ? [{ destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] }]
      : []),
    c.gvisor
      ? { destination: dirname(AGENT_PATH), type: "bind", source: dirname(c.agentBinary), options: ["bind", "ro", "nosuid", "nodev"] }
      : { destination: AGENT_PATH, type: "bind", source: c.agentBinary, options: ["bind", "ro", "nosuid", "nodev"] },
    { destination: AGENT_RUN_DIR, type: "bind", source: c.agentRunDir, options: ["bind", "ro", "nosuid", "nodev", "noexec"] },
    { destination: "/etc/hostname", type: "bind", source: `${c.etcDir}/hostname`, options: ["bind", "ro", "nosuid", "nodev", "noexec"] },
    { destination: "/etc/hosts", type: "bind", source: `${c.etcDir}/hosts`, options: ["bind", "ro", "nosuid", "nodev", "noexec"] },
    { destination: "/etc/resolv.conf", type: "bind", source: `${c.etcDir}/resolv.conf`, options: ["bind", "ro", "nosuid", "nodev", "noexec"] },
    ...(c.caDir ? [{ destination: SANDBOX_CA_DIR, type: "bind", source: c.caDir, options: ["bind", "ro", "nosuid", "nodev", "noexec"] }] : []),
    ...(c.caDir && c.trustStore
      ? [{ destination: TRUST_STORE, type: "bind", source: `${c.caDir}/bundle.crt`, options: ["bind", "ro", "nosuid", "nodev", "noexec"] }]
      : []),
    ...(c.binds ?? []).map((b) => ({ destination: b.destination, type: "bind", source: b.source, options: ["bind", b.readOnly ? "ro" : "rw", "nosuid", "nodev"] })),
    // the sandbox's own memory and CPU view (LXCFS) over /proc and /sys files; private (CRIU
    // cannot restore them as peers of the daemon's shared mount)
    ...(c.procBinds ?? []).map(([source, destination]) => ({ destination, type: "bind", source, options: ["bind", "ro", "nosuid", "nodev", "noexec", "private"] })),
  ];
  const linux: Record<string, unknown> = {
    namespaces,
    cgroupsPath: c.cgroupsPath,
    rootfsPropagation: "private",
    resources: {
      devices: [
        { allow: false, access: "rwm" },
        { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, // null
        { allow: true, type: "c", major: 1, minor: 5, access: "rwm" }, // zero
        { allow: true, type: "c", major: 1, minor: 7, access: "rwm" }, // full
        { allow: true, type: "c", major: 1, minor: 8, access: "rwm" }, // random
        { allow: true, type: "c", major: 1, minor: 9, access: "rwm" }, // urandom
        { allow: true, type: "c", major: 5, minor: 0, access: "rwm" }, // tty
        { allow: true, type: "c", major: 5, minor: 2, access: "rwm" }, // ptmx
        { allow: true, type: "c", major: 136, access: "rwm" }, // pts
      ],
      memory: { limit: mem, swap: mem, swappiness: 0, disableOOMKiller: false },
      cpu: { shares: cpu.shares, quota: cpu.quota, period: cpu.period, burst: cpu.burst, ...(c.cpus ? { cpus: c.cpus } : {}) },
      pids: { limit: c.pidsLimit },
    },
    maskedPaths: MASKED_PATHS,
    readonlyPaths: READONLY_PATHS,
    seccomp: seccompProfile(),
    // a pre-built netns got these from the network pool (a user namespace may not write them)
    ...(c.netnsPath
      ? {}
      : {
          sysctl: {
            // IPv4 only inside; unprivileged ICMP sockets so ping works without NET_RAW.
            "net.ipv6.conf.all.disable_ipv6": "1",
            "net.ipv6.conf.default.disable_ipv6": "1",
            "net.ipv4.ping_group_range": c.userns ? `0 ${c.userns.size - 1}` : "0 2147483647",
            "net.ipv4.ip_unprivileged_port_start": "0",
          },
        }),
  };
  if (c.userns && !c.usernsPath) {
    const map = [{ containerID: 0, hostID: c.userns.hostId, size: c.userns.size }];
    linux.uidMappings = map;
    linux.gidMappings = map;
  }
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: c.args,
      env,
      cwd: c.cwd,
      capabilities: {
        bounding: CAPABILITIES,
        effective: CAPABILITIES,
        permitted: CAPABILITIES,
        inheritable: [],
      },
      rlimits: [
        { type: "RLIMIT_NOFILE", hard: c.nofile, soft: c.gvisor ? Math.min(1024, c.nofile) : c.nofile },
        { type: "RLIMIT_NPROC", hard: c.nproc, soft: c.nproc },
      ],
      noNewPrivileges: true,
    },
    root: { path: c.rootfs, readonly: false },
    hostname: c.hostname,
    mounts,
    linux,
  };
}
