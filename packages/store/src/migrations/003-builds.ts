import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("builds")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workspace_id", "text", (c) => c.notNull().references("workspaces.id"))
    /** sandboxes | agents | functions | jobs, or images (bl push: an image only). */
    .addColumn("resource_type", "text", (c) => c.notNull())
    .addColumn("resource_name", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    /** sha256 of the single-use upload token; null once the upload arrived. */
    .addColumn("upload_token_hash", "text", (c) => c.unique())
    .addColumn("upload_expires_at", "text", (c) => c.notNull())
    .addColumn("source_digest", "text")
    .addColumn("source_bytes", "integer")
    /** The image the build produced (an image-store reference). */
    .addColumn("image", "text")
    .addColumn("error", "text")
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    /** Which server works on it, until when (claimed with a lease, renewed while building). */
    .addColumn("lease_owner", "text")
    .addColumn("lease_expires_at", "text")
    /** When a client first read the resource while it was BUILDING (bl waits to see that status). */
    .addColumn("observed_at", "text")
    .addColumn("stats", "text", (c) => c.notNull().defaultTo("{}"))
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addColumn("started_at", "text")
    .addColumn("finished_at", "text")
    .execute();
  await db.schema.createIndex("builds_resource").on("builds").columns(["workspace_id", "resource_type", "resource_name", "created_at"]).execute();
  await db.schema.createIndex("builds_status").on("builds").columns(["status", "created_at"]).execute();

  await db.schema
    .createTable("build_logs")
    .addColumn("build_id", "text", (c) => c.notNull().references("builds.id").onDelete("cascade"))
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("time", "text", (c) => c.notNull())
    .addColumn("severity", "integer", (c) => c.notNull())
    .addColumn("message", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("build_logs_pk", ["build_id", "seq"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ["build_logs", "builds"]) await db.schema.dropTable(t).execute();
}
