// Batch jobs on the sandbox substrate. A job is a stored spec (a `workloads` row of kind "jobs");
// each change to what it runs is a revision. An execution is N tasks; each task run is a sandbox of
// the revision's image running the image's command as process "task", whose exit code is the
// result. Executions and tasks live in the store; workers claim task runs with leases (TaskQueue),
// so a server that restarts adopts its task sandboxes and finds every task where it left it.

import { createHash, randomBytes } from "node:crypto";
import { HangarError, type Logger, describeNameProblem, randomId, silentLogger } from "@hangar/common";
import type { NodeSandboxSpec } from "@hangar/control-plane";
import type { JobExecutionRecord, JobTaskCounts, JobTaskRecord, ListQuery, Page, RevisionRecord, SecretBox, Store, WorkloadRecord, WorkspaceRecord } from "@hangar/store";
import { StoreConflictError } from "@hangar/store";
import { type JobSpecDoc, type JobRuntime, jobRevisionKey, normalizeJobSpec, normalizeTasks } from "./job-spec.js";
import { StoreTaskQueue, type TaskQueue } from "./queue.js";

export const JOBS_KIND = "jobs";

/** How a task's process ended (the sandbox API's process statuses). */
export interface TaskExit {
  status: "completed" | "failed" | "killed" | "stopped";
  exitCode: number;
  logs: string;
  /** The sandbox could not be started: the node's fault, not the task's. */
  infra?: boolean;
}

/** What the jobs plane needs from the node that runs task sandboxes. */
export interface TaskPort {
  readonly nodeName: string;
  start(spec: NodeSandboxSpec): Promise<void>;
  destroy(id: string): Promise<void>;
  has(id: string): boolean;
  /**
   * Runs the task as process `name` in the sandbox unless it has one by that name already (adopted
   * after a restart); resolves when it ends. `command` null = the image's command.
   */
  run(id: string, how: { name: string; command: string[] | null; env: Record<string, string>; timeoutS: number }): Promise<TaskExit>;
  /** SIGTERM to the task's process group, SIGKILL after a grace period. */
  stop(id: string): Promise<void>;
  /** The base URL at which processes in this sandbox reach Hangar (API, run plane, data URLs). */
  hostUrl(id: string): string;
}

/** Workspace-scoped API keys handed to tasks, revoked when their execution ends. */
export interface TaskCredentials {
  issue(workspaceId: string, name: string): Promise<{ id: string; key: string }>;
  revoke(id: string): Promise<void>;
}

export interface JobServiceOptions {
  store: Store;
  tasks: TaskPort;
  secrets: SecretBox;
  credentials: TaskCredentials;
  logger?: Logger;
  queue?: TaskQueue;
  /** Task sandboxes running at once on this node, all jobs together (default 32). */
  nodeCap?: number;
  /** First retry delay; doubles per retry up to 60 s (default 1 s). */
  retryBaseMs?: number;
  /** Lease of a claimed task run (default 30 s, renewed every third of it). */
  leaseMs?: number;
  /** How often the worker looks for due tasks without being woken (default 250 ms). */
  pollMs?: number;
}

export interface ExecutionInput {
  tasks?: unknown;
  env?: unknown;
  memory?: unknown;
  executionId?: unknown;
  allowQueue?: unknown;
  id?: unknown;
}

const TERMINAL = new Set(["cancelled", "failed", "succeeded", "timeout"]);
const KEPT_LOG_BYTES = 256 * 1024;
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const event = (status: string, message: string, revision?: string) => ({ type: "deployment", status, message, time: new Date().toISOString(), ...(revision ? { revision } : {}) });
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

export class JobService {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly queue: TaskQueue;
  private readonly opts: Required<Omit<JobServiceOptions, "logger" | "queue">>;
  /** This worker's identity on its leases. */
  readonly owner = `${randomId(8)}`;
  /** Task runs this process supervises, by task id. */
  private readonly active = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private ticking = false;
  private again = false;
  private closed = false;
  /** Claims only once start() ran (a process that only serves the API claims nothing). */
  private started = false;
  private scheduler: { stop(): void } | null = null;
  /**
   * Sandboxes whose task succeeded, kept a moment for the next task of the same execution (same
   * image, envs and credential): a slot runs its execution's tasks back to back without a new
   * sandbox each. A failed, timed-out or cancelled run's sandbox is never reused.
   */
  private readonly idle = new Map<string, Array<{ id: string; timer: NodeJS.Timeout }>>();

  constructor(opts: JobServiceOptions) {
    this.store = opts.store;
    this.log = opts.logger ?? silentLogger;
    this.queue = opts.queue ?? new StoreTaskQueue(opts.store);
    this.opts = { nodeCap: 32, retryBaseMs: 1_000, leaseMs: 30_000, pollMs: 250, ...opts } as Required<Omit<JobServiceOptions, "logger" | "queue">>;
  }

  // ---- the job resource

  async get(ws: WorkspaceRecord, name: string): Promise<WorkloadRecord> {
    const rec = await this.store.workloads.get(ws.id, JOBS_KIND, name);
    if (!rec) throw new HangarError("not_found", `job '${name}' not found in workspace '${ws.name}'`);
    return rec;
  }

  list(ws: WorkspaceRecord, query: ListQuery): Promise<Page<WorkloadRecord>> {
    return this.store.workloads.list(ws.id, JOBS_KIND, query);
  }

  /** Creates (POST: 409 when it exists) or creates-or-updates (PUT) a job; a change to what it runs makes a revision. */
  async apply(ws: WorkspaceRecord, input: { metadata?: unknown; spec?: unknown }, how: { name?: string; mustCreate?: boolean; image?: string; deferDeploy?: boolean } = {}): Promise<WorkloadRecord> {
    const md = isObj(input.metadata) ? input.metadata : {};
    const name = how.name ?? (typeof md.name === "string" ? md.name : undefined);
    if (!name) throw new HangarError("invalid_name", "metadata.name is required");
    const problem = describeNameProblem(name);
    if (problem) throw new HangarError("invalid_name", `metadata.name: ${problem}`);
    if (how.name && typeof md.name === "string" && md.name !== how.name) throw new HangarError("validation_failed", "metadata.name: a job cannot be renamed");
    if (md.labels !== undefined && (!isObj(md.labels) || Object.values(md.labels).some((v) => typeof v !== "string"))) throw new HangarError("validation_failed", "metadata.labels: an object of strings");
    const labels = md.labels as Record<string, string> | undefined;
    const spec = normalizeJobSpec(input.spec);
    if (how.image) spec.runtime.image = how.image;
    const existing = await this.store.workloads.get(ws.id, JOBS_KIND, name);
    if (existing && how.mustCreate) throw new HangarError("already_exists", `job '${name}' already exists in workspace '${ws.name}'`);
    const prev = existing ? (existing.spec as unknown as JobSpecDoc) : null;
    if (!spec.runtime.image && prev?.runtime.image) spec.runtime.image = prev.runtime.image;
    const sealed = this.seal(spec, prev);
    const changes = !how.deferDeploy && !!spec.runtime.image && (!prev || jobRevisionKey(this.reveal(prev).runtime) !== jobRevisionKey(spec.runtime) || !existing?.activeRevision);
    const now = new Date().toISOString();
    const displayName = typeof md.displayName === "string" ? md.displayName : (existing?.displayName ?? name);
    let rec: WorkloadRecord;
    if (!existing) {
      rec = {
        id: randomId(12),
        workspaceId: ws.id,
        kind: JOBS_KIND,
        name,
        displayName,
        labels: labels ?? {},
        spec: sealed as unknown as Record<string, unknown>,
        status: spec.runtime.image && !how.deferDeploy ? "DEPLOYED" : "UPLOADING",
        events: [event(spec.runtime.image && !how.deferDeploy ? "DEPLOYED" : "UPLOADING", spec.runtime.image && !how.deferDeploy ? "job created" : "waiting for an image")],
        activeRevision: null,
        createdAt: now,
        updatedAt: now,
        version: 1,
      };
      try {
        await this.store.workloads.insert(rec);
      } catch (e) {
        if (e instanceof StoreConflictError) throw new HangarError("already_exists", `job '${name}' is being created concurrently`);
        throw e;
      }
    } else {
      const uploading = how.deferDeploy ? { status: "UPLOADING", events: [...existing.events, event("UPLOADING", "waiting for the source to build")] } : {};
      rec = (await this.store.workloads.update(existing.id, { displayName, labels: labels ?? existing.labels, spec: sealed as unknown as Record<string, unknown>, updatedAt: now, ...uploading })) ?? existing;
    }
    if (changes) {
      const rev: RevisionRecord = {
        id: randomId(12),
        workloadId: rec.id,
        image: sealed.runtime.image!,
        runtime: { memory: sealed.runtime.memory, envs: sealed.runtime.envs ?? [], command: sealed.runtime.command ?? null, args: sealed.runtime.args ?? null },
        status: "READY",
        message: null,
        createdAt: now,
      };
      await this.store.workloads.insertRevision(rev);
      if (rec.activeRevision) await this.store.workloads.updateRevision(rec.activeRevision, { status: "RETIRED" });
      rec = (await this.store.workloads.update(rec.id, { activeRevision: rev.id, status: "DEPLOYED", events: [...rec.events, event("DEPLOYED", `revision ${rev.id} is active`, rev.id)], updatedAt: now })) ?? rec;
      await this.pruneRevisions(rec);
    }
    return rec;
  }

  /** A build made the job's image: a new revision runs it. */
  async deployImage(workspaceId: string, name: string, image: string): Promise<void> {
    const ws = await this.store.workspaces.getById(workspaceId);
    const rec = ws ? await this.store.workloads.get(ws.id, JOBS_KIND, name) : null;
    if (!ws || !rec) return;
    await this.apply(ws, { metadata: { name, labels: rec.labels, displayName: rec.displayName }, spec: this.reveal(rec.spec as unknown as JobSpecDoc) }, { name, image });
  }

  /** A job whose source is being built: BUILDING, or FAILED with the build's message. */
  async setBuildStatus(workspaceId: string, name: string, status: "BUILDING" | "FAILED", message: string): Promise<void> {
    const rec = await this.store.workloads.get(workspaceId, JOBS_KIND, name);
    if (rec) await this.store.workloads.update(rec.id, { status, events: [...rec.events, event(status, message)], updatedAt: new Date().toISOString() });
  }

  /** Keeps the 5 newest revisions, the active one and those executions still run. */
  private async pruneRevisions(rec: WorkloadRecord): Promise<void> {
    const live = new Set((await this.store.jobs.listExecutionsByStatus(["queued", "running", "cancelling"])).map((e) => e.revisionId));
    for (const r of (await this.store.workloads.listRevisions(rec.id)).slice(5)) if (r.id !== rec.activeRevision && !live.has(r.id)) await this.store.workloads.deleteRevision(r.id);
  }

  async delete(ws: WorkspaceRecord, name: string): Promise<WorkloadRecord> {
    const rec = await this.get(ws, name);
    const page = await this.store.jobs.listExecutions(rec.id, { sort: "createdAt:desc", limit: 1000, statuses: ["queued", "running", "cancelling"] });
    for (const e of page.items) await this.cancelRecord(e);
    // task sandboxes go as their runs end; the records go now
    await this.store.jobs.deleteExecutionsOfJob(rec.id);
    await this.store.workloads.delete(rec.id);
    return { ...rec, status: "DELETING" };
  }

  async revisions(ws: WorkspaceRecord, name: string): Promise<Array<Record<string, unknown>>> {
    const rec = await this.get(ws, name);
    const revs = await this.store.workloads.listRevisions(rec.id);
    const previous = revs.find((r) => r.id !== rec.activeRevision && r.status === "RETIRED");
    return revs.map((r) => ({ id: r.id, active: r.id === rec.activeRevision, canary: false, previousActive: r.id === previous?.id, createdAt: r.createdAt, createdBy: "", status: r.status, image: r.image, trafficPercent: r.id === rec.activeRevision ? 100 : 0 }));
  }

  view(rec: WorkloadRecord, ctx: { workspaceName: string; url: string; lite?: boolean; revealed?: boolean }): Record<string, unknown> {
    const stored = rec.spec as unknown as JobSpecDoc;
    const spec = ctx.revealed ? this.reveal(stored) : { ...stored, runtime: { ...stored.runtime, ...(stored.runtime.envs ? { envs: stored.runtime.envs.map((e) => (e.secret ? { ...e, value: "" } : e)) } : {}) } };
    const out: Record<string, unknown> = {
      metadata: { name: rec.name, displayName: rec.displayName, labels: rec.labels, url: ctx.url, workspace: ctx.workspaceName, createdAt: rec.createdAt, updatedAt: rec.updatedAt },
      spec: { ...spec, ...(rec.activeRevision ? { revision: { ...(spec.revision ?? {}), active: rec.activeRevision } } : {}) },
      status: rec.status,
    };
    if (!ctx.lite) out.events = rec.events;
    return out;
  }

  // ---- executions

  /** Creates an execution of the job's active revision; with allowQueue false, 429 when it cannot start now. */
  async createExecution(ws: WorkspaceRecord, name: string, body: ExecutionInput, origin = "api"): Promise<{ executionId: string; id: string; jobId: string; workspaceId: string; tasks: Array<Record<string, unknown>> }> {
    if (!isObj(body)) throw new HangarError("validation_failed", "body: a JSON object {tasks, env?, memory?, executionId?, allowQueue?}");
    const job = await this.get(ws, name);
    const spec = job.spec as unknown as JobSpecDoc;
    const tasks = normalizeTasks(body.tasks);
    if (body.env !== undefined && body.env !== null && (!isObj(body.env) || Object.values(body.env).some((v) => typeof v !== "string"))) throw new HangarError("validation_failed", "env: an object of strings");
    const env = isObj(body.env) && Object.keys(body.env).length ? (body.env as Record<string, string>) : null;
    if (env) for (const k of Object.keys(env)) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new HangarError("validation_failed", `env: '${k}' is not a valid variable name`);
    let memory: number | null = null;
    if (body.memory !== undefined && body.memory !== null && body.memory !== 0) {
      if (typeof body.memory !== "number" || !Number.isInteger(body.memory) || body.memory < 128) throw new HangarError("validation_failed", "memory: an integer number of MB, at least 128");
      if (body.memory > spec.runtime.memory) throw new HangarError("validation_failed", `memory: must not exceed the job's memory (${spec.runtime.memory} MB)`);
      memory = body.memory;
    }
    if (body.allowQueue !== undefined && typeof body.allowQueue !== "boolean") throw new HangarError("validation_failed", "allowQueue: true or false");
    let id = randomId(16);
    if (body.executionId !== undefined && body.executionId !== null && body.executionId !== "") {
      if (typeof body.executionId !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(body.executionId)) throw new HangarError("validation_failed", "executionId: up to 64 letters, digits, '-' or '_'");
      id = body.executionId;
    }
    if (!spec.enabled) throw new HangarError("conflict", `job '${name}' is disabled (spec.enabled is false)`);
    if (!job.activeRevision) throw new HangarError("conflict", `job '${name}' has no image yet`);
    if (await this.store.jobs.getExecution(id)) throw new HangarError("already_exists", `execution '${id}' already exists`);
    if (body.allowQueue === false && !(await this.hasCapacity())) throw new HangarError("too_many_requests", "Maximum parallel executions limit reached: the node runs as many tasks as it may; retry later or allow queueing");
    const token = randomBytes(24).toString("base64url");
    const key = await this.opts.credentials.issue(ws.id, `job ${name} execution ${id}`);
    const now = new Date().toISOString();
    const rec: JobExecutionRecord = {
      id,
      workspaceId: ws.id,
      jobId: job.id,
      jobName: job.name,
      revisionId: job.activeRevision,
      status: "queued",
      parallelism: spec.runtime.maxConcurrentTasks,
      maxRetries: spec.runtime.maxRetries,
      timeoutS: spec.runtime.timeout,
      memory,
      env: env ? Object.fromEntries(Object.entries(env).map(([k, v]) => [k, this.opts.secrets.seal(v)])) : null,
      tasks,
      dataTokenHash: sha256(token),
      secrets: this.opts.secrets.seal(JSON.stringify({ token, apiKey: key.key })),
      apiKeyId: key.id,
      origin,
      createdAt: now,
      updatedAt: now,
      startedAt: null,
      completedAt: null,
    };
    const taskRecs: JobTaskRecord[] = tasks.map((_, i) => ({
      id: `${id}-${i}`,
      executionId: id,
      index: i,
      status: "pending",
      attempts: 0,
      nextRunAt: now,
      leaseOwner: null,
      leaseExpiresAt: null,
      node: null,
      sandboxId: null,
      exitCode: null,
      reason: null,
      conditions: [],
      createdAt: now,
      updatedAt: now,
      startedAt: null,
      completedAt: null,
    }));
    try {
      await this.store.jobs.insertExecution(rec, taskRecs);
    } catch (e) {
      await this.opts.credentials.revoke(key.id).catch(() => undefined);
      if (e instanceof StoreConflictError) throw new HangarError("already_exists", `execution '${id}' already exists`);
      throw e;
    }
    this.wake();
    return { executionId: id, id, jobId: job.name, workspaceId: ws.name, tasks };
  }

  /** True when the node can start a task now: fewer tasks running and waiting than its cap. */
  private async hasCapacity(): Promise<boolean> {
    let demand = 0;
    for (const e of await this.store.jobs.listExecutionsByStatus(["queued", "running"])) {
      const c = await this.store.jobs.counts(e.id);
      demand += Math.min(e.parallelism, c.pending + c.running);
    }
    return demand < this.opts.nodeCap;
  }

  async execution(ws: WorkspaceRecord, name: string, id: string): Promise<JobExecutionRecord> {
    const job = await this.get(ws, name);
    const e = await this.store.jobs.getExecution(id);
    if (!e || e.jobId !== job.id) throw new HangarError("not_found", `execution '${id}' of job '${name}' not found`);
    return e;
  }

  async listExecutions(ws: WorkspaceRecord, name: string, query: ListQuery): Promise<Page<JobExecutionRecord>> {
    const job = await this.get(ws, name);
    return this.store.jobs.listExecutions(job.id, query);
  }

  async tasksOf(e: JobExecutionRecord): Promise<JobTaskRecord[]> {
    return this.store.jobs.listTasks(e.id);
  }

  async executionView(e: JobExecutionRecord, ws: WorkspaceRecord, withTasks = true): Promise<Record<string, unknown>> {
    const counts = await this.store.jobs.counts(e.id);
    const tasks = withTasks ? (await this.store.jobs.listTasks(e.id)).map((t) => this.taskView(t, e)) : [];
    return {
      metadata: { id: e.id, job: e.jobName, workspace: ws.name, cluster: this.opts.tasks.nodeName, createdAt: e.createdAt, updatedAt: e.updatedAt, ...(e.startedAt ? { startedAt: e.startedAt } : {}), ...(e.completedAt ? { completedAt: e.completedAt } : {}) },
      spec: {
        parallelism: e.parallelism,
        timeout: e.timeoutS,
        ...(e.env ? { envOverride: Object.fromEntries(Object.keys(e.env).map((k) => [k, "***"])) } : {}),
        ...(e.memory ? { memoryOverride: e.memory } : {}),
        tasks,
      },
      status: e.status,
      stats: statsOf(counts),
      tasks,
    };
  }

  taskView(t: JobTaskRecord, e: JobExecutionRecord): Record<string, unknown> {
    return {
      metadata: { name: `${e.id}-${t.index}`, createdAt: t.createdAt, scheduledAt: t.nextRunAt, updatedAt: t.updatedAt, ...(t.startedAt ? { startedAt: t.startedAt } : {}), ...(t.completedAt ? { completedAt: t.completedAt } : {}) },
      spec: { maxRetries: e.maxRetries, timeout: `${e.timeoutS}s` },
      status: t.status,
      conditions: t.conditions,
      index: t.index,
      attempts: t.attempts,
      ...(t.exitCode !== null ? { exitCode: t.exitCode } : {}),
    };
  }

  /** Cancels an execution: pending tasks never start, running ones get SIGTERM then SIGKILL. */
  async cancel(ws: WorkspaceRecord, name: string, id: string): Promise<JobExecutionRecord> {
    const e = await this.execution(ws, name, id);
    return this.cancelRecord(e);
  }

  private async cancelRecord(e: JobExecutionRecord): Promise<JobExecutionRecord> {
    if (TERMINAL.has(e.status)) return e;
    const now = new Date().toISOString();
    const rec = (await this.store.jobs.updateExecution(e.id, { status: "cancelling", updatedAt: now }, ["queued", "running", "cancelling"])) ?? e;
    await this.store.jobs.cancelPending(e.id, now);
    this.dropIdle(e.id);
    for (const t of await this.store.jobs.listTasks(e.id)) if (t.status === "running" && t.sandboxId && this.opts.tasks.has(t.sandboxId)) await this.opts.tasks.stop(t.sandboxId).catch(() => undefined);
    return (await this.settle(e.id)) ?? rec;
  }

  /** The task inputs for the data URL; null once the execution ended (the URL dies with it). */
  async dataFor(token: string): Promise<{ tasks: Array<Record<string, unknown>> } | null> {
    const e = await this.store.jobs.getExecutionByToken(sha256(token));
    if (!e || TERMINAL.has(e.status)) return null;
    return { tasks: e.tasks };
  }

  /** Kept output of an execution's tasks (every run), optionally of one task. */
  async logs(ws: WorkspaceRecord, name: string, id: string, task?: number): Promise<Array<{ task: number; attempt: number; time: string; text: string }>> {
    const e = await this.execution(ws, name, id);
    const out: Array<{ task: number; attempt: number; time: string; text: string }> = [];
    for (const t of await this.store.jobs.listTasks(e.id)) {
      if (task !== undefined && t.index !== task) continue;
      for (const l of await this.store.jobs.taskLogs(t.id)) out.push({ task: t.index, ...l });
    }
    return out;
  }

  /** Task logs as observability lines (one per output line, stamped with the run's end; `[task N run R]` first). */
  async logLines(workspaceId: string, name: string, executionId: string, task?: number): Promise<Array<{ time: string; severity: number; message: string }>> {
    const ws = await this.store.workspaces.getById(workspaceId);
    if (!ws) return [];
    const out: Array<{ time: string; severity: number; message: string }> = [];
    for (const l of await this.logs(ws, name, executionId, task)) {
      for (const line of l.text.replace(/\n$/, "").split("\n")) out.push({ time: l.time, severity: 5, message: `[task ${l.task} run ${l.attempt}] ${line}` });
    }
    return out;
  }

  // ---- the worker: claims due task runs, runs each as a sandbox, records how it ended

  /** Node specs of the task sandboxes this node runs, for adoption after a restart. */
  async nodeSpecs(): Promise<NodeSandboxSpec[]> {
    const out: NodeSandboxSpec[] = [];
    for (const t of await this.store.jobs.listRunningTasks(this.opts.tasks.nodeName)) {
      const e = t.sandboxId ? await this.store.jobs.getExecution(t.executionId) : null;
      const spec = e ? await this.taskSpec(e, t) : null;
      if (spec) out.push(spec);
    }
    return out;
  }

  /** Starts the worker; `sole`: this process holds the node alone (data dir lock), so it takes over every running task now. */
  async start(sole = true): Promise<void> {
    this.started = true;
    for (const t of await this.queue.takeOver(this.opts.tasks.nodeName, this.owner, this.opts.leaseMs, sole)) this.supervise(t);
    // executions whose tasks all ended while no server ran
    for (const e of await this.store.jobs.listExecutionsByStatus(["queued", "running", "cancelling"])) await this.settle(e.id);
    this.timer = setInterval(() => this.wake(), this.opts.pollMs);
    this.renewTimer = setInterval(() => void this.queue.renew(this.owner, this.opts.leaseMs).catch((e) => this.log.warn({ err: e }, "renewing task leases failed")), this.opts.leaseMs / 3);
    this.timer.unref?.();
    this.renewTimer.unref?.();
    this.wake();
  }

  setScheduler(s: { stop(): void }): void {
    this.scheduler = s;
  }

  /** Stops claiming; running task sandboxes keep running and are adopted by the next start. */
  async close(): Promise<void> {
    this.closed = true;
    this.scheduler?.stop();
    if (this.timer) clearInterval(this.timer);
    if (this.renewTimer) clearInterval(this.renewTimer);
  }

  /** Looks for due tasks now. */
  wake(): void {
    if (this.closed || !this.started) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    void this.tick()
      .catch((e) => this.log.error({ err: e }, "claiming job tasks failed"))
      .finally(() => {
        this.ticking = false;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  private async tick(): Promise<void> {
    const claimed = await this.queue.claim(this.owner, this.opts.tasks.nodeName, this.opts.nodeCap, this.opts.leaseMs, () => `job${randomId(12)}`);
    for (const t of claimed) this.supervise(t);
  }

  private supervise(t: JobTaskRecord): void {
    if (this.active.has(t.id)) return;
    const p = this.runTask(t)
      .catch((e) => this.log.error({ err: e, task: t.id }, "supervising a job task failed"))
      .finally(() => {
        this.active.delete(t.id);
        this.wake();
      });
    this.active.set(t.id, p);
  }

  /** The sandbox of one task run: the revision's image, memory (or the override), envs and Blaxel's task variables. */
  private async taskSpec(e: JobExecutionRecord, t: JobTaskRecord): Promise<NodeSandboxSpec | null> {
    const rev = await this.store.workloads.getRevision(e.revisionId);
    const ws = await this.store.workspaces.getById(e.workspaceId);
    if (!rev || !ws || !t.sandboxId) return null;
    const envs = Object.fromEntries(((rev.runtime.envs ?? []) as Array<{ name: string; value: string; secret?: boolean }>).map((v) => [v.name, v.secret && v.value ? this.opts.secrets.open(v.value) : v.value]));
    const overrides = Object.fromEntries(Object.entries(e.env ?? {}).map(([k, v]) => [k, this.opts.secrets.open(v)]));
    const { apiKey } = JSON.parse(this.opts.secrets.open(e.secrets)) as { token: string; apiKey: string };
    const taskKey = overrides.BL_TASK_KEY ?? envs.BL_TASK_KEY ?? "TASK_INDEX";
    return {
      id: t.sandboxId,
      name: `${e.jobName}-${t.index}`,
      workspace: ws.name,
      image: rev.image,
      memoryMb: e.memory ?? Number(rev.runtime.memory),
      envs: {
        ...envs,
        ...overrides,
        BL_WORKSPACE: ws.name,
        BL_API_KEY: apiKey,
        BL_NAME: e.jobName,
        BL_TYPE: "job",
        BL_EXECUTION_ID: e.id,
        BL_TASK_KEY: taskKey,
      },
      ports: [],
    };
  }

  /** What differs per task run (the sandbox may run several tasks of its execution in turn). */
  private taskEnv(e: JobExecutionRecord, t: JobTaskRecord, sandboxId: string, taskKey: string): Record<string, string> {
    return { ...this.taskUrls(e, sandboxId), [taskKey]: String(t.index), BL_TASK_ID: `${e.id}-${t.index}`, BL_TASK_ATTEMPT: String(t.attempts) };
  }

  private takeIdle(executionId: string): string | null {
    const list = this.idle.get(executionId);
    const s = list?.pop();
    if (!list?.length) this.idle.delete(executionId);
    if (!s) return null;
    clearTimeout(s.timer);
    return this.opts.tasks.has(s.id) ? s.id : null;
  }

  private keepIdle(executionId: string, id: string): void {
    const timer = setTimeout(() => {
      const list = this.idle.get(executionId);
      const i = list?.findIndex((x) => x.id === id) ?? -1;
      if (i < 0) return;
      list!.splice(i, 1);
      if (!list!.length) this.idle.delete(executionId);
      void this.opts.tasks.destroy(id).catch(() => undefined);
    }, 2_000);
    timer.unref?.();
    const list = this.idle.get(executionId) ?? [];
    list.push({ id, timer });
    this.idle.set(executionId, list);
  }

  private dropIdle(executionId: string): void {
    for (const s of this.idle.get(executionId) ?? []) {
      clearTimeout(s.timer);
      void this.opts.tasks.destroy(s.id).catch(() => undefined);
    }
    this.idle.delete(executionId);
  }

  /** The URLs a task reaches Hangar at, through its sandbox's gateway. */
  private taskUrls(e: JobExecutionRecord, sandboxId: string): Record<string, string> {
    const base = this.opts.tasks.hostUrl(sandboxId);
    const { token } = JSON.parse(this.opts.secrets.open(e.secrets)) as { token: string };
    return { BL_API_URL: `${base}/v0`, BL_RUN_URL: `${base}/run`, BL_EXECUTION_DATA_URL: `${base}/jobs-data/${token}`, BL_DISABLE_H2: "true" };
  }

  private async runTask(t: JobTaskRecord): Promise<void> {
    const e = await this.store.jobs.getExecution(t.executionId);
    let sandbox = t.sandboxId!;
    if (!e || e.status === "cancelling" || e.status === "cancelled") {
      await this.opts.tasks.destroy(sandbox).catch(() => undefined);
      await this.finishRun(t, e, { status: "stopped", exitCode: -1, logs: "" });
      return;
    }
    let exit: TaskExit;
    const t0 = Date.now();
    let t1 = t0;
    let started = false;
    try {
      const spec = await this.taskSpec(e, t);
      if (!spec) throw new HangarError("not_found", "the job's revision is gone");
      if (!this.opts.tasks.has(sandbox)) {
        const reuse = this.takeIdle(e.id);
        // the store names the sandbox the run uses before it runs there (adoption finds it)
        if (reuse && (await this.store.jobs.updateTask(t.id, { sandboxId: reuse, updatedAt: new Date().toISOString() }, ["running"], this.owner))) sandbox = reuse;
        else {
          if (reuse) this.keepIdle(e.id, reuse);
          await this.opts.tasks.start(spec);
        }
      }
      t1 = Date.now();
      started = true;
      const rev = await this.store.workloads.getRevision(e.revisionId);
      const command = [...((rev?.runtime.command as string[] | null) ?? []), ...((rev?.runtime.args as string[] | null) ?? [])];
      // a cancel (or the job's deletion) made by any server reaches the run within 2 s
      const running = sandbox;
      const watch = setInterval(() => {
        void this.store.jobs
          .getExecution(e.id)
          .then((cur) => (!cur || cur.status === "cancelling" || cur.status === "cancelled" ? this.opts.tasks.stop(running) : undefined))
          .catch(() => undefined);
      }, 2_000);
      try {
        exit = await this.opts.tasks.run(sandbox, { name: `task-${t.index}-${t.attempts}`, command: command.length ? command : null, env: this.taskEnv(e, t, sandbox, spec.envs.BL_TASK_KEY!), timeoutS: e.timeoutS });
      } finally {
        clearInterval(watch);
      }
    } catch (err) {
      exit = { status: "failed", exitCode: -1, logs: `[the task could not run: ${err instanceof Error ? err.message : String(err)}]\n`, infra: !started };
    }
    if (this.closed) return; // the server is stopping: the next one adopts the sandbox and sees the exit
    await this.store.jobs.putTaskLog(t.id, t.attempts, new Date().toISOString(), exit.logs.length > KEPT_LOG_BYTES ? exit.logs.slice(-KEPT_LOG_BYTES) : exit.logs);
    const t2 = Date.now();
    // after a success the sandbox waits for the execution's next task (settling the execution drops it), else it goes
    const reuse = exit.status === "completed" && exit.exitCode === 0;
    if (reuse) this.keepIdle(e.id, sandbox);
    await this.finishRun(t, e, exit);
    this.log.debug({ task: t.id, startMs: t1 - t0, runMs: t2 - t1, recordMs: Date.now() - t2 }, "task run ended");
    if (!reuse) void this.opts.tasks.destroy(sandbox).catch((err) => this.log.warn({ err, sandbox }, "removing a task sandbox failed"));
  }

  /** Records how a run ended: success, a retry after backoff, or the task's final failure. */
  private async finishRun(t: JobTaskRecord, e: JobExecutionRecord | null, exit: TaskExit): Promise<JobExecutionRecord | null> {
    const now = new Date();
    const cur = e ? await this.store.jobs.getExecution(e.id) : null;
    const cancelled = !cur || cur.status === "cancelling" || cur.status === "cancelled" || exit.status === "stopped";
    const timedOut = !cancelled && exit.status === "killed";
    const ok = !cancelled && exit.status === "completed" && exit.exitCode === 0;
    const reason = cancelled ? "cancelled" : ok ? "succeeded" : timedOut ? "timeout" : "failed";
    const condition = {
      type: reason === "succeeded" ? "Complete" : reason === "cancelled" ? "Cancelled" : reason === "timeout" ? "DeadlineExceeded" : "Failed",
      state: reason,
      reason: reason === "timeout" ? "DeadlineExceeded" : reason === "failed" ? "NonZeroExitCode" : reason,
      message: reason === "timeout" ? `attempt ${t.attempts}: killed after the timeout of ${e?.timeoutS}s` : `attempt ${t.attempts}: exit code ${exit.exitCode}`,
      executionReason: reason,
      severity: ok ? "info" : "error",
      lastTransitionTime: now.toISOString(),
    };
    const conditions = [...t.conditions, condition].slice(-20);
    // a sandbox that could not start is retried (3 times at most) without counting as a run of the task
    const infra = !cancelled && exit.infra === true && t.conditions.filter((c) => c.reason === "SandboxStartFailed").length < 3;
    if (infra) Object.assign(condition, { type: "Failed", reason: "SandboxStartFailed", message: exit.logs.trim() });
    const retry = infra || (!ok && !cancelled && !!e && t.attempts <= e.maxRetries);
    const base = { exitCode: exit.exitCode, reason, conditions, updatedAt: now.toISOString(), leaseOwner: null, leaseExpiresAt: null };
    const patch = retry
      ? { ...base, status: "pending" as const, nextRunAt: new Date(now.getTime() + (infra ? 500 : Math.min(60_000, this.opts.retryBaseMs * 2 ** (t.attempts - 1)))).toISOString(), sandboxId: null, ...(infra ? { attempts: t.attempts - 1 } : {}) }
      : { ...base, status: (cancelled ? "cancelled" : ok ? "succeeded" : "failed") as JobTaskRecord["status"], completedAt: now.toISOString() };
    await this.store.jobs.updateTask(t.id, patch, ["running"]);
    return e ? this.settle(e.id) : null;
  }

  /** Ends an execution whose tasks all ended: its status, its credential revoked, its data URL gone. */
  private async settle(id: string): Promise<JobExecutionRecord | null> {
    const e = await this.store.jobs.getExecution(id);
    if (!e || TERMINAL.has(e.status) || (await this.store.jobs.hasOpenTasks(id))) return e;
    const c = await this.store.jobs.counts(id);
    const status = e.status === "cancelling" || c.cancelled > 0 ? "cancelled" : c.failed === 0 ? "succeeded" : c.failed === c.timedOut ? "timeout" : "failed";
    const now = new Date().toISOString();
    const done = await this.store.jobs.updateExecution(id, { status, completedAt: now, updatedAt: now }, ["queued", "running", "cancelling"]);
    this.dropIdle(id);
    if (done && e.apiKeyId) await this.opts.credentials.revoke(e.apiKeyId).catch((err) => this.log.warn({ err }, "revoking a task credential failed"));
    return done ?? (await this.store.jobs.getExecution(id));
  }

  // ---- secrets

  private seal(spec: JobSpecDoc, prev: JobSpecDoc | null): JobSpecDoc {
    const before = new Map((prev?.runtime.envs ?? []).map((e) => [e.name, e]));
    const envs = spec.runtime.envs?.map((e) => {
      if (!e.secret) return e;
      const old = before.get(e.name);
      if (e.value === "" && old?.secret) return { ...e, value: old.value };
      return { ...e, value: e.value === "" ? "" : this.opts.secrets.seal(e.value) };
    });
    return { ...spec, runtime: { ...spec.runtime, ...(envs ? { envs } : {}) } as JobRuntime };
  }

  reveal(spec: JobSpecDoc): JobSpecDoc {
    const envs = spec.runtime.envs?.map((e) => (e.secret && e.value ? { ...e, value: this.opts.secrets.open(e.value) } : e));
    return { ...spec, runtime: { ...spec.runtime, ...(envs ? { envs } : {}) } };
  }

  /** Images revisions still name (kept by the builds plane's garbage collection). */
  async imagesInUse(): Promise<string[]> {
    const out: string[] = [];
    for (const w of await this.store.workloads.listAll()) if (w.kind === JOBS_KIND) for (const r of await this.store.workloads.listRevisions(w.id)) out.push(r.image);
    return out;
  }
}

export function statsOf(c: JobTaskCounts): Record<string, number> {
  return { total: c.total, success: c.succeeded, failure: c.failed, running: c.running, cancelled: c.cancelled, retried: c.retried };
}
