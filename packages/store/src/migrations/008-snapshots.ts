import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("snapshots")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workspace_id", "text", (c) => c.notNull().references("workspaces.id"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("display_name", "text", (c) => c.notNull())
    .addColumn("labels", "text", (c) => c.notNull().defaultTo("{}"))
    /** snapshot (listed, forkable) | archive (an archived sandbox's files, one per sandbox). */
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("source_name", "text", (c) => c.notNull())
    /** Id of the sandbox captured (it may be gone since). */
    .addColumn("source_id", "text", (c) => c.notNull())
    /** pending | ready | failed */
    .addColumn("status", "text", (c) => c.notNull())
    /** The source's spec at capture (JSON, secrets sealed): what a fork runs with. */
    .addColumn("spec", "text", (c) => c.notNull())
    /** 1 when the capture holds processes and memory besides the files. */
    .addColumn("processes", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("size_bytes", "integer")
    .addColumn("error", "text")
    /** Which server takes it, until when (a capture left pending by a dead server is failed). */
    .addColumn("lease_owner", "text")
    .addColumn("lease_expires_at", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addUniqueConstraint("snapshots_ws_name", ["workspace_id", "name"])
    .execute();
  await db.schema.createIndex("snapshots_source").on("snapshots").columns(["workspace_id", "source_name", "created_at"]).execute();
  await db.schema.createIndex("snapshots_status").on("snapshots").columns(["status"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("snapshots").execute();
}
