import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("async_calls")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workload_id", "text", (c) => c.notNull().references("workloads.id").onDelete("cascade"))
    /** queued | running | delivering | failed */
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("method", "text", (c) => c.notNull())
    .addColumn("path", "text", (c) => c.notNull())
    .addColumn("headers", "text", (c) => c.notNull())
    .addColumn("body", "blob", (c) => c.notNull())
    .addColumn("result_status", "integer")
    .addColumn("result_body", "text")
    .addColumn("error", "text")
    .addColumn("lease_owner", "text")
    .addColumn("lease_until", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("async_calls_status").on("async_calls").columns(["status", "created_at"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("async_calls").execute();
}
