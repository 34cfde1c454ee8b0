import type { Kysely } from "kysely";

// Batch jobs: the job itself is a row of `workloads` (kind "jobs") with its revisions; here are its
// executions, their tasks (claimed with leases by workers), the tasks' kept output and the cron
// firing slots (one row per trigger and minute/second fired, so a slot starts at most once).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("job_executions")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workspace_id", "text", (c) => c.notNull())
    .addColumn("job_id", "text", (c) => c.notNull())
    .addColumn("job_name", "text", (c) => c.notNull())
    .addColumn("revision_id", "text", (c) => c.notNull())
    /** queued | running | cancelling | cancelled | failed | succeeded | timeout */
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("parallelism", "integer", (c) => c.notNull())
    .addColumn("max_retries", "integer", (c) => c.notNull())
    .addColumn("timeout_s", "integer", (c) => c.notNull())
    .addColumn("memory", "integer")
    /** Env overrides (JSON), sealed. */
    .addColumn("env", "text")
    /** The task inputs (JSON array), served at the data URL. */
    .addColumn("tasks", "text", (c) => c.notNull())
    /** sha256 of the data URL token. */
    .addColumn("data_token_hash", "text", (c) => c.notNull())
    /** The data URL token and the workspace credential of the tasks, sealed. */
    .addColumn("secrets", "text", (c) => c.notNull())
    .addColumn("api_key_id", "text")
    /** What started it: api | cron:<trigger id> */
    .addColumn("origin", "text", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addColumn("started_at", "text")
    .addColumn("completed_at", "text")
    .execute();
  await db.schema.createIndex("job_executions_job").on("job_executions").columns(["job_id", "created_at"]).execute();
  await db.schema.createIndex("job_executions_status").on("job_executions").columns(["status"]).execute();
  await db.schema.createIndex("job_executions_token").on("job_executions").columns(["data_token_hash"]).unique().execute();

  await db.schema
    .createTable("job_tasks")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("execution_id", "text", (c) => c.notNull().references("job_executions.id").onDelete("cascade"))
    .addColumn("idx", "integer", (c) => c.notNull())
    /** pending | running | succeeded | failed | cancelled */
    .addColumn("status", "text", (c) => c.notNull())
    /** Runs started (1 + retries). */
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("next_run_at", "text", (c) => c.notNull())
    .addColumn("lease_owner", "text")
    .addColumn("lease_expires_at", "text")
    .addColumn("node", "text")
    /** The node sandbox of the current run. */
    .addColumn("sandbox_id", "text")
    .addColumn("exit_code", "integer")
    /** succeeded | failed | timeout | cancelled: why the last run ended. */
    .addColumn("reason", "text")
    .addColumn("conditions", "text", (c) => c.notNull().defaultTo("[]"))
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addColumn("started_at", "text")
    .addColumn("completed_at", "text")
    .execute();
  await db.schema.createIndex("job_tasks_execution").on("job_tasks").columns(["execution_id", "idx"]).unique().execute();
  await db.schema.createIndex("job_tasks_status").on("job_tasks").columns(["status", "node"]).execute();
  await db.schema.createIndex("job_tasks_execution_status").on("job_tasks").columns(["execution_id", "status", "next_run_at"]).execute();

  await db.schema
    .createTable("job_task_logs")
    .addColumn("task_id", "text", (c) => c.notNull().references("job_tasks.id").onDelete("cascade"))
    .addColumn("attempt", "integer", (c) => c.notNull())
    .addColumn("time", "text", (c) => c.notNull())
    .addColumn("text", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("job_task_logs_pk", ["task_id", "attempt"])
    .execute();

  await db.schema
    .createTable("job_schedule_slots")
    .addColumn("job_id", "text", (c) => c.notNull())
    .addColumn("trigger_id", "text", (c) => c.notNull())
    .addColumn("slot", "text", (c) => c.notNull())
    .addColumn("execution_id", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("job_schedule_slots_pk", ["job_id", "trigger_id", "slot"])
    .execute();

  // Sandbox schedules (SDK sandbox.schedules): a process started in a sandbox by cron, at a time, or after a delay.
  await db.schema
    .createTable("sandbox_schedules")
    .addColumn("workspace_id", "text", (c) => c.notNull())
    .addColumn("sandbox_name", "text", (c) => c.notNull())
    .addColumn("id", "text", (c) => c.notNull())
    /** cron | at (sleep is resolved to at on creation) */
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("value", "text", (c) => c.notNull())
    /** The process request (JSON), env values sealed. */
    .addColumn("input", "text", (c) => c.notNull())
    .addColumn("max_executions", "integer", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("sandbox_schedules_pk", ["workspace_id", "sandbox_name", "id"])
    .execute();
  await db.schema
    .createTable("sandbox_schedule_executions")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workspace_id", "text", (c) => c.notNull())
    .addColumn("sandbox_name", "text", (c) => c.notNull())
    .addColumn("schedule_id", "text", (c) => c.notNull())
    .addColumn("executed_at", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("status_code", "integer", (c) => c.notNull())
    .addColumn("process_name", "text", (c) => c.notNull())
    .addColumn("error", "text", (c) => c.notNull())
    .addColumn("timeout", "integer", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("sandbox_schedule_executions_sbx").on("sandbox_schedule_executions").columns(["workspace_id", "sandbox_name", "executed_at"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ["sandbox_schedule_executions", "sandbox_schedules", "job_schedule_slots", "job_task_logs", "job_tasks", "job_executions"]) await db.schema.dropTable(t).execute();
}
