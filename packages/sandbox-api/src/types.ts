// Types shared across the sandbox API.

import type { Logger } from "@hangar/common";
import type { AgentClient } from "@hangar/sandbox-agent";
import type { LogStoreLimits } from "./managers/log-store.js";

/** What the image says about how processes run (structurally a subset of runtime's ImageConfig). */
export interface SandboxImage {
  workingDir: string;
  home: string;
  uid: number;
  gid: number;
  shell: string;
}

export interface SandboxServicesOptions {
  /** Runtime id of the sandbox. */
  id: string;
  /** Sandbox name (hostname). */
  name: string;
  agent: AgentClient;
  image: SandboxImage;
  /** Environment of every process: image env then spec envs. */
  env: Record<string, string>;
  /** Host directory (created if missing) for spilled process output and process metadata. */
  logDir: string;
  logger: Logger;
  /** Tunables; defaults suit production. */
  limits?: Partial<SandboxLimits>;
  /**
   * Checks a port-monitor callback URL before each POST (which the host sends): throws a
   * HangarError to refuse it, e.g. when it resolves to the host itself. Default: only link-local
   * metadata addresses are refused.
   */
  checkCallback?: (url: URL) => Promise<void>;
  /** Drive mounts of this sandbox (GET|POST /drives/mount); absent: 503 not_configured. */
  drives?: DriveMountPort;
  /** In-place upgrades of the sandbox's agent (POST /upgrade, /health); absent: 503 not_configured. */
  agentUpgrade?: AgentUpgradePort;
}

/** Blaxel's UpgradeStatus (GET /health lastUpgrade). */
export interface UpgradeStatus {
  status: "idle" | "running" | "completed" | "failed";
  /** none, starting, replace, completed. */
  step: string;
  version: string;
  error?: string;
  lastAttempt?: string;
  binaryPath?: string;
}

/** What POST /upgrade and /health need (implemented by the server over the node). */
export interface AgentUpgradePort {
  /** Checks `version` (throws a 4xx HangarError for an unknown one); returns what starts the upgrade. */
  begin(version: string | undefined): () => void;
  status(): Promise<{ version: string; upgradeCount: number; lastUpgrade: UpgradeStatus }>;
}

/** What /drives/mount needs (implemented by @hangar/storage's DriveMounts). */
export interface DriveMountPort {
  list(): Promise<Array<{ driveName: string; drivePath: string; mountPath: string; readOnly: boolean }>>;
  mount(body: unknown): Promise<{ driveName: string; drivePath: string; mountPath: string; readOnly: boolean }>;
  /** The mount path as given (leading "/" optional); returns it normalized. */
  unmount(mountPath: string): Promise<string>;
}

export interface SandboxLimits {
  /** Per-process output limits. */
  log: LogStoreLimits;
  /** Finished processes kept in the table (oldest dropped first, logs deleted). */
  maxFinishedProcesses: number;
  /** Host disk all process logs of one sandbox may use together (oldest finished processes go first). */
  logDiskBudget: number;
  /** Longest a request waits for completion or ports. */
  waitCapMs: number;
  /** Grace after SIGTERM before SIGKILL on stop. */
  stopGraceMs: number;
  /** Pause before a failed process restarts. */
  restartDelayMs: number;
  /** Interval of keepalive lines on NDJSON exec streams. */
  execKeepaliveMs: number;
  /** Interval of `[keepalive]` lines on log and watch streams. */
  streamKeepaliveMs: number;
  /** Interval of port polling (waitForPorts, monitors). */
  portPollMs: number;
}

export const DEFAULT_LIMITS: SandboxLimits = {
  log: { memoryLimit: 64 * 1024, fileLimit: 16 * 1024 * 1024 },
  maxFinishedProcesses: 1000,
  logDiskBudget: 256 * 1024 * 1024,
  waitCapMs: 60_000,
  stopGraceMs: 10_000,
  restartDelayMs: 1_000,
  execKeepaliveMs: 5_000,
  streamKeepaliveMs: 30_000,
  portPollMs: 100,
};
