// The node runtime of one machine: runs sandboxes through a driver, keeps for each live sandbox the
// per-sandbox services the sandbox API needs, parks idle sandboxes in standby and wakes them on use.

import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { HangarError, type Logger, silentLogger } from "@hangar/common";
import type { NodeSandboxSpec, NodeSandboxState, SandboxNodePort } from "@hangar/control-plane";
import { type AgentBuild, type AgentState, type LiveMountSpec, type RuntimeSandboxSpec, type SandboxDriver, type SandboxHandle, type SnapshotCapture, runtimeNetworkOf } from "@hangar/runtime";

/** What the node needs from per-sandbox services. */
export interface SandboxServicesLike {
  dispose(): Promise<void> | void;
  /** A process asked to keep the sandbox awake. */
  keepAliveActive?(): boolean;
  /** Called around standby so process timeouts do not run while the sandbox is frozen. */
  pauseTimers?(): void;
  resumeTimers?(): void;
  /** Replaces the environment of processes started from now on (egress policy changes). */
  setEnvironment?(env: Record<string, string>): void;
}

/** The node's egress proxy as the node drives it: which policy serves each sandbox address. */
export interface EgressPort {
  /** Serves the sandbox at `address` under `network` (spec.network, secrets revealed; none: direct). */
  setSandbox(id: string, address: string, network: unknown): void;
  removeSandbox(id: string): void;
}

export interface LiveSandbox<S> {
  readonly id: string;
  spec: NodeSandboxSpec;
  handle: SandboxHandle;
  services: S;
}

/** Standby tiers: running, frozen (memory kept), checkpointed (memory on disk). */
export type Tier = "running" | "frozen" | "checkpointed";

export interface StandbyOptions {
  /** Idle time without connections or keepAlive before standby (default 15 s). */
  idleMs: number;
  /** Idle time after which a frozen sandbox is checkpointed to disk, where the driver can (default 10 min). */
  checkpointAfterMs: number;
  /**
   * A lease (an open WebSocket/TCP connection, or an HTTP request such as a watch or log stream) stops
   * counting as activity after this much silence: no touch() (default 15 min).
   */
  connectionIdleMs: number;
  /** How often idleness is checked (default: a quarter of idleMs, at most 1 s). */
  tickMs: number;
  /**
   * Memory pressure: while the host's available memory is below this many bytes, frozen sandboxes
   * are checkpointed without waiting for checkpointAfterMs, longest-frozen first (default: 10% of
   * the host's memory).
   */
  memoryLowBytes: number;
}

/** MemTotal and MemAvailable of the host, bytes. */
export function hostMemory(): { total: number; available: number } {
  const text = readFileSync("/proc/meminfo", "utf8");
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0) * 1024;
  return { total: kib("MemTotal"), available: kib("MemAvailable") };
}

export const DEFAULT_STANDBY: StandbyOptions = { idleMs: 15_000, checkpointAfterMs: 600_000, connectionIdleMs: 900_000, tickMs: 1_000, memoryLowBytes: Math.round(totalmem() / 10) };

/** How long a running sandbox's agent may stay away before the node checks its container. */
const RECOVER_AFTER_MS = 2_000;

/** Frozen sandboxes checkpointed per tick under memory pressure. */
const PRESSURE_BATCH = 2;

export interface LocalNodeOptions<S> {
  driver: SandboxDriver;
  /** Builds the per-sandbox services once its agent is connected. */
  createServices: (handle: SandboxHandle, spec: NodeSandboxSpec) => S;
  logger?: Logger;
  nodeName?: string;
  standby?: Partial<StandbyOptions>;
  /** The egress proxy sandboxes with a spec.network policy go through. */
  egress?: EgressPort;
  /** Removes what the host keeps for a sandbox outside the driver (e.g. its process logs) after it is destroyed. */
  removeData?: (id: string) => Promise<void>;
  /** Reads the host's memory (default: /proc/meminfo). */
  memory?: () => { total: number; available: number };
  /** Volumes: what a sandbox binds from the host (claimed and mounted before it starts), released after it is destroyed. */
  storage?: NodeStoragePort;
}

/** The node's volume storage as the node drives it. */
export interface NodeStoragePort {
  /** Claims and mounts on the host the volumes of `spec` (idempotent); returns the binds. 409 when another sandbox holds one. */
  prepare(spec: NodeSandboxSpec): Promise<NonNullable<NodeSandboxSpec["mounts"]>>;
  /** Frees what a destroyed sandbox held. */
  release(id: string): Promise<void>;
}

/**
 * A claim on a sandbox by one request or one long-lived connection; it keeps the sandbox awake while
 * it carries traffic (touch) at least every connectionIdleMs.
 */
export interface Lease<S> {
  readonly live: LiveSandbox<S>;
  /**
   * Marks traffic (real data, not keepalives) on the connection or the request's streamed response;
   * wakes the sandbox if it went to standby meanwhile.
   */
  touch(): void;
  release(): void;
}

interface Claim {
  kind: "request" | "connection";
  last: number;
}

interface Slot<S> {
  live: LiveSandbox<S>;
  tier: Tier;
  /** In-flight requests and open connections, and when each last carried traffic. */
  leases: Set<Claim>;
  lastActivity: number;
  tierSince: number;
}

export function toRuntimeSpec(spec: NodeSandboxSpec): RuntimeSandboxSpec {
  const out: RuntimeSandboxSpec = {
    id: spec.id,
    name: spec.name,
    workspace: spec.workspace,
    image: spec.image,
    memoryMb: spec.memoryMb,
    envs: spec.envs,
    ports: spec.ports,
  };
  if (spec.mounts?.length) out.mounts = spec.mounts;
  if (spec.runtimeClass) out.runtimeClass = spec.runtimeClass;
  if (spec.platform) out.platform = true;
  const network = runtimeNetworkOf(spec.network);
  if (network) out.network = network;
  return out;
}

export interface LocalNodeEvents {
  /** A sandbox was used (request or connection traffic). */
  activity: [id: string, at: number];
  /** A sandbox changed standby tier. */
  tier: [id: string, tier: Tier];
  /** A sandbox could not be restored from disk and was started again with its files (processes lost). */
  recovered: [id: string, message: string];
}

export class LocalNode<S extends SandboxServicesLike> extends EventEmitter<LocalNodeEvents> implements SandboxNodePort {
  readonly nodeName: string;
  readonly standbyOptions: StandbyOptions;
  private readonly memory: () => { total: number; available: number };
  private readonly removeData: ((id: string) => Promise<void>) | undefined;
  private readonly storage: NodeStoragePort | undefined;
  private readonly driver: SandboxDriver;
  private readonly createServices: LocalNodeOptions<S>["createServices"];
  private readonly egress: EgressPort | undefined;
  private readonly log: Logger;
  private readonly slots = new Map<string, Slot<S>>();
  /** Per-sandbox operation chain: lifecycle and tier changes of one sandbox never overlap. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly timer: NodeJS.Timeout;

  constructor(opts: LocalNodeOptions<S>) {
    super();
    this.driver = opts.driver;
    this.createServices = opts.createServices;
    this.egress = opts.egress;
    this.log = opts.logger ?? silentLogger;
    this.memory = opts.memory ?? hostMemory;
    this.removeData = opts.removeData;
    this.storage = opts.storage;
    this.nodeName = opts.nodeName ?? "local";
    const idleMs = opts.standby?.idleMs ?? DEFAULT_STANDBY.idleMs;
    this.standbyOptions = { ...DEFAULT_STANDBY, tickMs: Math.min(1_000, Math.max(50, idleMs / 4)), ...opts.standby, idleMs };
    this.timer = setInterval(() => this.tick(), this.standbyOptions.tickMs);
    this.timer.unref();
  }

  get driverName(): string {
    return this.driver.name;
  }

  /** Runs fn after every earlier operation on the same sandbox has finished. */
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

  private install(spec: NodeSandboxSpec, handle: SandboxHandle, tier: Tier = "running"): void {
    const now = Date.now();
    const agent = handle.agent;
    agent.on("disconnect", () => setTimeout(() => void this.recoverIfStopped(spec.id, agent), RECOVER_AFTER_MS).unref());
    this.egress?.setSandbox(spec.id, handle.address, spec.network);
    const services = this.createServices(handle, spec);
    if (tier !== "running") services.pauseTimers?.();
    this.slots.set(spec.id, {
      live: { id: spec.id, spec, handle, services },
      tier,
      leases: new Set(),
      lastActivity: now,
      tierSince: now,
    });
  }

  /**
   * A running sandbox whose agent went away and whose container is gone (its init died, e.g.
   * gVisor's kernel OOM-killed as a whole) is started again with its files: new services, the
   * old processes reported lost.
   */
  private recoverIfStopped(id: string, agent: SandboxHandle["agent"]): Promise<void> {
    return this.serialize(id, async () => {
      const s = this.slots.get(id);
      if (!s || s.live.handle.agent !== agent || s.tier !== "running" || agent.connected) return;
      if ((await this.driver.state(id)) !== "stopped") return;
      this.log.warn({ id, sandbox: s.live.spec.name }, "sandbox stopped on its own; starting it again with its files");
      await Promise.resolve(s.live.services.dispose()).catch((e) => this.log.warn({ err: e, id }, "disposing sandbox services failed"));
      const spec = toRuntimeSpec(s.live.spec);
      this.install(s.live.spec, (await this.driver.adopt(spec)) ?? (await this.driver.create(spec)));
      this.emit("tier", id, "running");
    }).catch((e) => this.log.error({ err: e, id }, "could not restart a stopped sandbox"));
  }

  /** Resolves an image; building progress goes to the caller, else to the log. */
  async ensureImage(ref: string, onProgress?: (line: string) => void): Promise<void> {
    await this.driver.ensureImage(ref, onProgress ?? ((line) => this.log.info({ image: ref }, line)));
  }

  /** The spec with its volumes prepared on the host (binds in `mounts`). */
  private async withMounts(spec: NodeSandboxSpec): Promise<NodeSandboxSpec> {
    if (!this.storage || !spec.volumes?.length) return spec;
    return { ...spec, mounts: await this.storage.prepare(spec) };
  }

  start(spec: NodeSandboxSpec): Promise<void> {
    return this.serialize(spec.id, async () => {
      const full = await this.withMounts(spec);
      try {
        this.install(full, await this.driver.create(toRuntimeSpec(full)));
      } catch (e) {
        await this.storage?.release(spec.id).catch((e2) => this.log.warn({ err: e2, id: spec.id }, "releasing volumes failed"));
        throw e;
      }
    });
  }

  /** Captures a running (or woken) sandbox into `dir` without stopping it (see SandboxDriver.snapshot). */
  snapshot(id: string, dir: string, opts: { processes: boolean }): Promise<SnapshotCapture> {
    const snap = this.driver.snapshot?.bind(this.driver);
    if (!snap) return Promise.reject(new HangarError("not_configured", `the ${this.driver.name} runtime cannot take snapshots`));
    return this.serialize(id, async () => {
      await this.wakeLocked(this.slotOf(id));
      return snap(id, dir, opts);
    });
  }

  /**
   * Creates and starts a sandbox from a snapshot directory: its files, and its processes when asked
   * and possible. Says whether the processes came along, and if not why.
   */
  startFrom(spec: NodeSandboxSpec, dir: string, opts: { processes: boolean }): Promise<{ processes: boolean; reason?: string }> {
    const createFrom = this.driver.createFrom?.bind(this.driver);
    if (!createFrom) return Promise.reject(new HangarError("not_configured", `the ${this.driver.name} runtime cannot start sandboxes from snapshots`));
    return this.serialize(spec.id, async () => {
      const handle = await createFrom(toRuntimeSpec(spec), dir, opts);
      this.install(spec, handle);
      return handle.recovered ? { processes: false, reason: handle.recovered } : { processes: opts.processes };
    });
  }

  restart(spec: NodeSandboxSpec): Promise<void> {
    return this.serialize(spec.id, async () => {
      const cur = this.slots.get(spec.id);
      if (cur) {
        await this.wakeLocked(cur);
        await cur.live.services.dispose();
      }
      const full = await this.withMounts(spec);
      this.install(full, await this.driver.restart(spec.id, toRuntimeSpec(full)));
    });
  }

  /**
   * Replaces a running sandbox's egress policy in place: the proxy's policy first (it never lags
   * behind a stricter firewall), then the driver's firewall; new processes get the new variables.
   */
  updateNetwork(spec: NodeSandboxSpec): Promise<void> {
    return this.serialize(spec.id, async () => {
      const cur = this.slots.get(spec.id);
      if (!cur) return;
      const network = runtimeNetworkOf(spec.network);
      if (!this.driver.updateNetwork) {
        if (network) throw new HangarError("not_configured", `the ${this.driver.name} runtime cannot apply network policies`);
        cur.live.spec = spec;
        return;
      }
      this.egress?.setSandbox(spec.id, cur.live.handle.address, spec.network);
      const env = await this.driver.updateNetwork(spec.id, network);
      cur.live.spec = spec;
      cur.live.handle = { ...cur.live.handle, env };
      cur.live.services.setEnvironment?.(env);
    });
  }

  destroy(id: string): Promise<void> {
    return this.serialize(id, async () => {
      const cur = this.slots.get(id);
      this.slots.delete(id);
      this.egress?.removeSandbox(id);
      if (cur) await Promise.resolve(cur.live.services.dispose()).catch((e) => this.log.warn({ err: e, id }, "disposing sandbox services failed"));
      await this.driver.destroy(id);
      await this.removeData?.(id).catch((e) => this.log.warn({ err: e, id }, "removing sandbox data failed"));
      await this.storage?.release(id).catch((e) => this.log.warn({ err: e, id }, "releasing volumes failed"));
    });
  }

  /** Mounts a host directory into a running sandbox (drives). */
  mountLive(id: string, m: LiveMountSpec): Promise<void> {
    if (!this.driver.mountLive) throw new HangarError("not_configured", `the ${this.driver.name} runtime cannot mount into a running sandbox`);
    return this.driver.mountLive(id, m);
  }

  unmountLive(id: string, destination: string): Promise<boolean> {
    if (!this.driver.unmountLive) throw new HangarError("not_configured", `the ${this.driver.name} runtime cannot mount into a running sandbox`);
    return this.driver.unmountLive(id, destination);
  }

  async liveMounts(id: string): Promise<LiveMountSpec[]> {
    return (await this.driver.liveMounts?.(id)) ?? [];
  }

  state(id: string): NodeSandboxState {
    const slot = this.slots.get(id);
    if (!slot) return "STOPPED";
    return slot.tier === "running" ? "RUNNING" : "STANDBY";
  }

  tier(id: string): Tier | null {
    return this.slots.get(id)?.tier ?? null;
  }

  has(id: string): boolean {
    return this.slots.has(id);
  }

  /** Last time the sandbox was used, in ms since the epoch (null when not on this node). */
  lastActivity(id: string): number | null {
    const slot = this.slots.get(id);
    if (!slot) return null;
    return this.busy(slot, Date.now()) ? Date.now() : slot.lastActivity;
  }

  private slotOf(id: string): Slot<S> {
    const slot = this.slots.get(id);
    if (!slot) throw new HangarError("sandbox_unavailable", "sandbox is not running on this node");
    return slot;
  }

  private markActivity(id: string, slot: Slot<S>): void {
    slot.lastActivity = Date.now();
    this.emit("activity", id, slot.lastActivity);
  }

  /**
   * Claims a sandbox for a request ("request": standby waits until it is released) or a long-lived
   * connection ("connection"). Either keeps the sandbox awake until connectionIdleMs pass without
   * traffic (touch): a short request always, a stream (watch, logs, exec) while it delivers data.
   * Wakes the sandbox first if needed.
   */
  async acquire(id: string, kind: "request" | "connection" = "request"): Promise<Lease<S>> {
    const slot = this.slotOf(id);
    const claim: Claim = { kind, last: Date.now() };
    slot.leases.add(claim);
    this.markActivity(id, slot);
    try {
      if (slot.tier !== "running" || this.locks.has(id)) await this.wake(id);
    } catch (e) {
      slot.leases.delete(claim);
      throw e;
    }
    let released = false;
    const current = this.slots.get(id) ?? slot;
    return {
      live: current.live,
      touch: () => {
        if (released) return;
        claim.last = Date.now();
        this.markActivity(id, current);
        if (current.tier !== "running") void this.wake(id).catch((e) => this.log.warn({ err: e, id }, "wake on traffic failed"));
      },
      release: () => {
        if (released) return;
        released = true;
        slot.leases.delete(claim);
        current.leases.delete(claim);
        this.markActivity(id, current);
      },
    };
  }

  /** This node's agent build that `version` names; throws 400 unknown_agent_version (null: the driver cannot upgrade agents). */
  agentBuild(version?: string): AgentBuild | null {
    return this.driver.agentBuild?.(version) ?? null;
  }

  /** The agent build a sandbox runs and how often it was upgraded in place. */
  async agentState(id: string): Promise<AgentState | null> {
    return (await this.driver.agentState?.(id)) ?? null;
  }

  /**
   * Replaces the agent of a sandbox with this node's build, its processes kept (woken first, held
   * awake meanwhile; in the sandbox's operation chain, so no standby runs during it).
   */
  async upgradeAgent(id: string, version?: string): Promise<AgentState> {
    const upgrade = this.driver.upgradeAgent?.bind(this.driver);
    if (!upgrade) throw new HangarError("not_configured", `the ${this.driver.name} driver cannot upgrade agents in place`);
    const lease = await this.acquire(id);
    try {
      return await this.serialize(id, () => upgrade(id, version));
    } finally {
      lease.release();
    }
  }

  /** Brings a sandbox back to running (thaw or restore). */
  wake(id: string): Promise<void> {
    return this.serialize(id, async () => {
      const slot = this.slots.get(id);
      if (slot) await this.wakeLocked(slot);
    });
  }

  private async wakeLocked(slot: Slot<S>): Promise<void> {
    if (slot.tier === "running") return;
    const id = slot.live.id;
    const t0 = performance.now();
    if (slot.tier === "frozen") {
      await this.driver.thaw(id);
    } else {
      const handle = await this.driver.restore(id);
      // the same handle (same agent connection, reconnected): the services and their process
      // records and logs carry on; a new one gets new services
      if (handle !== slot.live.handle) {
        await Promise.resolve(slot.live.services.dispose()).catch((e) => this.log.warn({ err: e, id }, "disposing sandbox services failed"));
        slot.live.handle = handle;
        slot.live.services = this.createServices(handle, slot.live.spec);
        if (handle.recovered) {
          this.log.warn({ id, sandbox: slot.live.spec.name, why: handle.recovered }, "sandbox recovered with its files; its processes were lost");
          this.emit("recovered", id, handle.recovered);
        }
      }
    }
    const from = slot.tier;
    slot.tier = "running";
    slot.tierSince = Date.now();
    slot.live.services.resumeTimers?.();
    this.emit("tier", id, "running");
    this.log.debug({ id, from, ms: Math.round((performance.now() - t0) * 10) / 10 }, "sandbox resumed");
  }

  /**
   * Parks a sandbox in standby now, unless requests are in flight (409); a stream silent for
   * connectionIdleMs (a watch with no events) does not hold it.
   */
  standby(id: string): Promise<void> {
    const slot = this.slotOf(id);
    if (this.held(slot, Date.now(), "request")) return Promise.reject(new HangarError("conflict", "the sandbox has requests in flight"));
    return this.serialize(id, async () => {
      const s = this.slots.get(id);
      if (s && s.tier === "running" && !this.held(s, Date.now(), "request")) await this.freezeLocked(s);
    });
  }

  private async freezeLocked(slot: Slot<S>): Promise<void> {
    slot.live.services.pauseTimers?.();
    try {
      await this.driver.freeze(slot.live.id);
    } catch (e) {
      slot.live.services.resumeTimers?.();
      throw e;
    }
    slot.tier = "frozen";
    slot.tierSince = Date.now();
    this.emit("tier", slot.live.id, "frozen");
  }

  private async checkpointLocked(slot: Slot<S>): Promise<void> {
    try {
      await this.driver.checkpoint(slot.live.id);
    } catch (e) {
      slot.tierSince = Date.now(); // stays frozen; the next attempt waits a full checkpointAfterMs
      throw e;
    }
    slot.tier = "checkpointed";
    slot.tierSince = Date.now();
    this.emit("tier", slot.live.id, "checkpointed");
  }

  /** True while a lease (of `kind`, or any) carried traffic within connectionIdleMs. */
  private held(slot: Slot<S>, now: number, kind?: Claim["kind"]): boolean {
    for (const c of slot.leases) if ((!kind || c.kind === kind) && now - c.last < this.standbyOptions.connectionIdleMs) return true;
    return false;
  }

  /** True while a request or connection carried traffic recently, or keepAlive holds. */
  private busy(slot: Slot<S>, now: number): boolean {
    return this.held(slot, now) || (slot.live.services.keepAliveActive?.() ?? false);
  }

  /** Moves idle sandboxes down the standby tiers. */
  private tick(): void {
    const now = Date.now();
    const { idleMs, checkpointAfterMs } = this.standbyOptions;
    const pressure = this.driver.capabilities.checkpoint ? this.underPressure() : false;
    for (const [id, slot] of this.slots) {
      if (this.locks.has(id)) continue;
      if (slot.tier === "running") {
        // a live lease keeps the idle clock at zero (it starts when the lease is released or goes
        // silent); a stale one, silent for connectionIdleMs, no longer counts
        if (this.held(slot, now)) {
          slot.lastActivity = now;
          continue;
        }
        if (slot.live.services.keepAliveActive?.() || slot.live.spec.keepAwake) continue;
        if (now - slot.lastActivity < idleMs || !this.driver.capabilities.freeze) continue;
        void this.serialize(id, async () => {
          const s = this.slots.get(id);
          if (s && s.tier === "running" && !this.busy(s, Date.now()) && Date.now() - s.lastActivity >= idleMs) await this.freezeLocked(s);
        }).catch((e) => this.log.warn({ err: e, id }, "standby failed"));
      } else if (slot.tier === "frozen" && this.driver.capabilities.checkpoint && now - slot.tierSince >= checkpointAfterMs) {
        void this.serialize(id, async () => {
          const s = this.slots.get(id);
          if (s && s.tier === "frozen") await this.checkpointLocked(s);
        }).catch((e) => this.log.warn({ err: e, id }, "checkpoint failed; the sandbox stays frozen"));
      }
    }
    if (pressure) this.relieve(now);
  }

  /** True while the host's available memory is under memoryLowBytes. */
  private underPressure(): boolean {
    try {
      return this.memory().available < this.standbyOptions.memoryLowBytes;
    } catch {
      return false;
    }
  }

  /** Checkpoints the longest-frozen sandboxes now, a few per tick, to give memory back. */
  private relieve(now: number): void {
    const frozen = [...this.slots].filter(([id, s]) => s.tier === "frozen" && !this.locks.has(id) && now - s.tierSince < this.standbyOptions.checkpointAfterMs);
    frozen.sort((a, b) => a[1].tierSince - b[1].tierSince);
    for (const [id] of frozen.slice(0, PRESSURE_BATCH)) {
      this.log.info({ id }, "memory is low: checkpointing a frozen sandbox early");
      void this.serialize(id, async () => {
        const s = this.slots.get(id);
        if (s && s.tier === "frozen") await this.checkpointLocked(s);
      }).catch((e) => this.log.warn({ err: e, id }, "checkpoint failed; the sandbox stays frozen"));
    }
  }

  /** The live sandbox, without waking it (internal use and tests). */
  get(id: string): LiveSandbox<S> {
    return this.slotOf(id).live;
  }

  /**
   * Re-attaches to the sandboxes of the store after a restart. Sandboxes whose container is gone
   * (e.g. after a host reboot) are started again. Node-side leftovers no record knows are destroyed.
   */
  async adoptAll(specs: NodeSandboxSpec[]): Promise<{ adopted: string[]; restarted: string[]; removed: string[] }> {
    const adopted: string[] = [];
    const restarted: string[] = [];
    const known = new Set(specs.map((s) => s.id));
    await Promise.all(
      specs.map((spec) =>
        this.serialize(spec.id, async () => {
          try {
            // A sandbox frozen by the previous server is thawed first: the agent must reconnect.
            if ((await this.driver.state(spec.id)) === "frozen") await this.driver.thaw(spec.id);
            // volumes mounted on the host again first (after a reboot they are not)
            spec = await this.withMounts(spec);
            let handle = await this.driver.adopt(toRuntimeSpec(spec));
            if (handle) adopted.push(spec.id);
            else {
              handle = await this.driver.create(toRuntimeSpec(spec));
              restarted.push(spec.id);
            }
            // a checkpointed sandbox stays on disk until its next request
            this.install(spec, handle, (await this.driver.state(spec.id)) === "checkpointed" ? "checkpointed" : "running");
          } catch (e) {
            this.log.error({ err: e, sandbox: spec.name }, "could not adopt sandbox");
          }
        }),
      ),
    );
    const removed: string[] = [];
    for (const id of await this.driver.list()) {
      if (!known.has(id)) {
        removed.push(id);
        await this.driver.destroy(id).catch((e) => this.log.warn({ err: e, id }, "could not remove leftover sandbox"));
        await this.removeData?.(id).catch(() => undefined);
      }
    }
    return { adopted, restarted, removed };
  }

  /** Drops node-side state without stopping sandboxes (they are adopted on the next start). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.slots.values()].map((s) => Promise.resolve(s.live.services.dispose()).catch(() => undefined)));
    this.slots.clear();
    await this.driver.close();
  }
}
