import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // Volumes, drives and volume templates: one table, told apart by kind.
  await db.schema
    .createTable("storage_resources")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workspace_id", "text", (c) => c.notNull().references("workspaces.id"))
    /** volumes | drives | volume_templates */
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("external_id", "text")
    .addColumn("display_name", "text", (c) => c.notNull())
    .addColumn("labels", "text", (c) => c.notNull().defaultTo("{}"))
    /** The resource's spec (JSON); a template's versions live in it. */
    .addColumn("spec", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    /** Volumes: the runtime id of the sandbox holding it (one writer). */
    .addColumn("attached_to", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .addUniqueConstraint("storage_ws_kind_name", ["workspace_id", "kind", "name"])
    .execute();
  await db.schema.createIndex("storage_attached").on("storage_resources").columns(["attached_to"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("storage_resources").execute();
}
