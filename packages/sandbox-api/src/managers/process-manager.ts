// The process table of one sandbox: spawns commands through the agent, keeps their output (bounded,
// spilled to disk), applies timeouts, restarts, stop/kill on the whole process group, stdin pipes and
// keep-alive. Rebuilt from the agent's own process list (tags) after a reconnect or a server restart.

import { EventEmitter } from "node:events";
import { join } from "node:path";
import { HangarError, randomId, type Logger } from "@hangar/common";
import type { AgentClient, AgentProcess, ExitInfo } from "@hangar/sandbox-agent";
import { agentErrno, fromAgentError } from "../util/agent-errors.js";
import { directArgv } from "../util/direct-exec.js";
import { goHttpDate } from "../util/go-format.js";
import { PausableTimer } from "../util/timers.js";
import { resolvePath, type PathContext } from "../paths.js";
import type { SandboxImage, SandboxLimits } from "../types.js";
import type { AgentEventRouter, ProcessSink } from "./agent-router.js";
import { LogBudget, LogStore, type LogText } from "./log-store.js";

/** How long a process found finished after a restart waits for the agent to replay its output and exit. */
const REPLAY_WAIT_MS = 2_000;

export type ProcessStatus = "running" | "completed" | "failed" | "killed" | "stopped";

export interface ExecRequest {
  command: string;
  name?: string;
  workingDir?: string;
  env?: Record<string, string>;
  waitForCompletion?: boolean;
  /** Seconds; 0 = none; defaults to 600 with keepAlive. */
  timeout?: number;
  waitForPorts?: number[];
  restartOnFailure?: boolean;
  /** Negative = unlimited; defaults to 3 with restartOnFailure. */
  maxRestarts?: number;
  keepAlive?: boolean;
  stdin?: boolean;
}

/** The wire shape of a process (wire spec §5.3). */
export interface ProcessResponse {
  pid: string;
  name: string;
  command: string;
  status: ProcessStatus;
  startedAt: string;
  completedAt: string | null;
  exitCode: number;
  workingDir: string;
  logs: string;
  stdout: string;
  stderr: string;
  restartOnFailure: boolean;
  maxRestarts: number;
  restartCount: number;
  keepAlive: boolean;
  stdin: boolean;
}

const SIGTERM = 15;
const SIGKILL = 9;
const DEFAULT_KEEPALIVE_TIMEOUT_S = 600;
const DEFAULT_MAX_RESTARTS = 3;
const TAG_MAGIC = "hangar.process/1";
const MAX_TAG_ENV_BYTES = 32 * 1024;

/** What the agent keeps with each process so the table can be rebuilt (tag bytes, JSON). */
interface ProcessTag {
  m: typeof TAG_MAGIC;
  key: string;
  pid: string;
  name: string;
  command: string;
  cwd: string;
  env?: Record<string, string>;
  startedAt: number;
  runStartedAt: number;
  keepAlive: boolean;
  timeoutMs: number;
  restartOnFailure: boolean;
  maxRestarts: number;
  restartCount: number;
  stdin: boolean;
}

export class ProcessRecord {
  /** Unique key (names the log file); never reused. */
  readonly key: string;
  /** The API pid: the pid of the first run, kept across restarts. */
  pid: string;
  /** PID of the current run inside the sandbox. */
  osPid = 0;
  agentId: number | null = null;
  status: ProcessStatus = "running";
  exitCode = 0;
  completedAt: Date | null = null;
  restartCount = 0;
  runStartedAt: Date;
  stdinOpen: boolean;
  terminationRequested: "stopped" | "killed" | null = null;
  timer: PausableTimer | null = null;
  graceTimer: NodeJS.Timeout | null = null;
  restartTimer: NodeJS.Timeout | null = null;
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  constructor(
    readonly name: string,
    readonly command: string,
    readonly workingDir: string,
    readonly requestEnv: Record<string, string> | undefined,
    readonly startedAt: Date,
    readonly keepAlive: boolean,
    readonly timeoutMs: number,
    readonly restartOnFailure: boolean,
    readonly maxRestarts: number,
    readonly stdin: boolean,
    readonly logs: LogStore,
    key: string,
  ) {
    this.key = key;
    this.pid = "";
    this.runStartedAt = startedAt;
    this.stdinOpen = stdin;
    this.finished = new Promise((r) => (this.resolveFinished = r));
  }

  get running(): boolean {
    return this.status === "running";
  }

  /** Marks the record finished (idempotent). */
  settle(): void {
    this.resolveFinished();
  }
}

export interface ProcessManagerDeps {
  agent: AgentClient;
  router: AgentEventRouter;
  image: SandboxImage;
  /** Current sandbox environment (image env then spec envs). */
  env: () => Record<string, string>;
  paths: PathContext;
  logDir: string;
  limits: SandboxLimits;
  logger: Logger;
}

export interface ResponseOptions {
  /** "full": all retained output; "tail": recent output only; "none": empty strings. */
  logs: "full" | "tail" | "none";
  /** The list endpoint reports a running process's completedAt as null, single-process endpoints as "". */
  nullCompletedAt?: boolean;
}

export class ProcessManager extends EventEmitter {
  private readonly records = new Map<string, ProcessRecord>();
  private readonly byPid = new Map<string, ProcessRecord>();
  private paused = false;
  private disposed = false;
  private lastKeepAlive = false;

  /** Disk shared by all process logs of the sandbox; full → the oldest finished processes go. */
  private readonly logBudget: LogBudget;

  constructor(private readonly deps: ProcessManagerDeps) {
    super();
    this.logBudget = new LogBudget(deps.limits.logDiskBudget, (bytes) => this.reclaimLogs(bytes));
  }

  /** Forgets finished processes, oldest first, until their logs free `bytes` (or none is left). */
  private reclaimLogs(bytes: number): void {
    const target = this.logBudget.used - bytes;
    for (const r of this.list()) {
      if (this.logBudget.used <= target) break;
      if (r.running) continue;
      this.forget(r);
    }
  }

  private forget(r: ProcessRecord): void {
    this.records.delete(r.key);
    if (this.byPid.get(r.pid) === r) this.byPid.delete(r.pid);
    void r.logs.dispose();
  }

  // ---- lookup -----------------------------------------------------------------------------

  /** By API pid (all digits) or by name (the most recently started process with that name). */
  find(identifier: string): ProcessRecord | undefined {
    if (/^\d+$/.test(identifier)) {
      const byPid = this.byPid.get(identifier);
      if (byPid) return byPid;
    }
    let latest: ProcessRecord | undefined;
    for (const r of this.records.values()) {
      if (r.name === identifier && (!latest || r.startedAt >= latest.startedAt)) latest = r;
    }
    return latest;
  }

  get(identifier: string): ProcessRecord {
    const r = this.find(identifier);
    if (!r) throw new HangarError("process_not_found", `process '${identifier}' not found (use its pid or name, see GET /process)`);
    return r;
  }

  list(): ProcessRecord[] {
    return [...this.records.values()].sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime());
  }

  get runningCount(): number {
    let n = 0;
    for (const r of this.records.values()) if (r.running) n++;
    return n;
  }

  // ---- exec -------------------------------------------------------------------------------

  async exec(req: ExecRequest): Promise<ProcessRecord> {
    if (this.disposed) throw new HangarError("sandbox_unavailable", "the sandbox is shutting down");
    if (typeof req.command !== "string" || req.command.trim() === "") {
      throw new HangarError("validation_failed", "command must be a non-empty string");
    }
    if (req.name) {
      const existing = this.find(req.name);
      if (existing?.running) {
        throw new HangarError("process_name_in_use", `process with name '${req.name}' already exists and is running (pid ${existing.pid}); stop it or choose another name`);
      }
    }
    const name = req.name || `proc-${randomId(8)}`;
    const workingDir = req.workingDir ? resolvePath(req.workingDir, this.deps.paths) : this.deps.image.workingDir;
    const keepAlive = req.keepAlive === true;
    const timeoutS = req.timeout ?? (keepAlive ? DEFAULT_KEEPALIVE_TIMEOUT_S : 0);
    if (!Number.isFinite(timeoutS) || timeoutS < 0) throw new HangarError("validation_failed", "timeout must be a number of seconds >= 0");
    const restartOnFailure = req.restartOnFailure === true;
    const maxRestarts = req.maxRestarts ?? (restartOnFailure ? DEFAULT_MAX_RESTARTS : 0);
    const startedAt = new Date();
    const key = `${startedAt.getTime().toString(36)}-${randomId(6)}`;
    const record = new ProcessRecord(
      name,
      req.command,
      workingDir,
      req.env && Object.keys(req.env).length > 0 ? { ...req.env } : undefined,
      startedAt,
      keepAlive,
      Math.round(timeoutS * 1000),
      restartOnFailure,
      maxRestarts,
      req.stdin === true,
      new LogStore(join(this.deps.logDir, `${key}.log`), this.deps.limits.log, this.logBudget),
      key,
    );
    await this.spawnRun(record, true);
    this.records.set(record.key, record);
    this.byPid.set(record.pid, record);
    this.emit("spawn", record);
    this.checkKeepAlive();
    return record;
  }

  private environment(record: ProcessRecord): Record<string, string> {
    const env: Record<string, string> = { ...this.deps.env(), ...(record.requestEnv ?? {}) };
    env.PATH ??= "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    env.HOME ??= this.deps.image.home;
    return env;
  }

  private tagOf(record: ProcessRecord): Buffer {
    const tag: ProcessTag = {
      m: TAG_MAGIC,
      key: record.key,
      pid: record.pid,
      name: record.name,
      command: record.command,
      cwd: record.workingDir,
      startedAt: record.startedAt.getTime(),
      runStartedAt: record.runStartedAt.getTime(),
      keepAlive: record.keepAlive,
      timeoutMs: record.timeoutMs,
      restartOnFailure: record.restartOnFailure,
      maxRestarts: record.maxRestarts,
      restartCount: record.restartCount,
      stdin: record.stdin,
    };
    if (record.requestEnv && JSON.stringify(record.requestEnv).length <= MAX_TAG_ENV_BYTES) tag.env = record.requestEnv;
    return Buffer.from(JSON.stringify(tag));
  }

  /** Starts one run of the record's command; the first run fixes the API pid. */
  private async spawnRun(record: ProcessRecord, first: boolean): Promise<void> {
    const { agent, image } = this.deps;
    const shell = image.shell || "/bin/sh";
    const env = this.environment(record);
    const tag = this.tagOf(record);
    const spawn = (argv: string[], env: Record<string, string>) => agent.spawn({ argv, env, cwd: record.workingDir, uid: image.uid, gid: image.gid, stdin: record.stdin, tag });
    let spawned: { id: number; pid: number } | null = null;
    const direct = directArgv(record.command, env);
    if (direct) {
      // what the shell would exec itself, with the variables it would export (PWD, SHLVL)
      const shellEnv = { ...env, PWD: record.workingDir, SHLVL: String((Number.parseInt(env.SHLVL ?? "0", 10) || 0) + 1) };
      spawned = await spawn(direct, shellEnv).catch(() => null); // not found, not executable…: the shell says why
    }
    if (!spawned) {
      try {
        spawned = await spawn([shell, "-c", record.command], env);
      } catch (e) {
        throw await this.spawnError(e, record);
      }
    }
    record.agentId = spawned.id;
    record.osPid = spawned.pid;
    record.runStartedAt = first ? record.startedAt : new Date();
    record.stdinOpen = record.stdin;
    if (first) record.pid = String(spawned.pid);
    this.armTimeout(record, record.timeoutMs);
    this.deps.router.register(spawned.id, this.sinkFor(record, spawned.id));
  }

  private async spawnError(e: unknown, record: ProcessRecord): Promise<HangarError> {
    const errno = agentErrno(e);
    if (errno === "ENOENT" || errno === "ENOTDIR") {
      try {
        const st = await this.deps.agent.stat(record.workingDir);
        if (st.type !== "directory") return new HangarError("validation_failed", `workingDir '${record.workingDir}' is not a directory`);
      } catch {
        return new HangarError("validation_failed", `workingDir '${record.workingDir}' does not exist`);
      }
      return new HangarError("process_start_failed", `cannot start the shell '${this.deps.image.shell}': not found in the sandbox`);
    }
    if (errno) return new HangarError("process_start_failed", `failed to start process: ${errno}${e instanceof Error && e.message ? ` (${e.message})` : ""}`);
    return fromAgentError(e);
  }

  private sinkFor(record: ProcessRecord, agentId: number): ProcessSink {
    return {
      onOutput: (stream, data) => record.logs.append(stream, data),
      onExit: (info) => this.onRunExit(record, agentId, info),
    };
  }

  private armTimeout(record: ProcessRecord, ms: number): void {
    record.timer?.cancel();
    record.timer = null;
    if (ms <= 0) return;
    record.timer = new PausableTimer(
      ms,
      () => {
        if (!record.running || record.agentId === null) return;
        record.logs.append(0, Buffer.from(`\n[Process killed: timeout of ${Math.round(record.timeoutMs / 1000)}s exceeded]\n`));
        void this.signalRecord(record, SIGKILL, "killed").catch(() => {});
      },
      this.paused,
    );
  }

  // ---- exit, restart ----------------------------------------------------------------------

  private onRunExit(record: ProcessRecord, agentId: number, info: ExitInfo): void {
    if (record.agentId !== agentId) return;
    record.agentId = null;
    record.stdinOpen = false;
    record.timer?.cancel();
    record.timer = null;
    if (record.graceTimer) clearTimeout(record.graceTimer);
    record.graceTimer = null;
    void this.deps.agent.release(agentId).catch(() => {});
    // Go's ExitCode(): -1 when the shell died from a signal.
    const exitCode = info.exitCode ?? -1;
    record.exitCode = exitCode;
    const failed = exitCode !== 0;
    const restart =
      !this.disposed &&
      record.terminationRequested === null &&
      failed &&
      record.restartOnFailure &&
      (record.maxRestarts < 0 || record.restartCount < record.maxRestarts);
    if (restart) {
      const limit = record.maxRestarts < 0 ? "unlimited" : String(record.maxRestarts);
      record.logs.append(0, Buffer.from(`\n[Process failed with exit code ${exitCode}. Attempting restart ${record.restartCount + 1}/${limit}...]\n`));
      record.restartTimer = setTimeout(() => {
        record.restartTimer = null;
        if (!record.running || this.disposed) return;
        record.restartCount++;
        this.spawnRun(record, false).then(
          () => this.emit("restart", record),
          (e: unknown) => {
            const msg = e instanceof Error ? e.message : String(e);
            record.logs.append(0, Buffer.from(`\n[Failed to restart process: ${msg}]\n`));
            this.finish(record, "failed");
          },
        );
      }, this.deps.limits.restartDelayMs);
      record.restartTimer.unref?.();
      return;
    }
    this.finish(record, record.terminationRequested ?? (failed ? "failed" : "completed"));
  }

  private finish(record: ProcessRecord, status: ProcessStatus): void {
    if (!record.running) return;
    record.status = status;
    record.completedAt = new Date();
    record.timer?.cancel();
    record.timer = null;
    if (record.restartTimer) clearTimeout(record.restartTimer);
    record.restartTimer = null;
    if (record.graceTimer) clearTimeout(record.graceTimer);
    record.graceTimer = null;
    record.logs.end();
    record.settle();
    this.emit("exit", record);
    this.checkKeepAlive();
    this.pruneFinished();
  }

  private pruneFinished(): void {
    const max = this.deps.limits.maxFinishedProcesses;
    let finished = 0;
    for (const r of this.records.values()) if (!r.running) finished++;
    if (finished <= max) return;
    for (const r of this.list()) {
      if (finished <= max) break;
      if (r.running) continue;
      this.forget(r);
      finished--;
    }
  }

  // ---- signals ----------------------------------------------------------------------------

  private async signalRecord(record: ProcessRecord, signal: number, intent: "stopped" | "killed"): Promise<void> {
    if (record.terminationRequested === "killed" || record.terminationRequested === intent) return;
    record.terminationRequested = intent;
    if (record.agentId === null) {
      // Between a failed run and its restart: settle now and cancel the restart.
      this.finish(record, intent);
      return;
    }
    try {
      await this.deps.agent.signal(record.agentId, signal, true);
    } catch (e) {
      const errno = agentErrno(e);
      if (errno !== "ESRCH") throw fromAgentError(e, `process ${record.pid}`);
    }
  }

  /** SIGTERM to the process group; status becomes `stopped` (SIGKILL after a grace period). */
  async stop(identifier: string): Promise<ProcessRecord> {
    const record = this.get(identifier);
    if (!record.running) {
      if (record.terminationRequested) return record;
      throw new HangarError("process_not_found", `process '${identifier}' is not running (status ${record.status})`);
    }
    if (record.terminationRequested === null && record.agentId !== null) {
      record.logs.append(0, Buffer.from("\n[Process is being gracefully terminated]\n"));
    }
    await this.signalRecord(record, SIGTERM, "stopped");
    if (record.running && !record.graceTimer) {
      record.graceTimer = setTimeout(() => {
        record.graceTimer = null;
        if (record.running && record.agentId !== null) void this.deps.agent.signal(record.agentId, SIGKILL, true).catch(() => {});
      }, this.deps.limits.stopGraceMs);
      record.graceTimer.unref?.();
    }
    return record;
  }

  /** SIGKILL to the process group; status becomes `killed`. */
  async kill(identifier: string): Promise<ProcessRecord> {
    const record = this.get(identifier);
    if (!record.running) {
      if (record.terminationRequested) return record;
      throw new HangarError("process_not_found", `process '${identifier}' is not running (status ${record.status})`);
    }
    await this.signalRecord(record, SIGKILL, "killed");
    return record;
  }

  // ---- stdin ------------------------------------------------------------------------------

  async writeStdin(identifier: string, data: Buffer): Promise<void> {
    const record = this.get(identifier);
    if (!record.stdin) throw new HangarError("stdin_closed", `process '${identifier}' was not started with stdin: true`);
    if (!record.running || !record.stdinOpen || record.agentId === null) {
      throw new HangarError("stdin_closed", `stdin of process '${identifier}' is closed`);
    }
    if (data.length === 0) return;
    try {
      await this.deps.agent.writeStdin(record.agentId, data);
    } catch (e) {
      const errno = agentErrno(e);
      if (errno === "EPIPE") {
        record.stdinOpen = false;
        throw new HangarError("stdin_not_read", `process '${identifier}' stopped reading its stdin`);
      }
      if (errno === "EBADF" || errno === "ESRCH" || errno === "ENOENT") throw new HangarError("stdin_closed", `stdin of process '${identifier}' is closed`);
      throw fromAgentError(e, `process ${identifier}`);
    }
  }

  async closeStdin(identifier: string): Promise<void> {
    const record = this.get(identifier);
    if (!record.stdin) throw new HangarError("stdin_closed", `process '${identifier}' was not started with stdin: true`);
    if (!record.stdinOpen || record.agentId === null) return;
    record.stdinOpen = false;
    try {
      await this.deps.agent.closeStdin(record.agentId);
    } catch (e) {
      const errno = agentErrno(e);
      if (errno && ["EBADF", "ESRCH", "ENOENT", "EPIPE"].includes(errno)) return;
      throw fromAgentError(e, `process ${identifier}`);
    }
  }

  // ---- waiting ----------------------------------------------------------------------------

  /** Resolves true when the record finished within `ms`, false otherwise. */
  async waitForExit(record: ProcessRecord, ms: number, signal?: AbortSignal): Promise<boolean> {
    if (!record.running) return true;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
      onAbort = () => resolve(false);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([record.finished.then(() => true as const), timeout]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  }

  // ---- wire shape -------------------------------------------------------------------------

  async toResponse(record: ProcessRecord, opts: ResponseOptions): Promise<ProcessResponse> {
    let text: LogText;
    if (opts.logs === "full") text = await record.logs.text();
    else if (opts.logs === "tail") text = record.logs.tail();
    else text = { logs: "", stdout: "", stderr: "" };
    return this.shape(record, text, opts);
  }

  shape(record: ProcessRecord, text: LogText, opts: Pick<ResponseOptions, "nullCompletedAt">): ProcessResponse {
    return {
      pid: record.pid,
      name: record.name,
      command: record.command,
      status: record.status,
      startedAt: goHttpDate(record.startedAt),
      completedAt: record.completedAt ? goHttpDate(record.completedAt) : opts.nullCompletedAt ? null : "",
      exitCode: record.exitCode,
      workingDir: record.workingDir,
      logs: text.logs,
      stdout: text.stdout,
      stderr: text.stderr,
      restartOnFailure: record.restartOnFailure,
      maxRestarts: record.maxRestarts,
      restartCount: record.restartCount,
      keepAlive: record.keepAlive,
      stdin: record.stdin,
    };
  }

  // ---- keep-alive, timers -----------------------------------------------------------------

  /** True while a keepAlive process runs and its timeout has not passed. */
  keepAliveActive(): boolean {
    for (const r of this.records.values()) {
      if (r.running && r.keepAlive && !(r.timer?.expired ?? false)) return true;
    }
    return false;
  }

  private checkKeepAlive(): void {
    const now = this.keepAliveActive();
    if (now !== this.lastKeepAlive) {
      this.lastKeepAlive = now;
      this.emit("keepAlive", now);
    }
  }

  pauseTimers(): void {
    this.paused = true;
    for (const r of this.records.values()) r.timer?.pause();
  }

  resumeTimers(): void {
    this.paused = false;
    for (const r of this.records.values()) r.timer?.resume();
  }

  // ---- rebuild after reconnect ------------------------------------------------------------

  /**
   * Reconciles the table with the agent's process list: adopts processes this table does not know
   * (server restart), refreshes handles of known ones, settles those that exited while nobody was
   * listening and marks lost the ones the agent no longer has.
   */
  async resync(): Promise<void> {
    const procs = await this.deps.agent.listProcesses();
    const seen = new Set<string>();
    for (const p of procs) {
      const tag = parseTag(p.tag);
      if (!tag) {
        // Helper commands and terminals of an earlier server process: nobody owns them any more.
        if (isHelperTag(p.tag) && !this.deps.router.owns(p.id)) {
          const id = p.id;
          if (p.running) {
            this.deps.router.register(id, { onOutput: () => {}, onExit: () => void this.deps.agent.release(id).catch(() => {}) });
            void this.deps.agent.signal(id, SIGKILL, true).catch(() => {});
          } else void this.deps.agent.release(id).catch(() => {});
        }
        continue;
      }
      seen.add(tag.key);
      const known = this.records.get(tag.key);
      if (known) {
        if (known.running && known.agentId !== p.id) {
          known.agentId = p.id;
          known.osPid = p.pid;
          this.deps.router.register(p.id, this.sinkFor(known, p.id));
        }
        if (!p.running && known.agentId === p.id) this.onRunExit(known, p.id, { exitCode: p.exitCode, signal: p.signal });
        continue;
      }
      await this.adopt(p, tag);
    }
    for (const r of this.records.values()) {
      if (r.running && r.agentId !== null && !seen.has(r.key)) {
        // A new agent instance may reuse the handle for another process.
        this.deps.router.unregister(r.agentId);
        r.agentId = null;
        r.logs.append(0, Buffer.from("\n[Process lost: the sandbox agent restarted]\n"));
        r.exitCode = -1;
        this.finish(r, r.terminationRequested ?? "failed");
      }
    }
    this.checkKeepAlive();
  }

  private async adopt(p: AgentProcess, tag: ProcessTag): Promise<void> {
    const logs = new LogStore(join(this.deps.logDir, `${tag.key}.log`), this.deps.limits.log, this.logBudget);
    await logs.adoptExisting();
    const record = new ProcessRecord(
      tag.name,
      tag.command,
      tag.cwd,
      tag.env,
      new Date(tag.startedAt),
      tag.keepAlive,
      tag.timeoutMs,
      tag.restartOnFailure,
      tag.maxRestarts,
      tag.stdin,
      logs,
      tag.key,
    );
    // The first run's tag is written before its pid is known: that run's pid is the API pid.
    record.pid = tag.pid || String(p.pid);
    record.osPid = p.pid;
    record.restartCount = tag.restartCount;
    record.runStartedAt = new Date(tag.runStartedAt);
    record.agentId = p.id;
    record.stdinOpen = tag.stdin && p.running;
    this.records.set(record.key, record);
    this.byPid.set(record.pid, record);
    if (p.running) {
      if (record.timeoutMs > 0) this.armTimeout(record, Math.max(1, record.runStartedAt.getTime() + record.timeoutMs - Date.now()));
      this.deps.router.register(p.id, this.sinkFor(record, p.id));
    } else {
      // It finished while no server listened: the agent replays the output it kept and the exit,
      // which the router may hold already or deliver shortly. The listing's exit stands in if
      // none comes (an exit an earlier server already saw is not replayed).
      this.deps.router.register(p.id, this.sinkFor(record, p.id));
      if (record.running) {
        setTimeout(() => {
          if (!record.running || record.agentId !== p.id) return;
          this.deps.router.unregister(p.id);
          this.onRunExit(record, p.id, { exitCode: p.exitCode, signal: p.signal });
        }, REPLAY_WAIT_MS).unref();
      }
    }
  }

  /** Stops timers and listeners; sandbox processes keep running (the table can be rebuilt). */
  dispose(): void {
    this.disposed = true;
    for (const r of this.records.values()) {
      r.timer?.cancel();
      if (r.graceTimer) clearTimeout(r.graceTimer);
      if (r.restartTimer) clearTimeout(r.restartTimer);
      if (r.agentId !== null) this.deps.router.unregister(r.agentId);
      r.logs.end();
      r.settle();
    }
    this.removeAllListeners();
  }
}

function isHelperTag(buf: Buffer): boolean {
  const s = buf?.toString("utf8") ?? "";
  return s.startsWith('{"m":"hangar.internal/') || s.startsWith('{"m":"hangar.terminal/');
}

function parseTag(buf: Buffer): ProcessTag | null {
  if (!buf || buf.length === 0 || buf[0] !== 0x7b) return null;
  try {
    const t = JSON.parse(buf.toString("utf8")) as ProcessTag;
    return t && t.m === TAG_MAGIC && typeof t.key === "string" ? t : null;
  } catch {
    return null;
  }
}
