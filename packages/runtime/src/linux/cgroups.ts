// cgroup v1 access: preflight of the controller mounts, stats, the freezer, leftover removal.
// crun creates and limits the per-sandbox cgroups; the node reads and freezes them directly.

import { promises as fs } from "node:fs";
import { HangarError } from "@hangar/common";
import { run, sleep } from "./proc.js";

export const CGROUP_ROOT = "/sys/fs/cgroup";
/** The v1 controllers a sandbox needs (crun places the container in every mounted hierarchy). */
export const REQUIRED_CONTROLLERS = ["cpu", "cpuacct", "memory", "pids", "freezer", "devices"] as const;
const OPTIONAL_CONTROLLERS = ["cpuset", "blkio"] as const;

export type CgroupMode = "v1" | "v2" | "none";

async function fsType(path: string): Promise<string | null> {
  const mounts = await fs.readFile("/proc/self/mountinfo", "utf8");
  let type: string | null = null;
  for (const line of mounts.split("\n")) {
    const [pre, post] = line.split(" - ");
    if (!pre || !post) continue;
    if (pre.split(" ")[4] === path) type = post.split(" ")[0] ?? null; // last mount wins
  }
  return type;
}

/** Which cgroup layout the host has at /sys/fs/cgroup. */
export async function cgroupMode(): Promise<CgroupMode> {
  const t = await fsType(CGROUP_ROOT);
  if (t === "cgroup2") return "v2";
  if (t === "tmpfs") return "v1";
  return "none";
}

/**
 * Makes sure the v1 hierarchies exist: mounts a tmpfs at /sys/fs/cgroup and each missing
 * controller (crun fails without them). Throws on a pure cgroup v2 host (not supported yet).
 */
export async function ensureCgroupsV1(): Promise<void> {
  let mode = await cgroupMode();
  if (mode === "v2") {
    throw new HangarError("not_configured", "the linux driver needs cgroup v1 controllers; this host runs pure cgroup v2");
  }
  if (mode === "none") {
    await run("mount", ["-t", "tmpfs", "-o", "mode=755", "cgroup", CGROUP_ROOT]);
    mode = "v1";
  }
  const available = new Set(
    (await fs.readFile("/proc/cgroups", "utf8"))
      .split("\n")
      .filter((l) => l && !l.startsWith("#"))
      .map((l) => l.split("\t"))
      .filter((f) => f[3] === "1")
      .map((f) => f[0]),
  );
  for (const c of [...REQUIRED_CONTROLLERS, ...OPTIONAL_CONTROLLERS]) {
    const dir = `${CGROUP_ROOT}/${c}`;
    if ((await fsType(dir)) === "cgroup") continue;
    if (!available.has(c)) {
      if ((REQUIRED_CONTROLLERS as readonly string[]).includes(c)) {
        throw new HangarError("not_configured", `cgroup v1 controller ${c} is not available in this kernel`);
      }
      continue;
    }
    await fs.mkdir(dir, { recursive: true });
    await run("mount", ["-t", "cgroup", "-o", c, "cgroup", dir]);
  }
}

/** Directory of a sandbox's cgroup in one controller. `path` is the OCI cgroupsPath ("/hangar/<id>"). */
export function cgDir(controller: string, path: string): string {
  return `${CGROUP_ROOT}/${controller}${path}`;
}

async function readNum(file: string): Promise<number> {
  return Number((await fs.readFile(file, "utf8")).trim());
}

export interface CgroupStats {
  memoryBytes: number;
  memoryLimitBytes: number;
  cpuNanos: number;
  pids: number;
}

export async function readStats(path: string): Promise<CgroupStats> {
  const [usage, limit, cpu, pids] = await Promise.all([
    readNum(`${cgDir("memory", path)}/memory.usage_in_bytes`),
    readNum(`${cgDir("memory", path)}/memory.limit_in_bytes`),
    readNum(`${cgDir("cpuacct", path)}/cpuacct.usage`),
    readNum(`${cgDir("pids", path)}/pids.current`),
  ]);
  return { memoryBytes: usage, memoryLimitBytes: limit, cpuNanos: cpu, pids };
}

export async function freezerState(path: string): Promise<string> {
  return (await fs.readFile(`${cgDir("freezer", path)}/freezer.state`, "utf8")).trim();
}

/** Freezes every task of the cgroup; resolves once the kernel reports FROZEN (`insist`: writes FROZEN again while waiting). */
export async function freeze(path: string, timeoutMs = 5000, insist = false): Promise<void> {
  const file = `${cgDir("freezer", path)}/freezer.state`;
  await fs.writeFile(file, "FROZEN");
  const deadline = Date.now() + timeoutMs;
  for (let delay = 0; ; delay = Math.min(delay + 1, 10)) {
    if ((await fs.readFile(file, "utf8")).trim() === "FROZEN") return;
    // writing FROZEN again catches tasks a fork raced past (what CRIU does)
    if (insist) await fs.writeFile(file, "FROZEN");
    if (Date.now() > deadline) {
      await fs.writeFile(file, "THAWED").catch(() => {});
      throw new HangarError("runtime_failed", `freezing ${path} timed out`);
    }
    await sleep(delay);
  }
}

/** Lets the cgroup bank up to `burstUs` of unused CPU quota (cgroup v1 cpu.cfs_burst_us, kernel ≥ 5.14; skipped where absent). */
export async function setCpuBurst(path: string, burstUs: number): Promise<void> {
  await fs.writeFile(`${cgDir("cpu", path)}/cpu.cfs_burst_us`, String(burstUs)).catch(() => {});
}

export async function thaw(path: string): Promise<void> {
  await fs.writeFile(`${cgDir("freezer", path)}/freezer.state`, "THAWED");
}

/** Every controller hierarchy mounted under /sys/fs/cgroup (including named ones like name=systemd). */
export async function mountedHierarchies(): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(CGROUP_ROOT, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name === "unified") continue;
    if ((await fsType(`${CGROUP_ROOT}/${e.name}`)) === "cgroup") out.push(e.name);
  }
  return out;
}

/** Names of the mounted v1 controllers and named hierarchies ("memory", "name=systemd"), as CRIU names them. */
export async function v1Controllers(): Promise<string[]> {
  const out = new Set<string>();
  for (const line of (await fs.readFile("/proc/self/mountinfo", "utf8")).split("\n")) {
    const [pre, post] = line.split(" - ");
    if (!pre || !post) continue;
    const [type, , superOpts] = post.split(" ");
    if (type !== "cgroup" || !pre.split(" ")[4]?.startsWith(`${CGROUP_ROOT}/`)) continue;
    for (const o of superOpts?.split(",") ?? []) {
      if (o === "rw" || o === "ro" || o.startsWith("release_agent") || o === "clone_children" || o === "noprefix" || o === "xattr") continue;
      out.add(o);
    }
  }
  return [...out];
}

/** Pids of every task still in the sandbox's cgroup (pids controller). */
export async function cgroupPids(path: string): Promise<number[]> {
  try {
    const txt = await fs.readFile(`${cgDir("pids", path)}/cgroup.procs`, "utf8");
    return txt.split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Removes a sandbox's cgroup directories in every hierarchy (children first); ignores missing ones. */
export async function removeCgroup(path: string, hierarchies: string[]): Promise<void> {
  for (const h of hierarchies) {
    const dir = cgDir(h, path);
    await rmdirTree(dir);
  }
}

async function rmdirTree(dir: string): Promise<void> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await rmdirTree(`${dir}/${e.name}`);
  for (let i = 0; ; i++) {
    try {
      await fs.rmdir(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (code !== "EBUSY" || i >= 50) throw e;
      await sleep(10);
    }
  }
}

/** One cgroup setting: [controller, file, value]. */
export type CgroupSetting = [string, string, string];

/** Settings crun gives a sandbox's cgroups, in an order they can be written back in. */
const SAVED_SETTINGS: Array<[string, string]> = [
  ["cpuset", "cpuset.cpus"],
  ["cpuset", "cpuset.mems"],
  ["memory", "memory.limit_in_bytes"],
  ["memory", "memory.memsw.limit_in_bytes"],
  ["memory", "memory.swappiness"],
  ["cpu", "cpu.shares"],
  ["cpu", "cpu.cfs_period_us"],
  ["cpu", "cpu.cfs_quota_us"],
  ["cpu", "cpu.cfs_burst_us"],
  ["pids", "pids.max"],
  ["devices", "devices.list"],
];

/** Reads the limits of a sandbox's cgroups (before a checkpoint; files a kernel lacks are skipped). */
export async function saveSettings(path: string): Promise<CgroupSetting[]> {
  const out: CgroupSetting[] = [];
  for (const [c, f] of SAVED_SETTINGS) {
    const v = await fs.readFile(`${cgDir(c, path)}/${f}`, "utf8").catch(() => null);
    if (v !== null) out.push([c, f, v.trim()]);
  }
  return out;
}

/**
 * Makes the cpuset parents of `path` (e.g. /hangar) and gives those without CPUs and memory
 * nodes their parent's: a cpuset cgroup takes no task, and no child its own CPUs, before that.
 */
export async function initCpusetParents(path: string): Promise<void> {
  const parts = path.split("/").filter(Boolean);
  for (let i = 1; i < parts.length; i++) {
    const dir = cgDir("cpuset", `/${parts.slice(0, i).join("/")}`);
    await fs.mkdir(dir, { recursive: true });
    const up = dir.slice(0, dir.lastIndexOf("/"));
    for (const f of ["cpuset.cpus", "cpuset.mems"]) {
      if ((await fs.readFile(`${dir}/${f}`, "utf8")).trim()) continue;
      await fs.writeFile(`${dir}/${f}`, (await fs.readFile(`${up}/${f}`, "utf8")).trim());
    }
  }
}

/**
 * Creates a sandbox's cgroups in every hierarchy (parents too, e.g. after a reboot) and writes
 * saved settings back: the devices list as deny-all plus its allow rules, the rest as they were.
 */
export async function createWithSettings(path: string, hierarchies: string[], settings: CgroupSetting[]): Promise<void> {
  for (const h of hierarchies) await fs.mkdir(cgDir(h, path), { recursive: true });
  if (hierarchies.includes("cpuset")) await initCpusetParents(path);
  for (const [c, f, v] of settings) {
    if (!hierarchies.includes(c)) continue;
    const dir = cgDir(c, path);
    if (f === "devices.list") {
      await fs.writeFile(`${dir}/devices.deny`, "a");
      for (const rule of v.split("\n").filter(Boolean)) await fs.writeFile(`${dir}/devices.allow`, rule);
    } else if (v !== "") {
      await fs.writeFile(`${dir}/${f}`, v);
    }
  }
}
