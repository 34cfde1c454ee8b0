// What the control plane needs from the node runtime that runs sandboxes. Implemented by
// @hangar/node on a single box; a multi-node deployment implements it with a scheduler + RPC.

export interface NodeSandboxSpec {
  id: string;
  name: string;
  workspace: string;
  image: string;
  memoryMb: number;
  /** Plain-text environment (secrets revealed). */
  envs: Record<string, string>;
  ports: number[];
  runtimeClass?: "default" | "gvisor";
  /** spec.network with secrets revealed. */
  network?: Record<string, unknown>;
  /** spec.volumes: volumes attached at creation. */
  volumes?: Array<{ name: string; mountPath: string; readOnly?: boolean; type?: string; sizeMb?: number }>;
  /** Host directories bound into the sandbox (the volumes, once the node's storage prepared them). */
  mounts?: Array<{ source: string; destination: string; readOnly: boolean }>;
  /** Workloads: the SDK inside reaches Hangar (BL_API_URL, BL_RUN_URL at the sandbox's gateway). */
  platform?: boolean;
  /** Never parked by standby (an agent's minScale replicas). */
  keepAwake?: boolean;
}

export type NodeSandboxState = "RUNNING" | "STANDBY" | "STOPPED";

export interface SandboxNodePort {
  /** The node that will hold new sandboxes. */
  readonly nodeName: string;
  /** Resolves an image (building it on first use); throws invalid_image for unknown ones. */
  ensureImage(ref: string, onProgress?: (line: string) => void): Promise<void>;
  /** Creates and starts the sandbox; resolves when it accepts requests. */
  start(spec: NodeSandboxSpec): Promise<void>;
  /** Restarts its processes with a new spec, keeping its files (a fresh filesystem is destroy + start). */
  restart(spec: NodeSandboxSpec): Promise<void>;
  /** Applies a new network policy to a running sandbox in place. */
  updateNetwork(spec: NodeSandboxSpec): Promise<void>;
  /** Removes the sandbox and every trace of it. Idempotent. */
  destroy(id: string): Promise<void>;
  state(id: string): NodeSandboxState;
  /** Last time the sandbox was used (ms since the epoch; now while it is busy), or null when unknown. */
  lastActivity(id: string): number | null;
  /** Parks the sandbox in standby now (memory and processes kept). */
  standby(id: string): Promise<void>;
}
