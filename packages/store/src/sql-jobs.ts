// Executions of batch jobs and their tasks, over Kysely. Tasks are claimed with leases by
// conditional updates inside one transaction, so several workers (processes) can share the store.

import type { Kysely, Selectable, Transaction } from "kysely";
import type { Database, JobExecutionTable, JobTaskTable } from "./schema.js";
import { keysetPage, mapConflict, queryFingerprint } from "./sql-util.js";
import type { JobExecutionRecord, JobExecutionStatus, JobRepo, JobTaskCounts, JobTaskRecord, JobTaskStatus, ListQuery, Page, SandboxScheduleExecutionRecord, SandboxScheduleRecord } from "./store.js";
import type { SandboxScheduleTable } from "./schema.js";

function toSchedule(r: Selectable<SandboxScheduleTable>): SandboxScheduleRecord {
  return { workspaceId: r.workspace_id, sandboxName: r.sandbox_name, id: r.id, type: r.type, value: r.value, input: JSON.parse(r.input) as Record<string, unknown>, maxExecutions: r.max_executions, createdAt: r.created_at, updatedAt: r.updated_at };
}

type Db = Kysely<Database> | Transaction<Database>;

function toExecution(r: Selectable<JobExecutionTable>): JobExecutionRecord {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    jobId: r.job_id,
    jobName: r.job_name,
    revisionId: r.revision_id,
    status: r.status as JobExecutionStatus,
    parallelism: r.parallelism,
    maxRetries: r.max_retries,
    timeoutS: r.timeout_s,
    memory: r.memory,
    env: r.env ? (JSON.parse(r.env) as Record<string, string>) : null,
    tasks: JSON.parse(r.tasks) as Array<Record<string, unknown>>,
    dataTokenHash: r.data_token_hash,
    secrets: r.secrets,
    apiKeyId: r.api_key_id,
    origin: r.origin,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    startedAt: r.started_at,
    completedAt: r.completed_at,
  };
}

function toTask(r: Selectable<JobTaskTable>): JobTaskRecord {
  return {
    id: r.id,
    executionId: r.execution_id,
    index: r.idx,
    status: r.status as JobTaskStatus,
    attempts: r.attempts,
    nextRunAt: r.next_run_at,
    leaseOwner: r.lease_owner,
    leaseExpiresAt: r.lease_expires_at,
    node: r.node,
    sandboxId: r.sandbox_id,
    exitCode: r.exit_code,
    reason: r.reason,
    conditions: JSON.parse(r.conditions) as Array<Record<string, unknown>>,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    startedAt: r.started_at,
    completedAt: r.completed_at,
  };
}

const taskColumns = (t: Partial<JobTaskRecord>): Partial<JobTaskTable> => {
  const v: Partial<JobTaskTable> = {};
  if (t.status !== undefined) v.status = t.status;
  if (t.attempts !== undefined) v.attempts = t.attempts;
  if (t.nextRunAt !== undefined) v.next_run_at = t.nextRunAt;
  if (t.leaseOwner !== undefined) v.lease_owner = t.leaseOwner;
  if (t.leaseExpiresAt !== undefined) v.lease_expires_at = t.leaseExpiresAt;
  if (t.node !== undefined) v.node = t.node;
  if (t.sandboxId !== undefined) v.sandbox_id = t.sandboxId;
  if (t.exitCode !== undefined) v.exit_code = t.exitCode;
  if (t.reason !== undefined) v.reason = t.reason;
  if (t.conditions !== undefined) v.conditions = JSON.stringify(t.conditions);
  if (t.updatedAt !== undefined) v.updated_at = t.updatedAt;
  if (t.startedAt !== undefined) v.started_at = t.startedAt;
  if (t.completedAt !== undefined) v.completed_at = t.completedAt;
  return v;
};

const ACTIVE: JobExecutionStatus[] = ["queued", "running"];

export class SqlJobRepo implements JobRepo {
  constructor(private readonly db: Db) {}

  /** Runs fn in a transaction (or in the one this repo already acts in). */
  private tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    return this.db.isTransaction ? fn(this.db) : (this.db as Kysely<Database>).transaction().execute(fn);
  }

  async insertExecution(rec: JobExecutionRecord, tasks: JobTaskRecord[]): Promise<JobExecutionRecord> {
    await this.tx(async (db) => {
      await mapConflict(
        db
          .insertInto("job_executions")
          .values({
            id: rec.id,
            workspace_id: rec.workspaceId,
            job_id: rec.jobId,
            job_name: rec.jobName,
            revision_id: rec.revisionId,
            status: rec.status,
            parallelism: rec.parallelism,
            max_retries: rec.maxRetries,
            timeout_s: rec.timeoutS,
            memory: rec.memory,
            env: rec.env ? JSON.stringify(rec.env) : null,
            tasks: JSON.stringify(rec.tasks),
            data_token_hash: rec.dataTokenHash,
            secrets: rec.secrets,
            api_key_id: rec.apiKeyId,
            origin: rec.origin,
            created_at: rec.createdAt,
            updated_at: rec.updatedAt,
            started_at: rec.startedAt,
            completed_at: rec.completedAt,
          })
          .execute(),
      );
      // SQLite caps bound parameters per statement: insert in chunks
      for (let i = 0; i < tasks.length; i += 50) {
        await db
          .insertInto("job_tasks")
          .values(
            tasks.slice(i, i + 50).map((t) => ({
              id: t.id,
              execution_id: t.executionId,
              idx: t.index,
              status: t.status,
              attempts: t.attempts,
              next_run_at: t.nextRunAt,
              lease_owner: null,
              lease_expires_at: null,
              node: null,
              sandbox_id: null,
              exit_code: null,
              reason: null,
              conditions: JSON.stringify(t.conditions),
              created_at: t.createdAt,
              updated_at: t.updatedAt,
              started_at: null,
              completed_at: null,
            })),
          )
          .execute();
      }
    });
    return rec;
  }

  async getExecution(id: string): Promise<JobExecutionRecord | null> {
    const r = await this.db.selectFrom("job_executions").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toExecution(r) : null;
  }

  async getExecutionByToken(hash: string): Promise<JobExecutionRecord | null> {
    const r = await this.db.selectFrom("job_executions").selectAll().where("data_token_hash", "=", hash).executeTakeFirst();
    return r ? toExecution(r) : null;
  }

  listExecutions(jobId: string, query: ListQuery): Promise<Page<JobExecutionRecord>> {
    let base = this.db.selectFrom("job_executions").where("job_id", "=", jobId);
    if (query.statuses?.length) base = base.where("status", "in", query.statuses);
    const fp = queryFingerprint([jobId, query.sort, query.statuses ?? []]);
    return keysetPage(base, (q) => q, { ...query, sort: query.sort.startsWith("name") ? "createdAt:desc" : query.sort }, fp, toExecution);
  }

  async listExecutionsByStatus(statuses: JobExecutionStatus[]): Promise<JobExecutionRecord[]> {
    const rows = await this.db.selectFrom("job_executions").selectAll().where("status", "in", statuses).orderBy("created_at", "asc").execute();
    return rows.map(toExecution);
  }

  async updateExecution(id: string, patch: Partial<Pick<JobExecutionRecord, "status" | "updatedAt" | "startedAt" | "completedAt" | "apiKeyId">>, fromStatuses?: JobExecutionStatus[]): Promise<JobExecutionRecord | null> {
    const v: Partial<JobExecutionTable> = {};
    if (patch.status !== undefined) v.status = patch.status;
    if (patch.updatedAt !== undefined) v.updated_at = patch.updatedAt;
    if (patch.startedAt !== undefined) v.started_at = patch.startedAt;
    if (patch.completedAt !== undefined) v.completed_at = patch.completedAt;
    if (patch.apiKeyId !== undefined) v.api_key_id = patch.apiKeyId;
    let q = this.db.updateTable("job_executions").set(v).where("id", "=", id);
    if (fromStatuses) q = q.where("status", "in", fromStatuses);
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows) ? this.getExecution(id) : null;
  }

  async deleteExecutionsOfJob(jobId: string): Promise<void> {
    const ids = (await this.db.selectFrom("job_executions").select("id").where("job_id", "=", jobId).execute()).map((r) => r.id);
    for (const id of ids) {
      const tasks = this.db.selectFrom("job_tasks").select("id").where("execution_id", "=", id);
      await this.db.deleteFrom("job_task_logs").where("task_id", "in", tasks).execute();
      await this.db.deleteFrom("job_tasks").where("execution_id", "=", id).execute();
    }
    await this.db.deleteFrom("job_executions").where("job_id", "=", jobId).execute();
    await this.db.deleteFrom("job_schedule_slots").where("job_id", "=", jobId).execute();
  }

  async listTasks(executionId: string): Promise<JobTaskRecord[]> {
    return (await this.db.selectFrom("job_tasks").selectAll().where("execution_id", "=", executionId).orderBy("idx", "asc").execute()).map(toTask);
  }

  async getTask(id: string): Promise<JobTaskRecord | null> {
    const r = await this.db.selectFrom("job_tasks").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toTask(r) : null;
  }

  async counts(executionId: string): Promise<JobTaskCounts> {
    const rows = await this.db
      .selectFrom("job_tasks")
      .select((eb) => ["status", "reason", eb.fn.countAll<number>().as("n")])
      .where("execution_id", "=", executionId)
      .groupBy(["status", "reason"])
      .execute();
    const c: JobTaskCounts = { total: 0, pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, timedOut: 0, retried: 0 };
    for (const r of rows) {
      const n = Number(r.n);
      c.total += n;
      c[r.status as JobTaskStatus] += n;
      if (r.status === "failed" && r.reason === "timeout") c.timedOut += n;
    }
    // tasks that ran more than once, or wait for a retry
    const retried = await this.db
      .selectFrom("job_tasks")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("execution_id", "=", executionId)
      .where((eb) => eb.or([eb("attempts", ">", 1), eb.and([eb("status", "=", "pending"), eb("attempts", ">=", 1)])]))
      .executeTakeFirst();
    c.retried = Number(retried?.n ?? 0);
    return c;
  }

  async hasOpenTasks(executionId: string): Promise<boolean> {
    const r = await this.db.selectFrom("job_tasks").select("id").where("execution_id", "=", executionId).where("status", "in", ["pending", "running"]).limit(1).executeTakeFirst();
    return !!r;
  }

  async listRunningTasks(node: string): Promise<JobTaskRecord[]> {
    return (await this.db.selectFrom("job_tasks").selectAll().where("status", "=", "running").where("node", "=", node).execute()).map(toTask);
  }

  async countRunning(node?: string): Promise<number> {
    let q = this.db.selectFrom("job_tasks").select((eb) => eb.fn.countAll<number>().as("n")).where("status", "=", "running");
    if (node) q = q.where("node", "=", node);
    return Number((await q.executeTakeFirst())?.n ?? 0);
  }

  claimTasks(owner: string, node: string, now: string, leaseUntil: string, nodeCap: number, newSandboxId: () => string): Promise<JobTaskRecord[]> {
    return this.tx(async (db) => {
      let free = nodeCap - Number((await db.selectFrom("job_tasks").select((eb) => eb.fn.countAll<number>().as("n")).where("status", "=", "running").where("node", "=", node).executeTakeFirst())?.n ?? 0);
      if (free <= 0) return [];
      const execs = await db.selectFrom("job_executions").select(["id", "parallelism", "status"]).where("status", "in", ACTIVE).orderBy("created_at", "asc").execute();
      const out: JobTaskRecord[] = [];
      for (const e of execs) {
        if (free <= 0) break;
        const running = Number((await db.selectFrom("job_tasks").select((eb) => eb.fn.countAll<number>().as("n")).where("execution_id", "=", e.id).where("status", "=", "running").executeTakeFirst())?.n ?? 0);
        const room = Math.min(free, e.parallelism - running);
        if (room <= 0) continue;
        const due = await db.selectFrom("job_tasks").select("id").where("execution_id", "=", e.id).where("status", "=", "pending").where("next_run_at", "<=", now).orderBy("next_run_at", "asc").orderBy("idx", "asc").limit(room).execute();
        for (const t of due) {
          const r = await db
            .updateTable("job_tasks")
            .set((eb) => ({ status: "running", lease_owner: owner, lease_expires_at: leaseUntil, node, sandbox_id: newSandboxId(), attempts: eb("attempts", "+", 1), exit_code: null, reason: null, started_at: now, completed_at: null, updated_at: now }))
            .where("id", "=", t.id)
            .where("status", "=", "pending")
            .executeTakeFirst();
          if (Number(r.numUpdatedRows) !== 1) continue;
          const row = await db.selectFrom("job_tasks").selectAll().where("id", "=", t.id).executeTakeFirstOrThrow();
          out.push(toTask(row));
          free--;
        }
        if (due.length && e.status === "queued") await db.updateTable("job_executions").set({ status: "running", started_at: now, updated_at: now }).where("id", "=", e.id).where("status", "=", "queued").execute();
      }
      return out;
    });
  }

  async renewLeases(owner: string, leaseUntil: string): Promise<void> {
    await this.db.updateTable("job_tasks").set({ lease_expires_at: leaseUntil }).where("lease_owner", "=", owner).where("status", "=", "running").execute();
  }

  async takeOver(node: string, owner: string, now: string, leaseUntil: string, force = false): Promise<JobTaskRecord[]> {
    let q = this.db.updateTable("job_tasks").set({ lease_owner: owner, lease_expires_at: leaseUntil }).where("status", "=", "running").where("node", "=", node);
    if (!force) q = q.where((eb) => eb.or([eb("lease_expires_at", "<", now), eb("lease_owner", "=", owner)]));
    await q.execute();
    return (await this.db.selectFrom("job_tasks").selectAll().where("status", "=", "running").where("node", "=", node).where("lease_owner", "=", owner).execute()).map(toTask);
  }

  async updateTask(id: string, patch: Partial<Omit<JobTaskRecord, "id" | "executionId" | "index" | "createdAt">>, fromStatuses?: JobTaskStatus[], owner?: string): Promise<JobTaskRecord | null> {
    let q = this.db.updateTable("job_tasks").set(taskColumns(patch)).where("id", "=", id);
    if (fromStatuses) q = q.where("status", "in", fromStatuses);
    if (owner) q = q.where("lease_owner", "=", owner);
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows) ? this.getTask(id) : null;
  }

  async cancelPending(executionId: string, now: string): Promise<number> {
    const r = await this.db.updateTable("job_tasks").set({ status: "cancelled", reason: "cancelled", completed_at: now, updated_at: now }).where("execution_id", "=", executionId).where("status", "=", "pending").executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  async putTaskLog(taskId: string, attempt: number, time: string, text: string): Promise<void> {
    await this.db
      .insertInto("job_task_logs")
      .values({ task_id: taskId, attempt, time, text })
      .onConflict((oc) => oc.columns(["task_id", "attempt"]).doUpdateSet({ time, text }))
      .execute();
  }

  async taskLogs(taskId: string): Promise<Array<{ attempt: number; time: string; text: string }>> {
    return this.db.selectFrom("job_task_logs").select(["attempt", "time", "text"]).where("task_id", "=", taskId).orderBy("attempt", "asc").execute();
  }

  async claimSlot(jobId: string, triggerId: string, slot: string, now: string): Promise<boolean> {
    const r = await this.db
      .insertInto("job_schedule_slots")
      .values({ job_id: jobId, trigger_id: triggerId, slot, execution_id: null, created_at: now })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  async setSlotExecution(jobId: string, triggerId: string, slot: string, executionId: string): Promise<void> {
    await this.db.updateTable("job_schedule_slots").set({ execution_id: executionId }).where("job_id", "=", jobId).where("trigger_id", "=", triggerId).where("slot", "=", slot).execute();
  }

  async lastSlot(jobId: string, triggerId: string): Promise<string | null> {
    const r = await this.db.selectFrom("job_schedule_slots").select("slot").where("job_id", "=", jobId).where("trigger_id", "=", triggerId).orderBy("slot", "desc").limit(1).executeTakeFirst();
    return r?.slot ?? null;
  }

  async insertSchedule(rec: SandboxScheduleRecord): Promise<SandboxScheduleRecord> {
    await mapConflict(
      this.db
        .insertInto("sandbox_schedules")
        .values({ workspace_id: rec.workspaceId, sandbox_name: rec.sandboxName, id: rec.id, type: rec.type, value: rec.value, input: JSON.stringify(rec.input), max_executions: rec.maxExecutions, created_at: rec.createdAt, updated_at: rec.updatedAt })
        .execute(),
    );
    return rec;
  }

  async getSchedule(workspaceId: string, sandboxName: string, id: string): Promise<SandboxScheduleRecord | null> {
    const r = await this.db.selectFrom("sandbox_schedules").selectAll().where("workspace_id", "=", workspaceId).where("sandbox_name", "=", sandboxName).where("id", "=", id).executeTakeFirst();
    return r ? toSchedule(r) : null;
  }

  async listSchedules(workspaceId?: string, sandboxName?: string): Promise<SandboxScheduleRecord[]> {
    let q = this.db.selectFrom("sandbox_schedules").selectAll();
    if (workspaceId) q = q.where("workspace_id", "=", workspaceId);
    if (sandboxName) q = q.where("sandbox_name", "=", sandboxName);
    return (await q.orderBy("created_at", "asc").execute()).map(toSchedule);
  }

  async updateSchedule(rec: SandboxScheduleRecord): Promise<void> {
    await this.db
      .updateTable("sandbox_schedules")
      .set({ type: rec.type, value: rec.value, input: JSON.stringify(rec.input), max_executions: rec.maxExecutions, updated_at: rec.updatedAt })
      .where("workspace_id", "=", rec.workspaceId)
      .where("sandbox_name", "=", rec.sandboxName)
      .where("id", "=", rec.id)
      .execute();
  }

  async deleteSchedule(workspaceId: string, sandboxName: string, id: string): Promise<boolean> {
    const r = await this.db.deleteFrom("sandbox_schedules").where("workspace_id", "=", workspaceId).where("sandbox_name", "=", sandboxName).where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async insertScheduleExecution(rec: SandboxScheduleExecutionRecord, keep: number): Promise<void> {
    await this.db
      .insertInto("sandbox_schedule_executions")
      .values({ id: rec.id, workspace_id: rec.workspaceId, sandbox_name: rec.sandboxName, schedule_id: rec.scheduleId, executed_at: rec.executedAt, status: rec.status, status_code: rec.statusCode, process_name: rec.processName, error: rec.error, timeout: rec.timeout })
      .execute();
    const old = await this.db
      .selectFrom("sandbox_schedule_executions")
      .select("id")
      .where("workspace_id", "=", rec.workspaceId)
      .where("sandbox_name", "=", rec.sandboxName)
      .where("schedule_id", "=", rec.scheduleId)
      .orderBy("executed_at", "desc")
      .offset(keep)
      .limit(1000)
      .execute();
    if (old.length) await this.db.deleteFrom("sandbox_schedule_executions").where("id", "in", old.map((o) => o.id)).execute();
  }

  async listScheduleExecutions(workspaceId: string, sandboxName?: string, limit = 200): Promise<SandboxScheduleExecutionRecord[]> {
    let q = this.db.selectFrom("sandbox_schedule_executions").selectAll().where("workspace_id", "=", workspaceId);
    if (sandboxName) q = q.where("sandbox_name", "=", sandboxName);
    const rows = await q.orderBy("executed_at", "desc").limit(limit).execute();
    return rows.map((r) => ({ id: r.id, workspaceId: r.workspace_id, sandboxName: r.sandbox_name, scheduleId: r.schedule_id, executedAt: r.executed_at, status: r.status as "succeeded" | "failed", statusCode: r.status_code, processName: r.process_name, error: r.error, timeout: r.timeout }));
  }
}
