import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("workspaces")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("display_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("labels", "text", (c) => c.notNull().defaultTo("{}"))
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("api_keys")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("hash", "text", (c) => c.notNull().unique())
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("admin", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("expires_at", "text")
    .addColumn("last_used_at", "text")
    .addColumn("revoked_at", "text")
    .execute();

  await db.schema
    .createTable("api_key_workspaces")
    .addColumn("key_id", "text", (c) => c.notNull().references("api_keys.id").onDelete("cascade"))
    .addColumn("workspace_id", "text", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addPrimaryKeyConstraint("api_key_workspaces_pk", ["key_id", "workspace_id"])
    .execute();

  await db.schema
    .createTable("sandboxes")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workspace_id", "text", (c) => c.notNull().references("workspaces.id"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("external_id", "text")
    .addColumn("display_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("labels", "text", (c) => c.notNull().defaultTo("{}"))
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("spec", "text", (c) => c.notNull())
    .addColumn("events", "text", (c) => c.notNull().defaultTo("[]"))
    .addColumn("node", "text", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addColumn("last_used_at", "text", (c) => c.notNull())
    .addColumn("expires_at", "text")
    .addColumn("terminated_at", "text")
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .execute();

  // One live sandbox per name and workspace; terminated records keep their name free.
  await sql`CREATE UNIQUE INDEX sandboxes_live_name ON sandboxes (workspace_id, name) WHERE terminated_at IS NULL`.execute(db);
  await db.schema.createIndex("sandboxes_ws_created").on("sandboxes").columns(["workspace_id", "created_at", "id"]).execute();
  await db.schema.createIndex("sandboxes_ws_external").on("sandboxes").columns(["workspace_id", "external_id"]).execute();
  await db.schema.createIndex("sandboxes_expires").on("sandboxes").column("expires_at").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ["sandboxes", "api_key_workspaces", "api_keys", "workspaces"]) {
    await db.schema.dropTable(t).execute();
  }
}
