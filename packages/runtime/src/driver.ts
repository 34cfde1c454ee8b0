// The one interface every sandbox runtime implements (isolated Linux/crun, gVisor, a future
// microVM or Kubernetes driver). The control plane and the sandbox API only talk to this.

import type { AgentClient } from "@hangar/sandbox-agent";

/** What the runtime needs to know to run a sandbox. */
export interface RuntimeSandboxSpec {
  /** Runtime id: [a-z0-9]{12}, unique per sandbox on this node; names host-side resources. */
  id: string;
  /** Sandbox name; becomes the hostname. */
  name: string;
  workspace: string;
  /** Image reference as the user gave it, e.g. "blaxel/base-image:latest". */
  image: string;
  /** Hard memory limit in MB. CPU share is derived from it (memory / 2048 vCPU). */
  memoryMb: number;
  /** Environment set for every process, over the image's. */
  envs: Record<string, string>;
  /** TCP ports declared by the user (spec.runtime.ports). */
  ports: number[];
  /** Runtime class: "runc" (default OCI runtime, crun) or "gvisor". */
  runtimeClass?: RuntimeClass;
  /** Egress through the node's egress proxy (from spec.network); absent: direct, as always. No secrets here. */
  network?: RuntimeNetwork;
  /** Workloads: BL_API_URL and BL_RUN_URL point at the node's platform endpoint (the sandbox's gateway). */
  platform?: boolean;
  /** Host directories bound into the sandbox from its start (volumes). */
  mounts?: RuntimeMount[];
}

/** The port of the in-sandbox API relay (the sandbox API at localhost:8080 inside). */
export const SANDBOX_API_PORT = 8080;

/** Whether a sandbox gets the in-sandbox API relay: not when the user's own server takes 8080, nor in a workload's replica. */
export function hasApiRelay(spec: Pick<RuntimeSandboxSpec, "ports" | "platform">): boolean {
  return !spec.ports.includes(SANDBOX_API_PORT) && !spec.platform;
}

/** A host directory bound into a sandbox at creation. */
export interface RuntimeMount {
  /** Host path (a world-traversable directory: a restore reopens it from the sandbox's user namespace). */
  source: string;
  /** Absolute path inside the sandbox. */
  destination: string;
  readOnly: boolean;
}

/** A host directory mounted into a running sandbox (drives); re-applied after restarts and restores. */
export interface LiveMountSpec {
  source: string;
  /** Directory beneath `source` to mount instead (made if missing; never through a symlink). */
  sourcePath?: string;
  destination: string;
  readOnly: boolean;
  /** Caller's bookkeeping, returned by liveMounts(). */
  meta?: Record<string, string>;
}

/**
 * How a sandbox's traffic leaves (see runtimeNetworkOf):
 * - "proxy": proxy variables and the Hangar CA are set; TCP 80/443 is redirected to the egress
 *   proxy (so programs that ignore the variables are served too); other traffic goes direct.
 * - "enforced": the same, and nothing else leaves: only DNS to the node's nameservers and the proxy.
 */
export interface RuntimeNetwork {
  egress: "proxy" | "enforced";
  /** NO_PROXY entries beyond the defaults (spec.network.proxy.bypass). */
  bypass: string[];
}

export type RuntimeClass = "default" | "gvisor";

/** What the image says about how processes run in it. */
export interface ImageConfig {
  workingDir: string;
  home: string;
  env: Record<string, string>;
  uid: number;
  gid: number;
  shell: string;
  /** The image's command (ENTRYPOINT then CMD), when it names one. */
  command?: string[];
  /** Ports the image declares (EXPOSE), TCP. */
  exposedPorts?: number[];
}

/** A running sandbox as the node sees it. */
export interface SandboxHandle {
  readonly id: string;
  /** Connection to the agent inside the sandbox. */
  readonly agent: AgentClient;
  /** Address the node uses to reach the sandbox's ports (e.g. its veth IP). */
  readonly address: string;
  readonly image: ImageConfig;
  /** Environment every process gets: image env, then spec envs. */
  readonly env: Record<string, string>;
  /**
   * Set when a wake could not restore the sandbox's processes and started it again with its files
   * instead: what happened, for the sandbox's events.
   */
  readonly recovered?: string;
}

export type SandboxRunState = "running" | "frozen" | "checkpointed" | "stopped" | "missing";

/** What a snapshot holds: files always; processes and memory when `processes`. */
export interface SnapshotCapture {
  processes: boolean;
  /** Size on disk, bytes. */
  bytes: number;
  /** Why processes were asked for but not captured. */
  reason?: string;
}

export interface SandboxStats {
  memoryBytes: number;
  memoryLimitBytes: number;
  cpuNanos: number;
  pids: number;
}

export interface DriverCapabilities {
  /** Freezing keeps memory; resume in milliseconds. */
  freeze: boolean;
  /** Checkpoint to disk (CRIU) with memory freed. */
  checkpoint: boolean;
  /** Kernel-enforced isolation (namespaces, cgroups, seccomp). False only for the dev driver. */
  isolated: boolean;
}

export interface SandboxDriver {
  /** e.g. "linux". */
  readonly name: string;
  readonly capabilities: DriverCapabilities;

  /** Checks (and where possible fixes) what the host needs; throws with a clear message. */
  preflight(): Promise<void>;

  /** Resolves an image reference, building or importing it on first use; 400 invalid_image if unknown. */
  ensureImage(ref: string, onProgress?: (line: string) => void): Promise<ImageConfig>;

  /** Creates and starts a sandbox; resolves when its agent is connected. */
  create(spec: RuntimeSandboxSpec): Promise<SandboxHandle>;

  /** Restarts every process of the sandbox with a new spec, keeping its files (env changes). */
  restart(id: string, spec: RuntimeSandboxSpec): Promise<SandboxHandle>;

  /** Re-attaches to a sandbox that outlived the server (after a restart or kill -9). */
  adopt(spec: RuntimeSandboxSpec): Promise<SandboxHandle | null>;

  /** Runtime ids of sandboxes present on this node (running or not). */
  list(): Promise<string[]>;

  state(id: string): Promise<SandboxRunState>;

  /** Stops all processes in place (memory kept). */
  freeze(id: string): Promise<void>;
  thaw(id: string): Promise<void>;

  /** Writes processes and memory to disk and frees the memory; files are kept. */
  checkpoint(id: string): Promise<void>;
  restore(id: string): Promise<SandboxHandle>;

  stats(id: string): Promise<SandboxStats>;

  /** Kills everything and removes every trace: processes, mounts, network devices, cgroups, files. */
  destroy(id: string): Promise<void>;

  /**
   * Applies a new egress mode to a running sandbox in place (firewall at once; processes started
   * from now on get the returned environment). Drivers without egress control leave it out.
   */
  updateNetwork?(id: string, network: RuntimeNetwork | undefined): Promise<Record<string, string>>;

  /**
   * Mounts a host directory into a running sandbox at `destination` (idmapped: host uid k on disk
   * is uid k inside), without restarting it; 400 invalid_path for a destination outside its own
   * root filesystem. Drivers without live mounts leave these out.
   */
  mountLive?(id: string, m: LiveMountSpec): Promise<void>;
  /** Unmounts what mountLive put at `destination`; false when nothing was there. */
  unmountLive?(id: string, destination: string): Promise<boolean>;
  liveMounts?(id: string): Promise<LiveMountSpec[]>;

  /**
   * Captures a running sandbox into a directory without stopping it: its files always; with
   * `processes`, where the driver can, its processes and memory too. Drivers without snapshots leave it out.
   */
  snapshot?(id: string, dir: string, opts: { processes: boolean }): Promise<SnapshotCapture>;

  /**
   * Creates a new sandbox from a snapshot directory: its files, and its processes and memory when
   * asked and the snapshot has them (else `recovered` on the handle says why not).
   */
  createFrom?(spec: RuntimeSandboxSpec, dir: string, opts: { processes: boolean }): Promise<SandboxHandle>;

  /**
   * The build of the in-sandbox agent that `version` names ("latest" or empty: this node's build;
   * else its version label or build id). 400 unknown_agent_version for anything else. Drivers
   * without in-place agent upgrades leave these out.
   */
  agentBuild?(version?: string): AgentBuild;
  /**
   * Replaces the agent (PID 1) of a running sandbox with the build `version` names, in place: its
   * processes keep running and stay attached (same agent instance). Returns the new state.
   */
  upgradeAgent?(id: string, version?: string): Promise<AgentState>;
  /** The agent build a sandbox runs and how often it was upgraded in place. */
  agentState?(id: string): Promise<AgentState | null>;

  /** Releases node-side resources (listeners) without touching running sandboxes. */
  close(): Promise<void>;
}

/** A build of the in-sandbox agent on this node. */
export interface AgentBuild {
  /** Version label, e.g. "0.1.0+3f9a0c1d2e4b5a69" (agent version + build id). */
  version: string;
  /** Build id: the first 16 hex digits of the binary's SHA-256. */
  build: string;
}

export interface AgentState extends AgentBuild {
  /** In-place upgrades since the sandbox's agent was started. */
  upgrades: number;
  upgradedAt?: string;
}
