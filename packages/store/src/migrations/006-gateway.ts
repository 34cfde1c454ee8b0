import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // Integration connections, models and policies: one table of named, workspace-scoped documents.
  await db.schema
    .createTable("gateway_resources")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workspace_id", "text", (c) => c.notNull().references("workspaces.id"))
    /** connections | models | policies */
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("display_name", "text", (c) => c.notNull())
    .addColumn("labels", "text", (c) => c.notNull().defaultTo("{}"))
    /** The spec (JSON); secrets sealed with the SecretBox. */
    .addColumn("spec", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("events", "text", (c) => c.notNull().defaultTo("[]"))
    /** Revisions (JSON array), newest first. */
    .addColumn("revisions", "text", (c) => c.notNull().defaultTo("[]"))
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .addUniqueConstraint("gateway_resources_ws_kind_name", ["workspace_id", "kind", "name"])
    .execute();

  // Tokens used through the model gateway, per workspace, model and minute.
  await db.schema
    .createTable("model_usage")
    .addColumn("workspace_id", "text", (c) => c.notNull())
    .addColumn("model", "text", (c) => c.notNull())
    /** Start of the minute (ISO-8601). */
    .addColumn("bucket", "text", (c) => c.notNull())
    .addColumn("requests", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("input_tokens", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("output_tokens", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("total_tokens", "integer", (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint("model_usage_pk", ["workspace_id", "model", "bucket"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ["model_usage", "gateway_resources"]) await db.schema.dropTable(t).execute();
}
