// LinuxDriver: every sandbox is an OCI container run by crun — own mount/PID/IPC/UTS/network
// (and user) namespaces, overlayfs root (shared read-only image + per-sandbox tmpfs upper sized to
// half the memory limit), cgroup v1 limits, seccomp, no new privileges, a minimal capability set —
// with the agent as PID 1, dialing the node over a unix socket.

import { createHash } from "node:crypto";
import { promises as fs, existsSync } from "node:fs";
import { basename, dirname } from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { availableParallelism, constants as osConstants } from "node:os";
import { HangarError, randomToken, silentLogger, type Logger } from "@hangar/common";
import type { AgentClient } from "@hangar/sandbox-agent";
import type {
  DriverCapabilities,
  LiveMountSpec,
  ImageConfig,
  RuntimeClass,
  RuntimeNetwork,
  RuntimeSandboxSpec,
  SandboxDriver,
  SandboxHandle,
  SandboxRunState,
  SandboxStats,
  SnapshotCapture,
  AgentBuild,
  AgentState,
} from "../driver.js";
import { SANDBOX_API_PORT, hasApiRelay } from "../driver.js";
import type { ImageStore, ResolvedImage } from "../images/types.js";
import { buildConfig, cpuCount, cpuQuota, parseCpuList, pickCpus, AGENT_PATH, AGENT_RUN_DIR, TRUST_STORE } from "./config.js";
import { egressEnv, platformEnv } from "../egress.js";
import * as cg from "./cgroups.js";
import { Crun, mountTable } from "./crun.js";
import { SandboxNetwork, type NetSlot, type NetworkOptions } from "./network.js";
import { IdmappedLowers, DEFAULT_USERNS, type UserNsRange } from "./userns.js";
import { defaultAgentListen, type AgentListen } from "./agent.js";
import { AGENT_VERSION, agentBinaryPath } from "@hangar/sandbox-agent";
import { run, runRaw, sleep } from "./proc.js";
import { ensureLauncher } from "./launcher.js";
import { DEFAULT_AGENT_INSTALL_DIR, installHostBinary } from "./host-files.js";
import { mountInto, swapFileMount, unmountFrom } from "./live-mounts.js";
import { Lxcfs } from "./lxcfs.js";
import { detectCriu, dumpArgs, restoreArgs, netHookEnv, criuLogErrors, dirBytes, NET_HOOK, type CriuTools } from "./criu.js";

export interface LinuxDriverOptions {
  /** Driver state (one small JSON file per sandbox) — survives restarts. */
  stateDir: string;
  /** Runtime files: agent socket dirs (`<runDir>/s/<id>`), bundles, crun state. Default /run/hangar. */
  runDir?: string;
  images: ImageStore;
  /** Network options, or false for sandboxes with loopback only. */
  network?: NetworkOptions | false;
  logger?: Logger;
  /** crun binary. Default "crun". */
  crun?: string;
  /** runsc (gVisor) binary for runtimeClass "gvisor", or false. Default "runsc" when installed. */
  runsc?: string | false;
  /** cgroup parent of every sandbox: `/<cgroupParent>/<id>`. Default "hangar". */
  cgroupParent?: string;
  /** Shared user-namespace range, or false to run sandboxes in the host's user namespace. */
  userns?: UserNsRange | false;
  /** pids.max of a sandbox. Default 1024. */
  pidsLimit?: number;
  /**
   * Static agent binary mounted as PID 1. Default: @hangar/sandbox-agent's build. It is copied into
   * agentInstallDir (keyed by its hash) and bound from there, never from where it was built.
   */
  agentBinary?: string;
  /** Root-owned, world-traversable dir the agent is installed into. Default /opt/hangar/agent. */
  agentInstallDir?: string;
  /** Listen factory of the agent client. Default: listenForAgent of @hangar/sandbox-agent. */
  agentListen?: AgentListen;
  /** How long create() waits for the agent. Default 10 s. */
  connectTimeoutMs?: number;
  /** Where the hangar-launch helper is built. Default <stateDir>/bin. */
  launcherDir?: string;
  /**
   * The node's egress proxy: its port on the host (a sandbox reaches it at its gateway) and the CA
   * certificates (PEM) sandboxes trust besides their image's: the Hangar CA and any extra CA.
   */
  egress?: { port: number; caPem: string };
  /**
   * Checkpointed standby tier (CRIU ≥ 4.2): `criu` binary (default: the one criu-install.sh puts in
   * /opt/hangar/criu, used when `criu check` passes), CRIU log level, or false to turn it off.
   */
  checkpoint?: { criu?: string; logLevel?: number } | false;
  /**
   * Each slot's netns is owned by a user namespace of the sandbox range, which the container joins
   * (CRIU can only checkpoint a netns owned by the sandbox's user namespace). Default: on with a
   * user namespace and a network, unless HANGAR_USERNS_NETNS=0.
   */
  netnsInUserns?: boolean;
  /**
   * LXCFS (the sandbox's own /proc/meminfo, cpuinfo, ...): the daemon to use and supervise, or
   * false for none. Default: the machine-wide one (/var/lib/hangar-lxcfs) when lxcfs is installed.
   */
  lxcfs?: Lxcfs | false;
  /**
   * Give a sandbox smaller than the host its own CPUs (a cpuset of its quota rounded up, the least
   * used ones), so nproc and sched_getaffinity tell its size as on a VM. Default true.
   */
  cpuPinning?: boolean;
}

/** How often the lxcfs daemon is checked (and started again, and bound again into sandboxes). */
const LXCFS_CHECK_MS = 5_000;

interface SandboxRecord {
  v: 1;
  id: string;
  spec: RuntimeSandboxSpec;
  imageId: string;
  /** Overlay lower actually used (the idmapped view under userns). */
  lowerDir: string;
  image: ImageConfig;
  slot: number | null;
  address: string;
  userns: UserNsRange | null;
  runtimeClass: RuntimeClass;
  /** The agent presents it when it connects (HANGAR_AGENT_TOKEN). */
  agentToken: string;
  createdAt: string;
  /** The container joins the user namespace owning its netns (the slot's) instead of making one. */
  usernsOfNetns?: boolean;
  /** The installed agent binary the sandbox was started with (absent in records of older servers: the built one). */
  agentBinary?: string;
  /** Set while checkpointed: memory and processes in CRIU images, files in a tar, under checkpointDir(id). */
  checkpoint?: CheckpointInfo;
  /** Mounts made into the running sandbox (drives); re-applied after a restart or a restore. */
  liveMounts?: LiveMountSpec[];
  /** In-place upgrades of its agent (upgradeAgent) since it was started, and when the last was. */
  agentUpgrades?: number;
  agentUpgradedAt?: string;
}

interface CheckpointInfo {
  at: string;
  /** cgroup limits to recreate before the restore (crun removed the cgroups with the container). */
  cgroups: cg.CgroupSetting[];
  dumpMs: number;
  /** Saving the writable layer (tar) and unmounting it. */
  filesMs: number;
  imageBytes: number;
  filesBytes: number;
}

/** What a snapshot with processes records beside its CRIU images (meta.json). */
interface SnapshotMeta {
  v: 1;
  /** Runtime id of the sandbox dumped: the images name its host paths. */
  sourceId: string;
  imageId: string;
  /** The token the dumped agent holds in memory. */
  agentToken: string;
  cgroups: cg.CgroupSetting[];
  memoryMb: number;
}

interface Live {
  rec: SandboxRecord;
  agent: AgentClient;
  child: ChildProcess | null;
  exited: Promise<void>;
  handle: SandboxHandle;
}

const ID_RE = /^[a-z0-9]{1,32}$/;
/** How long a detached agent stays away without SIGUSR1 (a day: the restore signals it). */
const DETACH_QUIET_MS = 86_400_000;
const round1 = (n: number) => Math.round(n * 10) / 10;
/** Size of a sandbox's writable layer (tmpfs): half its memory; also the most CRIU keeps of a deleted file. */
const writableBytes = (rec: { spec: { memoryMb: number } }) => Math.max(1, Math.floor(rec.spec.memoryMb / 2)) * 1024 * 1024;
/** Descriptor under which crun finds the user namespace to join (config: /proc/self/fd/3). */
const USERNS_FD = 3;

export class LinuxDriver implements SandboxDriver {
  readonly name = "linux";
  readonly capabilities: DriverCapabilities = { freeze: true, checkpoint: false, isolated: true };

  readonly runDir: string;
  readonly stateDir: string;
  readonly cgroupParent: string;
  readonly network: SandboxNetwork | null;
  private readonly egress: { port: number; caPem: string } | null;
  readonly crun: Crun;
  /** gVisor, when runsc is installed (known after preflight). */
  gvisor: Crun | null;
  private readonly images: ImageStore;
  private readonly log: Logger;
  private readonly userns: UserNsRange | null;
  private readonly lowers: IdmappedLowers | null;
  private readonly pidsLimit: number;
  /** The agent as built, and its installed copy (set by preflight) that new sandboxes bind. */
  private readonly agentSource: string;
  private readonly agentInstallDir: string;
  private agentBinary = "";
  private readonly agentListen: AgentListen;
  private readonly connectTimeoutMs: number;
  private readonly launcherDir: string;
  private readonly live = new Map<string, Live>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private limits = { nofile: 20000, nproc: 32768 };
  private hierarchies: string[] = [...cg.REQUIRED_CONTROLLERS];
  private ready: Promise<void> | null = null;
  private readonly checkpointOpts: { criu?: string; logLevel?: number } | false;
  /** CRIU when the checkpointed tier is available (known after preflight), else why not. */
  private criu: CriuTools | null = null;
  private criuReason = "not probed yet";
  private readonly pingRange: [number, number] = [0, 2147483647];
  /** Slots' netns are owned by a user namespace of the range, which containers join. */
  private readonly netnsInUserns: boolean;
  private readonly lxcfs: Lxcfs | null;
  /** pid of the lxcfs daemon new sandboxes bind (null: none answers; sandboxes see the host's /proc). */
  private lxcfsPid: number | null = null;
  private lxcfsTimer: NodeJS.Timeout | null = null;
  private lxcfsBusy = false;
  /** Host CPUs sandboxes are placed on (the root cpuset's), or null: no pinning. */
  private hostCpuList: number[] | null = null;
  private readonly cpuPinning: boolean;
  /** The CPUs given to each sandbox, and when (entries of sandboxes gone are pruned when placing). */
  private readonly cpuUse = new Map<string, { cpus: number[]; at: number }>();

  constructor(opts: LinuxDriverOptions) {
    this.runDir = opts.runDir ?? "/run/hangar";
    this.stateDir = opts.stateDir;
    this.images = opts.images;
    this.log = opts.logger ?? silentLogger;
    this.cgroupParent = opts.cgroupParent ?? "hangar";
    this.userns = opts.userns === false ? null : (opts.userns ?? DEFAULT_USERNS);
    this.lowers = this.userns ? new IdmappedLowers(`${this.runDir}/lower`, this.userns) : null;
    this.pidsLimit = opts.pidsLimit ?? 1024;
    this.agentSource = opts.agentBinary ?? agentBinaryPath();
    this.agentInstallDir = opts.agentInstallDir ?? DEFAULT_AGENT_INSTALL_DIR;
    this.agentListen = opts.agentListen ?? defaultAgentListen;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.launcherDir = opts.launcherDir ?? `${opts.stateDir}/bin`;
    // (volumes are mounted on the host under <runDir>/volumes after the runtime's namespace is made)
    this.lxcfs = opts.lxcfs === false ? null : (opts.lxcfs ?? new Lxcfs({ logger: this.log }));
    this.cpuPinning = opts.cpuPinning ?? true;
    // (lxcfs mounts beneath its dir, maybe again later: shared like the volumes)
    const shared = [`${this.runDir}/b`, "/run/netns", `${this.runDir}/volumes`, ...(this.lxcfs?.installed ? [this.lxcfs.dir] : [])];
    this.crun = new Crun(opts.crun ?? "crun", `${this.runDir}/crun`, `${this.runDir}/ns`, shared, "crun");
    this.gvisor = opts.runsc === false ? null : new Crun(opts.runsc ?? "runsc", `${this.runDir}/runsc`, `${this.runDir}/ns`, shared, "runsc");
    const netOpts: NetworkOptions | null = opts.network === false ? null : { ...(opts.network ?? {}) };
    if (netOpts && this.userns && !netOpts.pingGroupRange) {
      netOpts.pingGroupRange = [this.userns.hostId, this.userns.hostId + this.userns.size - 1];
    }
    if (netOpts?.pingGroupRange) this.pingRange = netOpts.pingGroupRange;
    this.netnsInUserns = !!netOpts && !!this.userns && (opts.netnsInUserns ?? process.env.HANGAR_USERNS_NETNS !== "0");
    if (netOpts && this.userns && this.netnsInUserns) {
      // each slot's netns is owned by a user namespace of the range, which the container joins:
      // CRIU can only checkpoint namespaces owned by the sandbox's user namespace
      const u = this.userns;
      netOpts.createNetns = async (s) => {
        await run(this.crun.launcher, ["--netns-in-userns", s.netnsPath, String(u.hostId), String(u.size)]);
      };
    }
    this.checkpointOpts = opts.checkpoint ?? {};
    this.egress = netOpts && opts.egress ? opts.egress : null;
    if (netOpts && this.egress) netOpts.egressPort = this.egress.port;
    this.network = netOpts ? new SandboxNetwork(netOpts, this.log) : null;
  }

  /** Why the checkpointed tier is off ("" when it is on). */
  get checkpointReason(): string {
    return this.criu ? "" : this.criuReason;
  }

  // ---- paths and runtimes

  private runtimes(): Crun[] {
    return this.gvisor ? [this.crun, this.gvisor] : [this.crun];
  }

  private runtimeOf(rec: SandboxRecord | null): Crun {
    if (rec?.runtimeClass === "gvisor") {
      if (!this.gvisor) throw new HangarError("not_configured", "runtime class gvisor needs runsc (Debian package runsc)");
      return this.gvisor;
    }
    return this.crun;
  }

  private bundle(id: string): string {
    return `${this.runDir}/b/${id}`;
  }
  /** Host dir bind-mounted read-only at /.hangar/run; holds agent.sock (and the sandbox API's api.sock). */
  agentDir(id: string): string {
    return `${this.runDir}/s/${id}`;
  }

  /**
   * Host uid of the sandbox's root (its user-namespace range start; 0 without one, or under
   * gVisor). A socket the node creates in agentDir(id) for the agent to connect to must be owned
   * by this uid (or be world-writable) — e.g. api.sock.
   */
  async sandboxRootUid(id: string): Promise<number> {
    const rec = this.live.get(id)?.rec ?? (await this.readRecord(id));
    return rec?.userns?.hostId ?? 0;
  }
  private recordFile(id: string): string {
    return `${this.stateDir}/sandboxes/${id}.json`;
  }
  /** CRIU images (img/) and the saved writable layer (files.tar) of a checkpointed sandbox. */
  checkpointDir(id: string): string {
    return `${this.stateDir}/checkpoints/${id}`;
  }
  private hookFile(): string {
    return `${this.runDir}/criu-net-hook.sh`;
  }
  cgroupPath(id: string): string {
    return `/${this.cgroupParent}/${id}`;
  }

  // ---- preflight

  preflight(): Promise<void> {
    this.ready ??= this.doPreflight().catch((e) => {
      this.ready = null;
      throw e;
    });
    return this.ready;
  }

  private async doPreflight(): Promise<void> {
    if (process.getuid?.() !== 0) throw new HangarError("not_configured", "the linux driver must run as root");
    for (const [cmd, pkg] of [[this.crun.binary, "crun"], ["nsenter", "util-linux"], ["ip", "iproute2"], ["nft", "nftables"], ["perl", "perl-base"]] as const) {
      if (!findCommand(cmd)) throw new HangarError("not_configured", `${cmd} is missing (Debian package ${pkg})`);
    }
    if (!existsSync(this.agentSource)) {
      throw new HangarError("not_configured", `agent binary ${this.agentSource} is missing (npm run build -w @hangar/sandbox-agent)`);
    }
    this.agentBinary = await installHostBinary(this.agentSource, this.agentInstallDir);
    await cg.ensureCgroupsV1();
    this.hierarchies = await cg.mountedHierarchies();
    if (this.cpuPinning && this.hierarchies.includes("cpuset")) {
      const list = parseCpuList(await fs.readFile(`${cg.CGROUP_ROOT}/cpuset/cpuset.effective_cpus`, "utf8").catch(() => ""));
      this.hostCpuList = list.length > 1 ? list : null;
    }
    this.limits = await hostHardLimits();
    await fs.mkdir(this.runDir, { recursive: true, mode: 0o711 });
    await fs.chmod(this.runDir, 0o711);
    for (const d of ["b", "s", "lower"]) await fs.mkdir(`${this.runDir}/${d}`, { recursive: true, mode: 0o711 });
    await fs.mkdir(`${this.stateDir}/sandboxes`, { recursive: true, mode: 0o700 });
    const launcher = await ensureLauncher(this.launcherDir);
    await this.crun.setup(launcher);
    if (this.gvisor && findCommand(this.gvisor.binary)) await this.gvisor.setup(launcher);
    else this.gvisor = null;
    await this.images.init();
    if (this.lxcfs) {
      this.lxcfsPid = await this.lxcfs.ensure().catch((e: unknown) => {
        this.log.warn({ err: e }, "lxcfs is unavailable: sandboxes see the host's /proc/meminfo");
        return null;
      });
      this.lxcfsTimer ??= setInterval(() => void this.superviseLxcfs(), LXCFS_CHECK_MS).unref();
    }
    await this.detectCheckpoint();
    const records = await this.readRecords();
    await this.network?.init(
      records.flatMap((r) => (r.slot === null ? [] : [r.slot])),
      records.flatMap((r) => (r.slot !== null && r.spec.network ? [{ slot: r.slot, mode: r.spec.network.egress }] : [])),
    );
    await this.sweepStrays(new Set(records.map((r) => r.id)));
  }

  /** Enables the checkpointed tier when a CRIU ≥ 4.2 passes `criu check` (and a network exists). */
  private async detectCheckpoint(): Promise<void> {
    this.criu = null;
    this.capabilities.checkpoint = false;
    if (this.checkpointOpts === false) this.criuReason = "turned off";
    else if (!this.network) this.criuReason = "needs the sandbox network";
    else if (!this.netnsInUserns) this.criuReason = "needs network namespaces owned by the sandboxes' user namespace (user namespaces on, HANGAR_USERNS_NETNS not 0)";
    else {
      const d = await detectCriu(this.checkpointOpts.criu);
      this.criuReason = d.reason ?? "";
      this.criu = d.tools;
    }
    if (this.criu) {
      await fs.writeFile(this.hookFile(), NET_HOOK, { mode: 0o700 });
      await fs.mkdir(`${this.stateDir}/checkpoints`, { recursive: true, mode: 0o700 });
      this.capabilities.checkpoint = true;
      this.log.info({ tiers: ["frozen", "checkpointed"], criu: this.criu.version }, `standby tiers: frozen, checkpointed (CRIU ${this.criu.version})`);
    } else {
      this.log.warn({ tiers: ["frozen"], reason: this.criuReason }, `standby tiers: frozen only; the checkpointed tier is off: ${this.criuReason}`);
    }
  }

  /** Removes containers, mounts and dirs of this driver that no record names (a crash mid-create). */
  private async sweepStrays(known: Set<string>): Promise<void> {
    const ids = new Set<string>();
    for (const d of ["b", "s"]) for (const n of await fs.readdir(`${this.runDir}/${d}`).catch(() => [] as string[])) ids.add(n);
    for (const rt of this.runtimes()) for (const n of await rt.list().catch(() => [] as string[])) ids.add(n);
    for (const n of await fs.readdir(`${this.stateDir}/checkpoints`).catch(() => [] as string[])) ids.add(n);
    for (const id of ids) {
      if (known.has(id) || !ID_RE.test(id)) continue;
      this.log.info({ id }, "removing leftovers of an unknown sandbox");
      await this.teardown(id, null).catch((e) => this.log.warn({ err: e, id }, "sweep failed"));
    }
  }

  private async readRecords(): Promise<SandboxRecord[]> {
    const out: SandboxRecord[] = [];
    for (const f of await fs.readdir(`${this.stateDir}/sandboxes`).catch(() => [] as string[])) {
      if (!f.endsWith(".json")) continue;
      const r = await this.readRecord(f.slice(0, -5));
      if (r) out.push(r);
    }
    return out;
  }

  private async readRecord(id: string): Promise<SandboxRecord | null> {
    try {
      return JSON.parse(await fs.readFile(this.recordFile(id), "utf8")) as SandboxRecord;
    } catch {
      return null;
    }
  }

  private async writeRecord(rec: SandboxRecord): Promise<void> {
    const f = this.recordFile(rec.id);
    await fs.writeFile(`${f}.tmp`, JSON.stringify(rec), { mode: 0o600 });
    await fs.rename(`${f}.tmp`, f);
  }

  // ---- images

  async ensureImage(ref: string, onProgress?: (line: string) => void): Promise<ImageConfig> {
    return (await this.images.resolve(ref, onProgress)).config;
  }

  // ---- lifecycle

  /** Runs fn after every earlier operation on the same sandbox. */
  private serialize<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.locks.set(id, next);
    void next
      .finally(() => {
        if (this.locks.get(id) === next) this.locks.delete(id);
      })
      .catch(() => undefined);
    return next;
  }

  private validate(spec: RuntimeSandboxSpec): void {
    if (!ID_RE.test(spec.id)) throw new HangarError("validation_failed", `bad runtime id ${JSON.stringify(spec.id)}`);
    if (!Number.isInteger(spec.memoryMb) || spec.memoryMb < 64 || spec.memoryMb > 1024 * 1024) {
      throw new HangarError("validation_failed", `memory must be an integer number of MB, at least 64`);
    }
    if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(spec.name)) throw new HangarError("invalid_name", `bad sandbox name ${JSON.stringify(spec.name)}`);
    if (!["default", "gvisor"].includes(spec.runtimeClass ?? "default")) {
      throw new HangarError("validation_failed", `unknown runtime class ${JSON.stringify(spec.runtimeClass)}`);
    }
    for (const k of Object.keys(spec.envs)) {
      if (!k || k.includes("=") || k.includes("\0")) throw new HangarError("validation_failed", `bad environment variable name ${JSON.stringify(k)}`);
    }
    if (spec.network && !this.egress) throw new HangarError("not_configured", "this node has no egress proxy: spec.network policies cannot be enforced here");
  }

  create(spec: RuntimeSandboxSpec): Promise<SandboxHandle> {
    this.validate(spec);
    return this.serialize(spec.id, async () => {
      await this.preflight();
      if (this.live.has(spec.id) || existsSync(this.recordFile(spec.id)) || existsSync(this.bundle(spec.id))) {
        throw new HangarError("sandbox_already_exists", `sandbox ${spec.id} already exists on this node`);
      }
      const gvisor = spec.runtimeClass === "gvisor";
      if (gvisor && !this.gvisor) throw new HangarError("not_configured", "runtime class gvisor needs runsc (Debian package runsc)");
      // gVisor runs its own user namespace and kernel: no idmapped layer, no host-side userns
      const userns = gvisor ? null : this.userns;
      const [image, slot] = await Promise.all([
        this.images.resolve(spec.image),
        this.network ? this.network.acquire() : Promise.resolve(null),
      ]);
      let rec: SandboxRecord | null = null;
      try {
        rec = await this.newRecord(spec, image, slot, userns, randomToken(24));
        return (await this.start(rec, "all")).handle;
      } catch (e) {
        await this.teardown(spec.id, slot).catch((e2) => this.log.warn({ err: e2, id: spec.id }, "cleanup after failed create"));
        throw e;
      }
    });
  }

  /** After a failed CRIU restore: the restored tree (if any) stopped, its layers unmounted, its cgroup gone. */
  private async undoRestore(id: string, rec: SandboxRecord, reaper: ChildProcess | null, agent: AgentClient): Promise<void> {
    if (reaper && reaper.exitCode === null) await this.stopContainer(id, { rec, agent, child: reaper, exited: new Promise((r) => reaper.once("close", () => r())), handle: null as never }, rec).catch(() => {});
    else await this.stopContainer(id, null, rec).catch(() => {});
    const B = this.bundle(id);
    const mounts = await mountTable();
    const ops = [`${B}/rootfs`, `${B}/rw`].filter((t) => mounts.has(t)).flatMap((t) => ["--umount", t]);
    if (ops.length) await run(this.crun.launcher, ops).catch(() => {});
    await cg.removeCgroup(this.cgroupPath(id), this.hierarchies).catch(() => {});
  }

  /** Writes the record of a new sandbox (its lower view made, its egress mode set) and returns it. */
  private async newRecord(spec: RuntimeSandboxSpec, image: ResolvedImage, slot: NetSlot | null, userns: SandboxRecord["userns"], agentToken: string): Promise<SandboxRecord> {
    const lowerDir = userns && this.lowers ? await this.lowers.get(image.id, image.lowerDir) : image.lowerDir;
    const rec: SandboxRecord = {
      v: 1,
      id: spec.id,
      spec,
      imageId: image.id,
      lowerDir,
      image: image.config,
      slot: slot?.index ?? null,
      address: slot?.sandboxIp ?? "",
      userns,
      runtimeClass: spec.runtimeClass ?? "default",
      agentToken,
      agentBinary: this.agentBinary,
      createdAt: new Date().toISOString(),
      usernsOfNetns: !!slot && !!userns && this.netnsInUserns,
    };
    await this.writeRecord(rec);
    if (slot && spec.network) await this.network!.setEgress(slot, spec.network.egress);
    return rec;
  }

  /** Environment of every process: HOME and PATH defaults, the image's env, then the spec's. */
  private envOf(rec: SandboxRecord): Record<string, string> {
    const proxied = rec.spec.network && rec.slot !== null && this.network?.egress;
    return {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      HOME: rec.image.home,
      ...rec.image.env,
      ...(proxied ? egressEnv(rec.spec.network!, this.network!.proxyUrl(this.network!.slot(rec.slot!))) : {}),
      ...rec.spec.envs,
      ...(rec.spec.platform && rec.slot !== null && this.network?.egress ? platformEnv(this.network.proxyUrl(this.network.slot(rec.slot))) : {}),
    };
  }

  /**
   * The egress CA files of an image, made once: ca.crt (the CAs sandboxes trust besides their
   * image's) and bundle.crt (the image's Debian bundle, else the host's, plus those).
   */
  private async caDir(rec: SandboxRecord): Promise<{ caDir?: string; trustStore?: boolean }> {
    if (!this.egress) return {};
    const imageBundle = `${rec.lowerDir}${TRUST_STORE}`;
    const own = await fs.lstat(imageBundle).then((st) => st.isFile(), () => false);
    const dir = `${this.runDir}/ca/${rec.imageId}-${createHash("sha256").update(this.egress.caPem).digest("hex").slice(0, 12)}`;
    if (!existsSync(`${dir}/bundle.crt`)) {
      const base = await fs.readFile(own ? imageBundle : TRUST_STORE, "utf8").catch(() => "");
      const tmp = `${dir}.${randomToken(6)}`;
      await fs.mkdir(tmp, { recursive: true, mode: 0o755 });
      await fs.writeFile(`${tmp}/ca.crt`, this.egress.caPem, { mode: 0o644 });
      await fs.writeFile(`${tmp}/bundle.crt`, `${base.trimEnd()}\n${this.egress.caPem}`, { mode: 0o644 });
      await fs.chmod(`${this.runDir}/ca`, 0o755);
      await fs.rename(tmp, dir).catch(() => fs.rm(tmp, { recursive: true, force: true }));
    }
    // gVisor cannot bind single files; the variables point at /.hangar/ca there
    return { caDir: dir, trustStore: own && rec.runtimeClass !== "gvisor" };
  }

  /** Moves a sandbox's address into the egress sets of its new spec when they differ. */
  private async syncEgress(prev: SandboxRecord, next: SandboxRecord): Promise<void> {
    if (next.slot === null || !this.network || prev.spec.network?.egress === next.spec.network?.egress) return;
    await this.network.setEgress(this.network.slot(next.slot), next.spec.network?.egress ?? null);
  }

  updateNetwork(id: string, network: RuntimeNetwork | undefined): Promise<Record<string, string>> {
    return this.serialize(id, async () => {
      await this.preflight();
      const rec = this.live.get(id)?.rec ?? (await this.readRecord(id));
      if (!rec) throw new HangarError("sandbox_not_found", `sandbox ${id} is not on this node`);
      if (network && (!this.egress || rec.slot === null)) throw new HangarError("not_configured", "this node has no egress proxy: spec.network policies cannot be enforced here");
      const { network: _old, ...rest } = rec.spec;
      const next: SandboxRecord = { ...rec, spec: network ? { ...rest, network } : rest };
      await this.syncEgress(rec, next);
      await this.writeRecord(next);
      const live = this.live.get(id);
      const env = this.envOf(next);
      if (live) {
        live.rec = next;
        live.handle = { ...live.handle, env };
      }
      return env;
    });
  }

  /**
   * Writes the bundle and starts the container; `mounts` says which of the tmpfs and the overlay
   * still need mounting. Resolves once the agent is connected.
   */
  private async start(rec: SandboxRecord, mounts: "all" | "overlay" | "none"): Promise<Live> {
    const id = rec.id;
    const B = this.bundle(id);
    const env = await this.writeBundle(rec);
    const agent = await this.listenAgent(rec);
    try {
      const child = this.runtimeOf(rec).spawnRun(id, B, [...this.mountOps(rec, mounts), ...this.nsOps(rec)]);
      const live = await this.waitReady(rec, child, agent, env);
      this.live.set(id, live);
      await this.applyLiveMounts(rec);
      return live;
    } catch (e) {
      await agent.close().catch(() => {});
      throw e;
    }
  }

  /** The CPU set of a sandbox smaller than the host: its vCPU count of the least used host CPUs. */
  private placeCpus(rec: SandboxRecord): { cpus?: string } {
    if (!this.hostCpuList) return {};
    const count = cpuCount(rec.spec.memoryMb, this.hostCpuList.length);
    this.cpuUse.delete(rec.id);
    if (count >= this.hostCpuList.length) return {};
    const use = new Map<number, number>();
    for (const [id, u] of this.cpuUse) {
      // a sandbox not running (stopped, checkpointed, deleted) a minute after placing holds none
      if (!this.live.has(id) && Date.now() - u.at > 60_000) this.cpuUse.delete(id);
      else for (const c of u.cpus) use.set(c, (use.get(c) ?? 0) + 1);
    }
    const cpus = pickCpus(count, this.hostCpuList, use);
    this.cpuUse.set(rec.id, { cpus, at: Date.now() });
    return { cpus: cpus.join(",") };
  }

  /** Counts the CPU set of a sandbox a previous server started (adopted) in the placement of new ones. */
  private async noteCpus(id: string): Promise<void> {
    if (!this.hostCpuList || this.cpuUse.has(id)) return;
    const cpus = parseCpuList(await fs.readFile(`${cg.cgDir("cpuset", this.cgroupPath(id))}/cpuset.cpus`, "utf8").catch(() => ""));
    if (cpus.length && cpus.length < this.hostCpuList.length) this.cpuUse.set(id, { cpus, at: Date.now() });
  }

  /** Writes the bundle (config.json, the /etc files) and the agent dir; returns the processes' environment. */
  private async writeBundle(rec: SandboxRecord): Promise<Record<string, string>> {
    const id = rec.id;
    const B = this.bundle(id);
    const A = this.agentDir(id);
    const env = this.envOf(rec);
    const slot = rec.slot === null || !this.network ? null : this.network.slot(rec.slot);
    await Promise.all([fs.mkdir(`${B}/rootfs`, { recursive: true }), fs.mkdir(`${B}/rw`, { recursive: true }), fs.mkdir(`${B}/etc`, { recursive: true }), fs.mkdir(A, { recursive: true, mode: 0o755 })]);
    await fs.rm(`${B}/pid`, { force: true });
    const hosts = `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${slot ? `${slot.sandboxIp}\t${rec.spec.name}\n` : `127.0.1.1\t${rec.spec.name}\n`}`;
    const resolv = (this.network?.nameservers ?? []).map((n) => `nameserver ${n}\n`).join("");
    // gVisor has its own /proc (its sentry reports the sandbox's memory)
    const procBinds = this.lxcfs && this.lxcfsPid !== null && rec.runtimeClass !== "gvisor" ? this.lxcfs.binds() : [];
    // which daemon's files it binds (the supervisor binds a new daemon's again)
    if (procBinds.length) await fs.writeFile(`${B}/lxcfs`, String(this.lxcfsPid));
    else await fs.rm(`${B}/lxcfs`, { force: true });
    const cpus = this.placeCpus(rec);
    // (runsc, unlike crun, sets its cpuset only beneath parents that have CPUs)
    if (cpus.cpus && rec.runtimeClass === "gvisor") await cg.initCpusetParents(this.cgroupPath(id));
    const config = buildConfig({
      hostname: rec.spec.name,
      rootfs: `${B}/rootfs`,
      // the sandbox API at localhost:8080 inside, as Blaxel's — unless the user's own server takes 8080 or it
      // is a workload's replica (agents, functions and job tasks have no sandbox API inside)
      args: [AGENT_PATH, "--socket", `${AGENT_RUN_DIR}/agent.sock`, ...(hasApiRelay(rec.spec) ? ["--api-port", String(SANDBOX_API_PORT), "--api-socket", `${AGENT_RUN_DIR}/api.sock`] : [])],
      env: { ...env, HANGAR_AGENT_TOKEN: rec.agentToken },
      cwd: "/",
      agentBinary: rec.agentBinary ?? this.agentSource,
      agentRunDir: A,
      etcDir: `${B}/etc`,
      netnsPath: slot?.netnsPath ?? null,
      cgroupsPath: this.cgroupPath(id),
      memoryMb: rec.spec.memoryMb,
      hostCpus: availableParallelism(),
      ...cpus,
      pidsLimit: this.pidsLimit,
      nofile: this.limits.nofile,
      nproc: this.limits.nproc,
      userns: rec.userns,
      ...(rec.usernsOfNetns && slot ? { usernsPath: `/proc/self/fd/${USERNS_FD}` } : {}),
      cgroupMount: rec.runtimeClass !== "gvisor",
      gvisor: rec.runtimeClass === "gvisor",
      ...(await this.caDir(rec)),
      ...(rec.spec.mounts?.length ? { binds: rec.spec.mounts } : {}),
      ...(procBinds.length ? { procBinds } : {}),
    });
    await Promise.all([
      fs.writeFile(`${B}/etc/hostname`, `${rec.spec.name}\n`),
      fs.writeFile(`${B}/etc/hosts`, hosts),
      fs.writeFile(`${B}/etc/resolv.conf`, resolv),
      fs.writeFile(`${B}/config.json`, JSON.stringify(config), { mode: 0o600 }),
    ]);
    return env;
  }

  /** hangar-launch operations that open the user namespace the container joins (see usernsOfNetns). */
  private nsOps(rec: SandboxRecord): string[] {
    if (!rec.usernsOfNetns || rec.slot === null || !this.network) return [];
    return ["--userns-of-netns", this.network.slot(rec.slot).netnsPath, String(USERNS_FD)];
  }

  /** hangar-launch operations that mount the writable tmpfs and/or the overlay root. */
  private mountOps(rec: SandboxRecord, mounts: "all" | "overlay" | "none"): string[] {
    const B = this.bundle(rec.id);
    const owner = String(rec.userns?.hostId ?? 0);
    const ops: string[] = [];
    if (mounts === "all") {
      const size = writableBytes(rec);
      ops.push("--mount-tmpfs", `${B}/rw`, String(size), owner, owner, `hangar-${rec.id}`);
      ops.push("--mkdir", `${B}/rw/upper`, owner, owner, "--mkdir", `${B}/rw/work`, owner, owner);
    }
    if (mounts !== "none") {
      ops.push("--mount-overlay", `${B}/rootfs`, rec.lowerDir, `${B}/rw/upper`, `${B}/rw/work`, `hangar-${rec.id}`);
    }
    return ops;
  }

  private async listenAgent(rec: SandboxRecord): Promise<AgentClient> {
    const sock = `${this.agentDir(rec.id)}/agent.sock`;
    const client = await this.agentListen(sock, rec.agentToken);
    // the agent runs as the range's root on the host: let it connect
    if (rec.userns) await fs.chown(sock, rec.userns.hostId, rec.userns.hostId);
    return client;
  }

  private async waitReady(rec: SandboxRecord, child: ChildProcess, agent: AgentClient, env: Record<string, string>): Promise<Live> {
    const id = rec.id;
    const B = this.bundle(id);
    let stderr = "";
    child.stderr?.on("data", (b: Buffer) => {
      if (stderr.length < 8192) stderr += b.toString();
    });
    let exitedEarly: ((e: Error) => void) | null = null;
    const exited = new Promise<void>((resolve) => {
      // "close": after the exit and the end of stderr (launcher errors)
      child.once("close", (code, signal) => {
        resolve();
        if (exitedEarly) {
          const started = existsSync(`${B}/pid`);
          void fs.readFile(`${B}/runtime.log`, "utf8").catch(() => "").then((log) => {
            const why = (stderr + log).trim().slice(0, 2000) || (started ? "the agent exited" : "no message");
            exitedEarly?.(new HangarError("runtime_failed", `sandbox ${id} failed to start (exit ${code ?? signal}): ${why}`));
          });
        } else {
          this.log.info({ id, code, signal }, "sandbox container exited");
        }
      });
    });
    const ready = agent.waitConnected(this.connectTimeoutMs);
    try {
      await Promise.race([ready, new Promise<never>((_, reject) => (exitedEarly = reject))]);
    } catch (e) {
      if (child.exitCode === null && child.signalCode === null) await this.stopContainer(id, { rec, child, exited } as Live, rec);
      throw e;
    } finally {
      exitedEarly = null;
    }
    // crun 1.8 does not apply the OCI cpu.burst on cgroup v1: set it here.
    await cg.setCpuBurst(this.cgroupPath(id), cpuQuota(rec.spec.memoryMb, availableParallelism()).burst);
    const handle: SandboxHandle = { id, agent, address: rec.address, image: rec.image, env };
    return { rec, agent, child, exited, handle };
  }

  restart(id: string, spec: RuntimeSandboxSpec): Promise<SandboxHandle> {
    this.validate(spec);
    return this.serialize(id, async () => {
      await this.preflight();
      const rec = this.live.get(id)?.rec ?? (await this.readRecord(id));
      if (!rec) throw new HangarError("sandbox_not_found", `sandbox ${id} is not on this node`);
      let live = this.live.get(id);
      // a checkpointed sandbox comes back first: its files are in the checkpoint
      if (rec.checkpoint) live = await this.restoreOrRecover(rec, live ?? null);
      if (live) await live.agent.close().catch(() => {});
      await this.stopContainer(id, live ?? null, live?.rec ?? rec);
      this.live.delete(id);
      const mounts = await mountTable();
      if (!mounts.has(`${this.bundle(id)}/rw`)) throw new HangarError("sandbox_unavailable", `sandbox ${id} lost its files`);
      // new processes: the agent installed now
      const next: SandboxRecord = { ...(live?.rec ?? rec), spec: { ...spec, id }, agentBinary: this.agentBinary };
      // a new agent process: no upgrades in place yet
      delete next.agentUpgrades;
      delete next.agentUpgradedAt;
      await this.writeRecord(next);
      await this.syncEgress(rec, next);
      return (await this.start(next, mounts.has(`${this.bundle(id)}/rootfs`) ? "none" : "overlay")).handle;
    });
  }

  adopt(spec: RuntimeSandboxSpec): Promise<SandboxHandle | null> {
    return this.serialize(spec.id, async () => {
      await this.preflight();
      const id = spec.id;
      const known = this.live.get(id);
      if (known?.rec.checkpoint) return (await this.restoreOrRecover(known.rec, known)).handle;
      if (known && (await this.initPid(id)) !== null) return known.handle;
      if (known) {
        // its container died (e.g. gVisor's kernel OOM-killed): start it again below, files kept
        this.live.delete(id);
        await known.agent.close().catch(() => {});
      }
      const stored = await this.readRecord(id);
      if (!stored) {
        await this.teardown(id, null);
        return null;
      }
      if (stored.checkpoint) {
        // checkpointed by an earlier server (its images and files are on disk): it stays on disk
        // with its agent listener ready; the next wake restores it (restore() with this handle)
        const { network: _n2, ...base2 } = stored.spec;
        const rec: SandboxRecord = { ...stored, spec: spec.network ? { ...base2, network: spec.network } : base2 };
        if (stored.spec.network?.egress !== rec.spec.network?.egress) {
          await this.syncEgress(stored, rec);
          await this.writeRecord(rec);
        }
        if (rec.slot !== null && this.network) this.network.hold(rec.slot);
        const agent = await this.listenAgent(rec);
        const handle: SandboxHandle = { id, agent, address: rec.address, image: rec.image, env: this.envOf(rec) };
        this.live.set(id, { rec, agent, child: null, exited: Promise.resolve(), handle });
        return handle;
      }
      // the egress mode follows the spec the node passes (a change may not have reached the record)
      const { network: _n, ...base } = stored.spec;
      const rec: SandboxRecord = { ...stored, spec: spec.network ? { ...base, network: spec.network } : base };
      const mounts = await mountTable();
      const slot = rec.slot !== null && this.network ? this.network.slot(rec.slot) : null;
      if (!mounts.has(`${this.bundle(id)}/rw`) || (slot && !this.network!.intact(slot))) {
        // the writable layer (or the netns) is gone — after a reboot: nothing to re-attach to
        this.log.info({ id }, "sandbox lost its files or network; removing it");
        await this.teardown(id, slot);
        return null;
      }
      if (slot) this.network!.hold(slot.index);
      if (stored.spec.network?.egress !== rec.spec.network?.egress) {
        await this.syncEgress(stored, rec);
        await this.writeRecord(rec);
      }
      const pid = await this.initPid(id);
      if (pid !== null) {
        const agent = await this.listenAgent(rec);
        const env = this.envOf(rec);
        const frozen = (await cg.freezerState(this.cgroupPath(id)).catch(() => "THAWED")) !== "THAWED";
        // a frozen agent reconnects on thaw
        if (!frozen) {
          try {
            await agent.waitConnected(this.connectTimeoutMs);
          } catch (e) {
            await agent.close().catch(() => {});
            throw e;
          }
        }
        const handle: SandboxHandle = { id, agent, address: rec.address, image: rec.image, env };
        this.live.set(id, { rec, agent, child: null, exited: this.watchPid(pid), handle });
        void this.noteCpus(id);
        return handle;
      }
      // the container died but its files are there: start it again
      await this.runtimeOf(rec).delete(id);
      const next: SandboxRecord = { ...rec, spec: { ...spec, id }, agentBinary: this.agentBinary };
      // a new agent process: no upgrades in place yet
      delete next.agentUpgrades;
      delete next.agentUpgradedAt;
      await this.writeRecord(next);
      return (await this.start(next, mounts.has(`${this.bundle(id)}/rootfs`) ? "none" : "overlay")).handle;
    });
  }

  /** Resolves when a process that is not our child exits. */
  private async watchPid(pid: number): Promise<void> {
    for (;;) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      await sleep(50);
    }
  }

  /** Host pid of the container's init, verified to be in the sandbox's cgroup (pid files go stale). */
  private async initPid(id: string): Promise<number | null> {
    let pid: number;
    try {
      pid = Number((await fs.readFile(`${this.bundle(id)}/pid`, "utf8")).trim());
    } catch {
      return null;
    }
    if (!Number.isInteger(pid) || pid <= 1) return null;
    try {
      const cgs = await fs.readFile(`/proc/${pid}/cgroup`, "utf8");
      const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8");
      if (/\) Z /.test(stat)) return null;
      return cgs.split("\n").some((l) => l.endsWith(`:${this.cgroupPath(id)}`)) ? pid : null;
    } catch {
      return null;
    }
  }

  async list(): Promise<string[]> {
    return (await this.readRecords()).map((r) => r.id);
  }

  async state(id: string): Promise<SandboxRunState> {
    if (!this.live.has(id) && !existsSync(this.recordFile(id))) return "missing";
    if ((this.live.get(id)?.rec ?? (await this.readRecord(id)))?.checkpoint) return "checkpointed";
    if ((await this.initPid(id)) === null) return "stopped";
    const f = await cg.freezerState(this.cgroupPath(id)).catch(() => "THAWED");
    return f === "THAWED" ? "running" : "frozen";
  }

  private async requireRunning(id: string): Promise<void> {
    if (!this.live.has(id) && !existsSync(this.recordFile(id))) throw new HangarError("sandbox_not_found", `sandbox ${id} is not on this node`);
    if ((await this.initPid(id)) === null) throw new HangarError("sandbox_unavailable", `sandbox ${id} is not running`);
  }

  freeze(id: string): Promise<void> {
    return this.serialize(id, async () => {
      await this.requireRunning(id);
      await cg.freeze(this.cgroupPath(id));
    });
  }

  thaw(id: string): Promise<void> {
    return this.serialize(id, async () => {
      await this.requireRunning(id);
      await cg.thaw(this.cgroupPath(id));
    });
  }

  /**
   * Checkpointed standby: the agent detaches (the host's AgentClient stays and waits), CRIU dumps
   * the process tree (memory, TCP connections, the netns) and kills it, the writable layer goes to
   * files.tar, the tmpfs and overlay are unmounted: the sandbox holds no memory any more. The slot's
   * old netns stays (CRIU's network lock drops packets in it, so peers of open connections get no
   * RST) until restore replaces it.
   */
  checkpoint(id: string): Promise<void> {
    return this.serialize(id, async () => {
      await this.preflight();
      const criu = this.criu;
      if (!criu) throw new HangarError("not_configured", `checkpointed standby is unavailable: ${this.criuReason}`);
      const live = this.live.get(id);
      const rec = live?.rec ?? (await this.readRecord(id));
      if (!rec) throw new HangarError("sandbox_not_found", `sandbox ${id} is not on this node`);
      if (rec.checkpoint) return;
      if (!rec.usernsOfNetns || rec.slot === null || rec.runtimeClass === "gvisor" || !this.network) {
        throw new HangarError("not_configured", `sandbox ${id} cannot be checkpointed (no network owned by its user namespace, or gVisor)`);
      }
      if (!live) throw new HangarError("sandbox_unavailable", `sandbox ${id} has no agent connection`);
      const pid = await this.initPid(id);
      if (pid === null) throw new HangarError("sandbox_unavailable", `sandbox ${id} is not running`);
      const path = this.cgroupPath(id);
      const B = this.bundle(id);
      const dir = this.checkpointDir(id);
      const t0 = performance.now();
      await cg.thaw(path).catch(() => {});
      // CRIU cannot dump idmapped mounts: live mounts leave before the dump and come back after
      for (const m of rec.liveMounts ?? []) await unmountFrom(pid, m.destination).catch((e) => this.log.warn({ err: e, id }, "unmounting before a checkpoint failed"));
      await live.agent.detach(DETACH_QUIET_MS);
      // frozen here (ms): CRIU's own freeze polls the freezer every 100 ms (if this does not
      // settle quickly, CRIU freezes with its retries)
      await cg.freeze(path, 1000, true).catch(() => {});
      const tDetach = performance.now();
      const settings = await cg.saveSettings(path);
      await fs.rm(dir, { recursive: true, force: true });
      await fs.mkdir(`${dir}/img`, { recursive: true, mode: 0o700 });
      const [cmd, ...pre] = criu.argv as [string, ...string[]];
      const args = dumpArgs({
        pid,
        imagesDir: `${dir}/img`,
        freezer: cg.cgDir("freezer", path),
        ghostLimit: writableBytes(rec),
        ...(this.checkpointLevel() !== undefined ? { logLevel: this.checkpointLevel()! } : {}),
      });
      // the v1 controllers only: crun does not place sandboxes in the hybrid layout's cgroup2
      // tree, where CRIU would record the tree's root and walk (and on restore recreate) all of it
      for (const c of await cg.v1Controllers()) args.push("--cgroup-dump-controller", c);
      const r = await runRaw(cmd, [...pre, ...args], { timeoutMs: 120_000 });
      if (r.code !== 0) {
        const why = await criuLogErrors(`${dir}/img/dump.log`);
        // the tree keeps running (CRIU resumes it on failure): bring the agent back
        await cg.thaw(path).catch(() => {});
        this.signalAgent(pid);
        await live.agent.waitConnected(this.connectTimeoutMs).catch(() => {});
        await fs.rm(dir, { recursive: true, force: true });
        await this.applyLiveMounts(rec);
        throw new HangarError("runtime_failed", `checkpoint of sandbox ${id} failed (criu exit ${r.code ?? r.signal}): ${why || r.stderr.trim()}`);
      }
      const dumpMs = performance.now() - t0;
      const tCriu = performance.now() - tDetach;
      // CRIU killed the tree: crun (its parent) deletes the container and its cgroups
      await this.stopContainer(id, live, rec);
      // (a restored sandbox has no crun: its cgroups go here)
      await cg.removeCgroup(path, this.hierarchies);
      const t1 = performance.now();
      const tStop = t1 - t0 - dumpMs;
      const tar = await runRaw("tar", ["--xattrs", "--xattrs-include=*", "--numeric-owner", "--sparse", "-cf", `${dir}/files.tar`, "-C", `${B}/rw`, "upper"]);
      if (tar.code !== 0) {
        // the processes are in the images and the files still mounted: bring the sandbox back now
        const why = tar.stderr.trim().slice(0, 1000);
        const back: SandboxRecord = { ...rec, checkpoint: { at: new Date().toISOString(), cgroups: settings, dumpMs: round1(dumpMs), filesMs: 0, imageBytes: 0, filesBytes: 0 } };
        await this.writeRecord(back);
        live.rec = back;
        await this.restoreLocked(back, live).catch((e) => this.log.error({ err: e, id }, "restore after a failed checkpoint failed"));
        throw new HangarError("runtime_failed", `saving the files of sandbox ${id} failed, so it was not checkpointed: ${why}`);
      }
      await run(this.crun.launcher, ["--umount", `${B}/rootfs`, "--umount", `${B}/rw`]);
      const filesMs = performance.now() - t1;
      const [imageBytes, filesBytes] = await Promise.all([dirBytes(`${dir}/img`), fs.stat(`${dir}/files.tar`).then((s) => s.size)]);
      const next: SandboxRecord = {
        ...rec,
        checkpoint: { at: new Date().toISOString(), cgroups: settings, dumpMs: round1(dumpMs), filesMs: round1(filesMs), imageBytes, filesBytes },
      };
      await this.writeRecord(next);
      live.rec = next;
      live.child = null;
      live.exited = Promise.resolve();
      this.log.info({ id, detachMs: round1(tDetach - t0), criuMs: round1(tCriu), stopMs: round1(tStop), dumpMs: round1(dumpMs), filesMs: round1(filesMs), imageBytes, filesBytes }, "sandbox checkpointed");
    });
  }

  /**
   * Restores a checkpointed sandbox: cgroups with their saved limits, the tmpfs and overlay again
   * with the saved files, then `criu restore` into the same root, address and cgroups (the action
   * script rebuilds the link in CRIU's new netns, which is then bound at the slot's netns path);
   * the agent gets SIGUSR1 and reconnects to the same listener. Returns the same handle (same
   * AgentClient) when the driver kept it, so the node's per-sandbox services carry on.
   */
  restore(id: string): Promise<SandboxHandle> {
    return this.serialize(id, async () => {
      await this.preflight();
      const live = this.live.get(id);
      const rec = live?.rec ?? (await this.readRecord(id));
      if (!rec) throw new HangarError("sandbox_not_found", `sandbox ${id} is not on this node`);
      if (!rec.checkpoint) {
        if (live && (await this.initPid(id)) !== null) return live.handle;
        throw new HangarError("sandbox_unavailable", `sandbox ${id} is not checkpointed`);
      }
      return (await this.restoreOrRecover(rec, live ?? null)).handle;
    });
  }

  /**
   * Brings a checkpointed sandbox back: CRIU restore, once more if that fails, and then — its
   * processes lost, its files kept — a cold start on the saved writable layer, whose handle says so
   * in `recovered`. Only if that fails too does it throw (503 sandbox_recovering); the checkpoint
   * stays on disk for the next try.
   */
  private async restoreOrRecover(rec: SandboxRecord, live: Live | null): Promise<Live> {
    let why = "";
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        return await this.restoreLocked(rec, live);
      } catch (e) {
        why ||= (e as Error).message.replace(/\s*\n\s*/g, "; ");
        this.log.warn({ err: e, id: rec.id, attempt }, "restore from checkpoint failed");
      }
    }
    try {
      const l = await this.coldStartLocked(rec, live, why);
      this.log.warn({ id: rec.id, why }, "restore failed twice: sandbox started again with its saved files; its processes were lost");
      return l;
    } catch (e) {
      this.log.error({ err: e, id: rec.id }, "cold start from the saved files failed; the checkpoint is kept for the next try");
      throw new HangarError("sandbox_recovering", `sandbox ${rec.id} could not be woken yet (${why}); its files are kept`, { retryable: true }, { cause: e });
    }
  }

  /**
   * Starts a checkpointed sandbox afresh on its saved files: a new network namespace at the same
   * slot (same address; CRIU's network lock holds the old one), the writable layer from files.tar,
   * a new container and agent. The checkpoint is removed only once the sandbox runs.
   */
  private async coldStartLocked(rec: SandboxRecord, live: Live | null, why: string): Promise<Live> {
    const id = rec.id;
    const B = this.bundle(id);
    const dir = this.checkpointDir(id);
    if (!existsSync(`${dir}/files.tar`)) throw new HangarError("sandbox_unavailable", `sandbox ${id}: its saved files are missing`);
    if (live) await live.agent.close().catch(() => {});
    this.live.delete(id);
    await this.stopContainer(id, null, rec).catch(() => {});
    await cg.removeCgroup(this.cgroupPath(id), this.hierarchies).catch(() => {});
    if (rec.slot !== null && this.network) await this.network.rebuild(this.network.slot(rec.slot));
    const next: SandboxRecord = { ...rec, agentBinary: this.agentBinary };
    // a new agent process: no upgrades in place yet
    delete next.agentUpgrades;
    delete next.agentUpgradedAt;
    delete next.checkpoint;
    try {
      await this.mountSavedFiles(rec);
      const l = await this.start(next, "none");
      await this.writeRecord(next);
      await fs.rm(dir, { recursive: true, force: true });
      l.handle = { ...l.handle, recovered: `restore from disk failed (${why}); started again with its files, processes were lost` };
      return l;
    } catch (e) {
      this.live.delete(id);
      await this.stopContainer(id, null, rec).catch(() => {});
      const mounts = await mountTable();
      const ops = [`${B}/rootfs`, `${B}/rw`].filter((t) => mounts.has(t)).flatMap((t) => ["--umount", t]);
      if (ops.length) await run(this.crun.launcher, ops).catch(() => {});
      throw e;
    }
  }

  /** Mounts what a checkpointed sandbox's root needs: the image's view, the tmpfs with files.tar, the overlay. */
  private async mountSavedFiles(rec: SandboxRecord, tarFile = `${this.checkpointDir(rec.id)}/files.tar`): Promise<void> {
    const id = rec.id;
    const B = this.bundle(id);
    const owner = String(rec.userns?.hostId ?? 0);
    const mounts = await mountTable();
    // after a reboot the image's idmapped view is gone: mount it again (same path)
    if (rec.userns && this.lowers && !mounts.has(rec.lowerDir)) {
      const image = await this.images.resolve(rec.spec.image);
      if (image.id !== rec.imageId) throw new HangarError("runtime_failed", `sandbox ${id}: image ${rec.spec.image} is now ${image.id}, not the ${rec.imageId} it was checkpointed on`);
      await this.lowers.get(rec.imageId, image.lowerDir);
    }
    if (!mounts.has(`${B}/rw`)) {
      await run(this.crun.launcher, ["--mount-tmpfs", `${B}/rw`, String(writableBytes(rec)), owner, owner, `hangar-${id}`]);
      const x = await runRaw("tar", ["--xattrs", "--xattrs-include=*", "--numeric-owner", "--same-owner", "-xpf", tarFile, "-C", `${B}/rw`]);
      if (x.code !== 0) throw new HangarError("runtime_failed", `restoring the files of sandbox ${id} failed: ${x.stderr.trim().slice(0, 1000)}`);
    }
    if (!mounts.has(`${B}/rootfs`)) {
      await run(this.crun.launcher, [
        "--mkdir", `${B}/rw/work`, owner, owner,
        "--mkdir", `${B}/rootfs`, "0", "0",
        "--mount-overlay", `${B}/rootfs`, rec.lowerDir, `${B}/rw/upper`, `${B}/rw/work`, `hangar-${id}`,
      ]);
    }
  }

  private checkpointLevel(): number | undefined {
    return this.checkpointOpts === false ? undefined : this.checkpointOpts.logLevel;
  }

  private signalAgent(pid: number): void {
    try {
      process.kill(pid, "SIGUSR1");
    } catch {}
  }

  private async restoreLocked(rec: SandboxRecord, live: Live | null): Promise<Live> {
    const id = rec.id;
    const criu = this.criu;
    const info = rec.checkpoint!;
    if (!criu) throw new HangarError("not_configured", `sandbox ${id} is checkpointed but CRIU is unavailable here: ${this.criuReason}`);
    if (rec.slot === null || !this.network) throw new HangarError("runtime_failed", `sandbox ${id} has no network slot`);
    const t0 = performance.now();
    const slot = this.network.slot(rec.slot);
    this.network.hold(slot.index);
    const path = this.cgroupPath(id);
    const B = this.bundle(id);
    const dir = this.checkpointDir(id);
    // after a reboot (or a stray run) the bundle may be gone: write it again (same paths, same files)
    if (!existsSync(`${B}/config.json`)) await this.writeBundle(rec);
    await fs.mkdir(this.agentDir(id), { recursive: true, mode: 0o755 });
    const agent = live?.agent ?? (await this.listenAgent(rec));
    const held: { reaper: ChildProcess | null } = { reaper: null };
    try {
      await cg.removeCgroup(path, this.hierarchies).catch(() => {});
      await cg.createWithSettings(path, this.hierarchies, info.cgroups);
      await this.mountSavedFiles(rec);
      const filesMs = performance.now() - t0;
      await fs.rm(`${B}/pid`, { force: true });
      // restored tasks read some images from inside the sandbox's user namespace, through CRIU's
      // descriptor of the images dir (sometimes before their uid map is written): readable by all,
      // under <stateDir>/checkpoints, which only root may enter
      await run("chmod", ["-R", "a+rX", `${dir}/img`]);
      await fs.mkdir(`${dir}/work`, { recursive: true, mode: 0o700 });
      const { child, exited, pid } = await this.criuRestore(criu, rec, slot, `${dir}/img`, `${dir}/work`, held, {});
      const criuMs = performance.now() - t0 - filesMs;
      // the restored netns (owned by the restored user namespace) takes the slot's netns path
      await run(this.crun.launcher, ["--umount", slot.netnsPath, "--bind", `/proc/${pid}/ns/net`, slot.netnsPath]);
      this.signalAgent(pid);
      await agent.waitConnected(this.connectTimeoutMs);
      const next: SandboxRecord = { ...rec };
      delete next.checkpoint;
      await this.writeRecord(next);
      await fs.rm(dir, { recursive: true, force: true });
      await this.applyLiveMounts(next, pid);
      const handle: SandboxHandle = live?.handle ?? { id, agent, address: rec.address, image: rec.image, env: this.envOf(rec) };
      const l: Live = live ?? { rec: next, agent, child, exited, handle };
      l.rec = next;
      l.child = child;
      l.exited = exited;
      this.live.set(id, l);
      void this.noteCpus(id);
      this.log.info({ id, ms: round1(performance.now() - t0), filesMs: round1(filesMs), criuMs: round1(criuMs) }, "sandbox restored");
      return l;
    } catch (e) {
      // back to the checkpointed state: nothing running, no mounts; the images are kept
      await this.undoRestore(id, rec, held.reaper, agent);
      if (!live) await agent.close().catch(() => {});
      throw e;
    }
  }

  /** Mounts the record's live mounts again (after a start, restart or restore); a failure is logged, not fatal. */
  private async applyLiveMounts(rec: SandboxRecord, knownPid?: number): Promise<void> {
    if (!rec.liveMounts?.length) return;
    const pid = knownPid ?? (await this.initPid(rec.id));
    if (pid === null) return;
    for (const m of rec.liveMounts) {
      await mountInto(pid, m, rec.userns?.hostId ?? 0).catch((e) => this.log.warn({ err: e, id: rec.id, destination: m.destination }, "re-applying a live mount failed"));
    }
  }

  mountLive(id: string, m: LiveMountSpec): Promise<void> {
    return this.serialize(id, async () => {
      const live = this.live.get(id);
      if (!live || live.rec.checkpoint) throw new HangarError("sandbox_unavailable", `sandbox ${id} is not running`);
      if (live.rec.runtimeClass === "gvisor" || !live.rec.userns) throw new HangarError("not_configured", "live mounts need a crun sandbox with a user namespace");
      const pid = await this.initPid(id);
      if (pid === null) throw new HangarError("sandbox_unavailable", `sandbox ${id} is not running`);
      await mountInto(pid, m, live.rec.userns.hostId);
      const next: SandboxRecord = { ...live.rec, liveMounts: [...(live.rec.liveMounts ?? []).filter((x) => x.destination !== m.destination), m] };
      await this.writeRecord(next);
      live.rec = next;
    });
  }

  unmountLive(id: string, destination: string): Promise<boolean> {
    return this.serialize(id, async () => {
      const live = this.live.get(id);
      if (!live) throw new HangarError("sandbox_unavailable", `sandbox ${id} is not running`);
      const pid = await this.initPid(id);
      const known = (live.rec.liveMounts ?? []).some((x) => x.destination === destination);
      const was = pid !== null && !live.rec.checkpoint ? await unmountFrom(pid, destination) : known;
      const next: SandboxRecord = { ...live.rec, liveMounts: (live.rec.liveMounts ?? []).filter((x) => x.destination !== destination) };
      await this.writeRecord(next);
      live.rec = next;
      return was || known;
    });
  }

  async liveMounts(id: string): Promise<LiveMountSpec[]> {
    const rec = this.live.get(id)?.rec ?? (await this.readRecord(id));
    return rec?.liveMounts ?? [];
  }

  /**
   * `criu restore` of `imagesDir` into the mounted root of `rec` (the slot's address, its cgroup
   * path) under a reaping hangar-launch (`held.reaper` as soon as it runs). `binds` are mounted in
   * CRIU's private mount namespace first: for a fork, the source's host paths (agent dir, /etc
   * files) then resolve to the fork's. Resolves with the restored init's pid once CRIU is done.
   */
  private async criuRestore(
    criu: CriuTools,
    rec: SandboxRecord,
    slot: NetSlot,
    imagesDir: string,
    workDir: string,
    held: { reaper: ChildProcess | null },
    o: { binds?: [string, string][]; fork?: boolean },
  ): Promise<{ child: ChildProcess; exited: Promise<void>; pid: number }> {
    const B = this.bundle(rec.id);
    const [cmd, ...pre] = criu.argv as [string, ...string[]];
    const args = restoreArgs({
      imagesDir,
      workDir,
      root: `${B}/rootfs`,
      pidFile: `${B}/pid`,
      cgroupPath: this.cgroupPath(rec.id),
      hook: this.hookFile(),
      ...(o.fork ? { fork: true } : {}),
      ...(this.checkpointLevel() !== undefined ? { logLevel: this.checkpointLevel()! } : {}),
    });
    const env = { ...process.env, ...netHookEnv({ hostIf: slot.hostIf, hostIp: slot.hostIp, sandboxIp: slot.sandboxIp, pingRange: this.pingRange }) };
    const binds = (o.binds ?? []).flatMap(([src, dst]) => ["--bind", src, dst]);
    // hangar-launch --reap: a subreaper that outlives CRIU (--restore-detached) and becomes the
    // restored tree's parent, reaping it like the foreground crun of a created sandbox
    const child = spawn(this.crun.launcher, ["--reap", "--private-mnt", ...binds, "--null-stdio", "--exec", cmd, ...pre, ...args], {
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
      env,
    });
    child.unref();
    held.reaper = child;
    const code = await new Promise<number>((resolve) => {
      let err = "";
      const onData = (b: Buffer) => {
        err += b.toString();
        const m = /hangar-launch: exit (\d+)/.exec(err);
        if (m) {
          child.stderr?.off("data", onData);
          resolve(Number(m[1]));
        }
      };
      child.stderr?.on("data", onData);
      child.once("close", (c) => resolve(c ?? 1));
    });
    if (code !== 0) {
      const why = await criuLogErrors(`${workDir}/restore.log`);
      throw new HangarError("runtime_failed", `restore of sandbox ${rec.id} failed (criu exit ${code}): ${why}`);
    }
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("close", () => resolve());
    });
    const pid = Number((await fs.readFile(`${B}/pid`, "utf8")).trim());
    return { child, exited, pid };
  }

  // ---- snapshots and forks

  /**
   * Captures a running sandbox into `dir` without stopping it: its writable layer (files.tar)
   * always; with `processes`, where CRIU works, also its processes and memory (img/, a dump with
   * --leave-running), taken while the sandbox is frozen so files and memory match. The agent
   * detaches for the dump and comes back. A dump that fails leaves a files-only snapshot and says
   * why in `reason`.
   */
  snapshot(id: string, dir: string, opts: { processes: boolean }): Promise<SnapshotCapture> {
    return this.serialize(id, async () => {
      await this.preflight();
      const live = this.live.get(id);
      const rec = live?.rec ?? (await this.readRecord(id));
      if (!rec) throw new HangarError("sandbox_not_found", `sandbox ${id} is not on this node`);
      if (rec.checkpoint) throw new HangarError("sandbox_unavailable", `sandbox ${id} is checkpointed; wake it first`);
      const pid = await this.initPid(id);
      if (pid === null || !live) throw new HangarError("sandbox_unavailable", `sandbox ${id} is not running`);
      const t0 = performance.now();
      const path = this.cgroupPath(id);
      const B = this.bundle(id);
      await fs.rm(dir, { recursive: true, force: true });
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      let why = "";
      const criu = opts.processes ? this.criu : null;
      if (opts.processes && !criu) why = `CRIU is unavailable here: ${this.criuReason}`;
      else if (criu && (!rec.usernsOfNetns || rec.slot === null || rec.runtimeClass === "gvisor")) why = "this sandbox cannot be checkpointed (gVisor, or no network owned by its user namespace)";
      // a restored copy would bind the same volumes: one writer each, so their sandboxes give files only
      else if (criu && rec.spec.mounts?.length) why = "this sandbox has volumes (a volume has one writer; a fork gets the files only)";
      const dump = criu && !why;
      await cg.thaw(path).catch(() => {});
      // CRIU cannot dump idmapped mounts: live mounts (drives) leave for the dump and come back after
      if (dump) for (const m of rec.liveMounts ?? []) await unmountFrom(pid, m.destination).catch((e) => this.log.warn({ err: e, id }, "unmounting before a snapshot failed"));
      if (dump) await live.agent.detach(DETACH_QUIET_MS);
      let processes = false;
      try {
        await cg.freeze(path, 1000, true).catch(() => {});
        const tar = await runRaw("tar", ["--xattrs", "--xattrs-include=*", "--numeric-owner", "--sparse", "-cf", `${dir}/files.tar`, "-C", `${B}/rw`, "upper"]);
        if (tar.code !== 0) throw new HangarError("runtime_failed", `saving the files of sandbox ${id} failed: ${tar.stderr.trim().slice(0, 1000)}`);
        if (dump) {
          await fs.mkdir(`${dir}/img`, { mode: 0o700 });
          const [cmd, ...pre] = criu.argv as [string, ...string[]];
          const args = dumpArgs({
            pid,
            imagesDir: `${dir}/img`,
            freezer: cg.cgDir("freezer", path),
            ghostLimit: writableBytes(rec),
            leaveRunning: true,
            ...(this.checkpointLevel() !== undefined ? { logLevel: this.checkpointLevel()! } : {}),
          });
          for (const c of await cg.v1Controllers()) args.push("--cgroup-dump-controller", c);
          const r = await runRaw(cmd, [...pre, ...args], { timeoutMs: 120_000 });
          if (r.code === 0) processes = true;
          else {
            why = `CRIU dump failed (exit ${r.code ?? r.signal}): ${(await criuLogErrors(`${dir}/img/dump.log`)) || r.stderr.trim()}`;
            await fs.rm(`${dir}/img`, { recursive: true, force: true });
          }
        }
        if (processes) {
          const meta: SnapshotMeta = { v: 1, sourceId: id, imageId: rec.imageId, agentToken: rec.agentToken, cgroups: await cg.saveSettings(path), memoryMb: rec.spec.memoryMb };
          await fs.writeFile(`${dir}/meta.json`, JSON.stringify(meta), { mode: 0o600 });
        }
      } finally {
        await cg.thaw(path).catch(() => {});
        if (dump) {
          this.signalAgent(pid);
          await live.agent.waitConnected(this.connectTimeoutMs).catch((e) => this.log.warn({ err: e, id }, "agent did not come back after a snapshot"));
          await this.applyLiveMounts(rec, pid);
        }
      }
      const bytes = await dirBytes(dir);
      this.log.info({ id, ms: round1(performance.now() - t0), processes, bytes, ...(why ? { why } : {}) }, "sandbox snapshot taken");
      return { processes, bytes, ...(why && opts.processes ? { reason: why } : {}) };
    });
  }

  /**
   * Creates a new sandbox (`spec`: a new id, name, network slot and address) from a snapshot
   * `dir`: its writable layer from files.tar, and with `processes`, when the snapshot has them,
   * its processes and memory restored by CRIU into the new identity (new netns and address, new
   * cgroup, hostname set to the new name; connected TCP sockets come back closed). If that restore
   * fails the sandbox starts afresh on the files, and the handle says why in `recovered`.
   */
  createFrom(spec: RuntimeSandboxSpec, dir: string, opts: { processes: boolean }): Promise<SandboxHandle> {
    this.validate(spec);
    return this.serialize(spec.id, async () => {
      await this.preflight();
      if (this.live.has(spec.id) || existsSync(this.recordFile(spec.id)) || existsSync(this.bundle(spec.id))) {
        throw new HangarError("sandbox_already_exists", `sandbox ${spec.id} already exists on this node`);
      }
      if (!existsSync(`${dir}/files.tar`)) throw new HangarError("runtime_failed", `snapshot ${dir} has no files`);
      if (spec.runtimeClass === "gvisor" && !this.gvisor) throw new HangarError("not_configured", "runtime class gvisor needs runsc (Debian package runsc)");
      const meta = await fs.readFile(`${dir}/meta.json`, "utf8").then((t) => JSON.parse(t) as SnapshotMeta, () => null);
      const userns = spec.runtimeClass === "gvisor" ? null : this.userns;
      const [image, slot] = await Promise.all([this.images.resolve(spec.image), this.network ? this.network.acquire() : Promise.resolve(null)]);
      let why = "";
      if (opts.processes) {
        if (!meta || !existsSync(`${dir}/img`)) why = "the snapshot holds files only";
        else if (!this.criu) why = `CRIU is unavailable here: ${this.criuReason}`;
        else if (meta.imageId !== image.id) why = `the image ${spec.image} changed since the snapshot`;
        else if (!slot || !userns || !this.netnsInUserns || spec.runtimeClass === "gvisor") why = "this sandbox cannot be restored with processes (gVisor, or no network owned by its user namespace)";
      }
      const withProcesses = opts.processes && !why;
      let rec: SandboxRecord | null = null;
      try {
        // a restored agent presents the token it holds in memory
        rec = await this.newRecord(spec, image, slot, userns, withProcesses ? meta!.agentToken : randomToken(24));
        if (withProcesses) {
          try {
            return (await this.restoreFork(rec, slot!, dir, meta!)).handle;
          } catch (e) {
            why = (e as Error).message.replace(/\s*\n\s*/g, "; ");
            this.log.warn({ err: e, id: spec.id }, "restoring the snapshot's processes failed; starting on its files");
            // the fork's agent starts afresh: a token of its own
            rec = { ...rec, agentToken: randomToken(24) };
            await this.writeRecord(rec);
            if (slot) await this.network!.rebuild(slot);
          }
        }
        await this.writeBundle(rec);
        await this.mountSavedFiles(rec, `${dir}/files.tar`);
        const l = await this.start(rec, "none");
        if (opts.processes) l.handle = { ...l.handle, recovered: `processes not restored (${why}); started with the snapshot's files` };
        return l.handle;
      } catch (e) {
        await this.teardown(spec.id, slot).catch((e2) => this.log.warn({ err: e2, id: spec.id }, "cleanup after a failed create from a snapshot"));
        throw e;
      }
    });
  }

  /** CRIU restore of a snapshot's processes into a new sandbox (createFrom); cleans up after itself on failure. */
  private async restoreFork(rec: SandboxRecord, slot: NetSlot, dir: string, meta: SnapshotMeta): Promise<Live> {
    const id = rec.id;
    const criu = this.criu!;
    const t0 = performance.now();
    const B = this.bundle(id);
    const path = this.cgroupPath(id);
    const work = `${B}/criu`;
    await this.writeBundle(rec);
    const agent = await this.listenAgent(rec);
    // the source's host paths, as the images name them: bound to the fork's in CRIU's mount namespace
    const src = meta.sourceId;
    const made: string[] = [];
    for (const d of [this.agentDir(src), `${this.bundle(src)}/etc`]) {
      if (!existsSync(d)) {
        await fs.mkdir(d, { recursive: true, mode: 0o755 });
        made.push(d);
      }
    }
    const held: { reaper: ChildProcess | null } = { reaper: null };
    try {
      await cg.removeCgroup(path, this.hierarchies).catch(() => {});
      await cg.createWithSettings(path, this.hierarchies, meta.cgroups);
      await this.mountSavedFiles(rec, `${dir}/files.tar`);
      await fs.rm(`${B}/pid`, { force: true });
      await run("chmod", ["-R", "a+rX", `${dir}/img`]);
      await fs.mkdir(work, { recursive: true, mode: 0o700 });
      const binds: [string, string][] = src === id ? [] : [[this.agentDir(id), this.agentDir(src)], [`${B}/etc`, `${this.bundle(src)}/etc`]];
      const { child, exited, pid } = await this.criuRestore(criu, rec, slot, `${dir}/img`, work, held, { binds, fork: src !== id });
      await run(this.crun.launcher, ["--umount", slot.netnsPath, "--bind", `/proc/${pid}/ns/net`, slot.netnsPath]);
      // the restored UTS namespace has the source's hostname
      await run("nsenter", ["-t", String(pid), "-u", "hostname", rec.spec.name]).catch((e) => this.log.warn({ err: e, id }, "setting the fork's hostname failed"));
      this.signalAgent(pid);
      await agent.waitConnected(this.connectTimeoutMs);
      await cg.setCpuBurst(path, cpuQuota(rec.spec.memoryMb, availableParallelism()).burst).catch(() => {});
      const handle: SandboxHandle = { id, agent, address: rec.address, image: rec.image, env: this.envOf(rec) };
      const l: Live = { rec, agent, child, exited, handle };
      this.live.set(id, l);
      void this.noteCpus(id);
      this.log.info({ id, from: src, ms: round1(performance.now() - t0) }, "sandbox restored from a snapshot with its processes");
      return l;
    } catch (e) {
      await this.undoRestore(id, rec, held.reaper, agent);
      await agent.close().catch(() => {});
      throw e;
    } finally {
      for (const d of made) await fs.rm(d, { recursive: true, force: true }).catch(() => {});
      await fs.rm(work, { recursive: true, force: true }).catch(() => {});
    }
  }

  async stats(id: string): Promise<SandboxStats> {
    await this.requireRunning(id);
    return cg.readStats(this.cgroupPath(id));
  }

  // ---- agent upgrades in place

  agentBuild(version?: string): AgentBuild {
    const build = basename(dirname(this.agentBinary || this.agentSource));
    const label = `${AGENT_VERSION}+${build}`;
    const v = (version ?? "").trim().replace(/^v(?=\d)/, "");
    if (v === "" || v === "latest" || v === label || v === build || v === AGENT_VERSION) return { version: label, build };
    throw new HangarError("unknown_agent_version", `agent version '${version}' is not on this node: it has '${label}' ("latest")`);
  }

  async agentState(id: string): Promise<AgentState | null> {
    const rec = this.live.get(id)?.rec ?? (await this.readRecord(id));
    if (!rec) return null;
    const build = basename(dirname(rec.agentBinary ?? this.agentSource));
    return { version: `${AGENT_VERSION}+${build}`, build, upgrades: rec.agentUpgrades ?? 0, ...(rec.agentUpgradedAt ? { upgradedAt: rec.agentUpgradedAt } : {}) };
  }

  /**
   * Binds this node's agent build over /.hangar/bin/hangar-agent in the running sandbox (and in its
   * config.json, which a restore mounts from), then has the agent exec it with its state handed over.
   */
  upgradeAgent(id: string, version?: string): Promise<AgentState> {
    return this.serialize(id, async () => {
      await this.preflight();
      this.agentBuild(version);
      const target = this.agentBinary;
      const live = this.live.get(id);
      if (!live || live.rec.checkpoint) throw new HangarError("sandbox_unavailable", `sandbox ${id} is not running`);
      if (live.rec.runtimeClass === "gvisor") throw new HangarError("not_configured", "upgrading the agent in place needs a crun sandbox (gVisor binds the agent's directory)");
      const pid = await this.initPid(id);
      if (pid === null) throw new HangarError("sandbox_unavailable", `sandbox ${id} is not running`);
      const from = live.rec.agentBinary ?? this.agentSource;
      if (from !== target) {
        await swapFileMount(pid, target, AGENT_PATH);
        await this.setAgentBind(id, target);
        live.rec = { ...live.rec, agentBinary: target };
        await this.writeRecord(live.rec);
      }
      await live.agent.upgrade(AGENT_PATH, this.connectTimeoutMs);
      // the exec happened when init now runs the target file (a failed exec leaves the old one)
      const [exe, want] = await Promise.all([fs.stat(`/proc/${pid}/exe`), fs.stat(target)]);
      if (exe.ino !== want.ino || exe.dev !== want.dev) throw new HangarError("runtime_failed", `the agent of sandbox ${id} did not start the new build (see its log)`);
      const next: SandboxRecord = { ...live.rec, agentUpgrades: (live.rec.agentUpgrades ?? 0) + 1, agentUpgradedAt: new Date().toISOString() };
      await this.writeRecord(next);
      live.rec = next;
      this.log.info({ id, build: basename(dirname(target)), upgrades: next.agentUpgrades }, "sandbox agent upgraded in place");
      return (await this.agentState(id))!;
    });
  }

  /** Points the agent bind of a sandbox's config.json (what a restore mounts) at `binary`. */
  private async setAgentBind(id: string, binary: string): Promise<void> {
    const file = `${this.bundle(id)}/config.json`;
    const config = JSON.parse(await fs.readFile(file, "utf8")) as { mounts: { destination: string; source: string }[] };
    for (const m of config.mounts) if (m.destination === AGENT_PATH) m.source = binary;
    await fs.writeFile(`${file}.tmp`, JSON.stringify(config), { mode: 0o600 });
    await fs.rename(`${file}.tmp`, file);
  }

  destroy(id: string): Promise<void> {
    if (!ID_RE.test(id)) return Promise.reject(new HangarError("validation_failed", `bad runtime id ${JSON.stringify(id)}`));
    return this.serialize(id, async () => {
      await this.preflight();
      const rec = this.live.get(id)?.rec ?? (await this.readRecord(id));
      const slot = rec && rec.slot !== null && this.network ? this.network.slot(rec.slot) : null;
      await this.teardown(id, slot);
    });
  }

  /** Kills every process of the sandbox and waits until its cgroup is empty and crun forgot it. */
  private async stopContainer(id: string, live: Live | null, rec: SandboxRecord | null = live?.rec ?? null): Promise<void> {
    const path = this.cgroupPath(id);
    await cg.thaw(path).catch(() => {});
    const deadline = Date.now() + 10_000;
    for (let d = 0; ; d = Math.min(d + 1, 10)) {
      const pids = await cg.cgroupPids(path);
      if (!pids.length) break;
      for (const p of pids) {
        try {
          process.kill(p, "SIGKILL");
        } catch {}
      }
      if (Date.now() > deadline) throw new HangarError("runtime_failed", `processes of sandbox ${id} did not exit`);
      await sleep(d);
    }
    // our foreground runtime process deletes the container when its init exits; otherwise delete it here
    if (live?.child) {
      await Promise.race([live.exited, sleep(2000)]);
      if (live.child.exitCode === null && live.child.signalCode === null) live.child.kill("SIGKILL");
    }
    for (const rt of rec ? [this.runtimeOf(rec)] : this.runtimes()) if (rt.hasState(id)) await rt.delete(id);
  }

  /** Removes every trace of a sandbox: processes, crun state, mounts, netns, cgroups, files. */
  private async teardown(id: string, slot: NetSlot | null): Promise<void> {
    const live = this.live.get(id) ?? null;
    const rec = live?.rec ?? (await this.readRecord(id));
    this.live.delete(id);
    if (live) await live.agent.close().catch(() => {});
    await this.stopContainer(id, live, rec);
    const B = this.bundle(id);
    const mounts = await mountTable();
    const ops = [`${B}/rootfs`, `${B}/rw`].filter((t) => mounts.has(t)).flatMap((t) => ["--umount", t]);
    if (slot && this.network && rec?.spec.network) await this.network.setEgress(slot, null).catch((e) => this.log.warn({ err: e, id }, "egress cleanup failed"));
    if (slot && this.network) ops.push(...this.network.releaseOps(slot));
    if (ops.length) await run(this.crun.launcher, ops);
    await Promise.all([
      fs.rm(B, { recursive: true, force: true }),
      fs.rm(this.agentDir(id), { recursive: true, force: true }),
      fs.rm(this.checkpointDir(id), { recursive: true, force: true }),
      cg.removeCgroup(this.cgroupPath(id), this.hierarchies),
    ]);
    await fs.rm(this.recordFile(id), { force: true });
  }

  // ---- LXCFS supervision

  /** Checks the lxcfs daemon; starts it again when it died or hangs, then binds its files again into the running sandboxes that bound another daemon's. */
  private async superviseLxcfs(): Promise<void> {
    if (!this.lxcfs || this.lxcfsBusy) return;
    this.lxcfsBusy = true;
    try {
      const pid = (await this.lxcfs.alive()) ? await this.lxcfs.pid() : await this.lxcfs.ensure();
      if (pid === null) return;
      this.lxcfsPid = pid;
      for (const [id, l] of this.live) {
        if (l.rec.checkpoint || l.rec.runtimeClass === "gvisor") continue;
        const bound = await fs.readFile(`${this.bundle(id)}/lxcfs`, "utf8").catch(() => null);
        if (bound === null || bound === String(pid)) continue;
        await this.serialize(id, () => this.rebindLxcfs(id, pid)).catch((e: unknown) => this.log.warn({ err: e, id }, "binding lxcfs into a sandbox again failed"));
      }
    } catch (e) {
      this.log.warn({ err: e }, "checking lxcfs failed");
    } finally {
      this.lxcfsBusy = false;
    }
  }

  private async rebindLxcfs(id: string, daemon: number): Promise<void> {
    const l = this.live.get(id);
    const pid = l && !l.rec.checkpoint ? await this.initPid(id) : null;
    if (pid === null || !this.lxcfs) return;
    const B = this.bundle(id);
    const config = JSON.parse(await fs.readFile(`${B}/config.json`, "utf8")) as { mounts: { destination: string; source: string }[] };
    for (const m of config.mounts) {
      if (m.source.startsWith(`${this.lxcfs.dir}/`)) await swapFileMount(pid, m.source, m.destination, { noexec: true });
    }
    await fs.writeFile(`${B}/lxcfs`, String(daemon));
    this.log.info({ id, lxcfs: daemon }, "lxcfs bound into the sandbox again");
  }

  async close(): Promise<void> {
    if (this.lxcfsTimer) clearInterval(this.lxcfsTimer);
    this.lxcfsTimer = null;
    for (const l of this.live.values()) await l.agent.close().catch(() => {});
    this.live.clear();
    await this.network?.close();
  }

  // ---- helpers for tests and diagnostics (not part of SandboxDriver)

  /** Runs a command inside a sandbox with `crun exec` (used before/alongside the agent). */
  async execRaw(
    id: string,
    argv: string[],
    opts: { env?: Record<string, string>; user?: string; cwd?: string; input?: string; timeoutMs?: number } = {},
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const live = this.live.get(id);
    const env = opts.env ?? live?.handle.env ?? {};
    const rt = this.runtimeOf(live?.rec ?? (await this.readRecord(id)));
    // like children of the agent: no new privileges (crun exec does not take it from config.json)
    const args = ["exec", ...(rt.kind === "crun" ? ["--no-new-privs"] : []), "--cwd", opts.cwd ?? "/"];
    for (const [k, v] of Object.entries(env)) args.push("--env", `${k}=${v}`);
    if (opts.user) args.push("--user", opts.user);
    args.push(id, ...argv);
    const [cmd, a] = rt.argv(...args);
    const r = await runRaw(cmd, a, { ...(opts.input !== undefined ? { input: opts.input } : {}), timeoutMs: opts.timeoutMs ?? 60_000 });
    return { code: r.code ?? (r.signal ? 128 + (osConstants.signals[r.signal] ?? 0) : null), stdout: r.stdout, stderr: r.stderr };
  }

  /** The sandbox's init pid on the host (tests). */
  hostPid(id: string): Promise<number | null> {
    return this.initPid(id);
  }

  /** Destroys every sandbox of this driver (records and strays), then uninstalls (tests). */
  async purge(): Promise<void> {
    await this.preflight();
    for (const r of await this.readRecords()) await this.destroy(r.id).catch((e) => this.log.warn({ err: e, id: r.id }, "purge: destroy failed"));
    await this.sweepStrays(new Set());
    await this.uninstall();
  }

  /**
   * Removes what the driver keeps on the host besides sandboxes: the nft table and network pool,
   * idmapped image views, the crun mount namespace, cgroup parents, the run dir. For tests and
   * uninstall; destroy the sandboxes first.
   */
  async uninstall(): Promise<void> {
    await this.close();
    await this.network?.shutdown();
    const mounts = await mountTable();
    // (volumes mounted under the run dir go before it is removed, never through their mount points)
    const lowers = [...mounts.keys()].filter((m) => m.startsWith(`${this.runDir}/lower/`) || m.startsWith(`${this.runDir}/volumes/`));
    // volumes' loop devices are detached too (a busy one detaches itself once released)
    const loops = (await fs.readFile("/proc/self/mountinfo", "utf8")).split("\n").map((l) => l.split(" ")).filter((f) => f[4]?.startsWith(`${this.runDir}/volumes/`)).map((f) => f[f.indexOf("-") + 2] ?? "").filter((d) => d.startsWith("/dev/loop"));
    for (const m of [...lowers, `${this.runDir}/b`, `${this.runDir}/volumes`]) if (mounts.has(m)) await runRaw("umount", ["-l", m]);
    for (const d of loops) await runRaw("losetup", ["-d", d]);
    // anything else still mounted under the run dir (a crashed server's sandbox layers), deepest first
    const left = [...(await mountTable()).keys()].filter((m) => m.startsWith(`${this.runDir}/`)).sort((a, b) => b.length - a.length);
    for (const m of left) await runRaw("umount", ["-l", m]);
    for (const rt of this.runtimes()) await rt.teardown();
    for (const h of this.hierarchies) await fs.rmdir(`${cg.CGROUP_ROOT}/${h}/${this.cgroupParent}`).catch(() => {});
    await fs.rm(this.runDir, { recursive: true, force: true });
    this.ready = null;
  }
}


/** Absolute path of a command found in PATH (or the path itself), else null. */
export function findCommand(cmd: string): string | null {
  if (cmd.includes("/")) return existsSync(cmd) ? cmd : null;
  for (const dir of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    if (dir && existsSync(`${dir}/${cmd}`)) return `${dir}/${cmd}`;
  }
  return null;
}

/** Hard limits of this process (root without CAP_SYS_RESOURCE cannot raise them for sandboxes). */
async function hostHardLimits(): Promise<{ nofile: number; nproc: number }> {
  const txt = await fs.readFile("/proc/self/limits", "utf8");
  const hard = (name: string, dflt: number) => {
    const line = txt.split("\n").find((l) => l.startsWith(name));
    const v = line?.slice(26).trim().split(/\s+/)[1];
    return !v || v === "unlimited" ? dflt : Number(v);
  };
  return { nofile: Math.min(hard("Max open files", 1 << 20), 1 << 20), nproc: Math.min(hard("Max processes", 1 << 22), 1 << 22) };
}
