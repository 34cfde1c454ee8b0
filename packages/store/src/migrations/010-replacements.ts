import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("replacements")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workload_id", "text", (c) => c.notNull().references("workloads.id").onDelete("cascade"))
    /** launching | warming | switched | completed | cancelled | rolled_back | failed */
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("strategy", "text", (c) => c.notNull())
    /** {warmupDurationMinutes, keepOldVersionMinutes} */
    .addColumn("config", "text", (c) => c.notNull())
    .addColumn("artifact", "text", (c) => c.notNull())
    .addColumn("candidate_revision", "text")
    .addColumn("previous_revision", "text")
    .addColumn("message", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    /** When the candidate passed readiness (warmup starts). */
    .addColumn("ready_at", "text")
    /** When the candidate took the traffic (the rollback window starts). */
    .addColumn("switched_at", "text")
    .addColumn("finished_at", "text")
    .execute();
  await db.schema.createIndex("replacements_workload").on("replacements").columns(["workload_id", "created_at"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("replacements").execute();
}
