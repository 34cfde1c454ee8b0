// Everything the sandbox API keeps for one sandbox, for as long as the sandbox lives on this node:
// the process table, watches, terminals, multipart uploads, port monitors and code indexes, all
// working through the sandbox's agent. Also what the standby manager reads: keep-alive state,
// activity, and timers that pause while the sandbox is frozen.

import { EventEmitter } from "node:events";
import { mkdirSync } from "node:fs";
import type { Logger } from "@hangar/common";
import type { AgentClient } from "@hangar/sandbox-agent";
import { AgentEventRouter } from "./managers/agent-router.js";
import { ProcessManager } from "./managers/process-manager.js";
import { normalizeAbsolute, type PathContext } from "./paths.js";
import { CodeIndex } from "./services/code-index.js";
import { CodegenService } from "./services/codegen-service.js";
import { FileService } from "./services/fs-service.js";
import { NetworkService } from "./services/network-service.js";
import { SearchService } from "./services/search-service.js";
import { TerminalService } from "./services/terminal-service.js";
import { UploadManager } from "./services/upload-manager.js";
import { UserDirectory } from "./services/user-directory.js";
import { WatchService } from "./services/watch-service.js";
import { DEFAULT_LIMITS, type AgentUpgradePort, type DriveMountPort, type SandboxImage, type SandboxLimits, type SandboxServicesOptions } from "./types.js";

export interface SandboxServicesEvents {
  /** A request started or a stream delivered data: the sandbox is in use. */
  activity: [];
  /** keepAliveActive() changed. */
  keepAlive: [active: boolean];
}

export class SandboxServices extends EventEmitter<SandboxServicesEvents> {
  readonly id: string;
  readonly name: string;
  readonly agent: AgentClient;
  readonly image: SandboxImage;
  readonly logDir: string;
  readonly logger: Logger;
  readonly limits: SandboxLimits;
  readonly startedAt = new Date();
  readonly paths: PathContext;

  readonly router: AgentEventRouter;
  readonly processes: ProcessManager;
  readonly files: FileService;
  readonly search: SearchService;
  readonly watches: WatchService;
  readonly uploads: UploadManager;
  readonly terminals: TerminalService;
  readonly network: NetworkService;
  readonly codegen: CodegenService;
  /** Drive mounts, when the node offers them. */
  readonly drives: DriveMountPort | undefined;
  /** In-place agent upgrades, when the node offers them. */
  readonly agentUpgrade: AgentUpgradePort | undefined;

  /** Monotonic count of API requests (and stream activity); the standby manager can poll it. */
  activityCount = 0;
  lastActivityAt = Date.now();
  /** Requests and streams in flight (an open log stream, watch or terminal counts until it closes). */
  activeRequests = 0;
  /** Resolves once the process table has been rebuilt from the agent (first connection). */
  readonly ready: Promise<void>;

  private env: Record<string, string>;
  private disposed = false;
  private synced = false;
  /** The first rebuild of the process table is done (requests before it wait for `ready`). */
  settled = false;
  private resolveReady!: () => void;
  private readonly onConnect = () => void this.resync();

  constructor(opts: SandboxServicesOptions) {
    super();
    this.id = opts.id;
    this.name = opts.name;
    this.agent = opts.agent;
    this.image = {
      workingDir: normalizeAbsolute(opts.image.workingDir || "/"),
      home: normalizeAbsolute(opts.image.home || "/root"),
      uid: opts.image.uid ?? 0,
      gid: opts.image.gid ?? 0,
      shell: opts.image.shell || "/bin/sh",
    };
    this.env = { ...opts.env };
    this.logDir = opts.logDir;
    this.logger = opts.logger;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits, log: { ...DEFAULT_LIMITS.log, ...opts.limits?.log } };
    this.paths = { workingDir: this.image.workingDir, home: this.image.home };
    mkdirSync(this.logDir, { recursive: true, mode: 0o700 });

    const env = () => this.env;
    this.router = new AgentEventRouter(this.agent);
    const users = new UserDirectory(this.agent);
    this.files = new FileService(this.agent, users, this.paths);
    this.processes = new ProcessManager({
      agent: this.agent,
      router: this.router,
      image: this.image,
      env,
      paths: this.paths,
      logDir: this.logDir,
      limits: this.limits,
      logger: this.logger,
    });
    this.processes.on("keepAlive", (active: boolean) => this.emit("keepAlive", active));
    this.search = new SearchService(this.agent, this.router, this.image, env);
    this.watches = new WatchService(this.agent);
    this.uploads = new UploadManager(this.agent, this.files);
    this.terminals = new TerminalService(this.agent, this.router, this.image, env);
    this.drives = opts.drives;
    this.agentUpgrade = opts.agentUpgrade;
    this.network = new NetworkService(this.agent, this.logger, this.limits.portPollMs, opts.checkCallback);
    this.codegen = new CodegenService(this.files, new CodeIndex(this.agent), env, this.logger);

    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
    this.agent.on("connect", this.onConnect);
    if (this.agent.connected) void this.resync();
  }

  /** The environment every new process gets (image env then spec envs). */
  get environment(): Record<string, string> {
    return this.env;
  }

  /** Replaces the environment of processes started from now on. */
  setEnvironment(env: Record<string, string>): void {
    this.env = { ...env };
  }

  /** Rebuilds the process table from the agent (on construction and after every reconnect). */
  private async resync(): Promise<void> {
    if (this.disposed) return;
    try {
      await this.processes.resync();
      if (!this.synced) await this.uploads.cleanStale();
      this.synced = true;
    } catch (e) {
      this.logger.warn({ err: e }, "rebuilding the process table from the agent failed");
    } finally {
      this.settled = true;
      this.resolveReady();
    }
  }

  // ---- standby hooks ----------------------------------------------------------------------

  /** True while a process started with keepAlive runs and its keep-alive timeout has not passed. */
  keepAliveActive(): boolean {
    return this.processes.keepAliveActive();
  }

  /** Records use of the sandbox. */
  touch(): void {
    this.activityCount++;
    this.lastActivityAt = Date.now();
    this.emit("activity");
  }

  /** Marks a request or stream as started; the returned function marks it finished (idempotent). */
  beginActivity(): () => void {
    this.activeRequests++;
    this.touch();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.activeRequests--;
      this.touch();
    };
  }

  /** Stops process timeouts from counting (call when freezing the sandbox). */
  pauseTimers(): void {
    this.processes.pauseTimers();
  }

  /** Resumes process timeouts (call after thawing or restoring). */
  resumeTimers(): void {
    this.processes.resumeTimers();
  }

  /** Releases listeners, timers and terminals; sandbox processes keep running. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.agent.off("connect", this.onConnect);
    this.processes.dispose();
    this.watches.dispose();
    this.terminals.dispose();
    this.network.dispose();
    await this.uploads.dispose().catch(() => {});
    this.router.dispose();
    this.removeAllListeners();
  }
}
