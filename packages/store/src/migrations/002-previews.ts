import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("previews")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workspace_id", "text", (c) => c.notNull().references("workspaces.id"))
    .addColumn("sandbox_id", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    /** DNS label the preview is served under: <label>.preview.<domain> and /preview/<label>/. */
    .addColumn("label", "text", (c) => c.notNull().unique())
    .addColumn("port", "integer", (c) => c.notNull())
    .addColumn("public", "integer", (c) => c.notNull())
    .addColumn("prefix_url", "text")
    .addColumn("custom_domain", "text", (c) => c.unique())
    .addColumn("request_headers", "text", (c) => c.notNull().defaultTo("{}"))
    .addColumn("response_headers", "text", (c) => c.notNull().defaultTo("{}"))
    .addColumn("expires_at", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addUniqueConstraint("previews_sandbox_name", ["sandbox_id", "name"])
    .execute();

  await db.schema
    .createTable("preview_tokens")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("preview_id", "text", (c) => c.notNull().references("previews.id").onDelete("cascade"))
    .addColumn("name", "text", (c) => c.notNull())
    /** sha256 of the token, for lookup; the token itself is kept sealed for listing. */
    .addColumn("hash", "text", (c) => c.notNull().unique())
    .addColumn("sealed", "text", (c) => c.notNull())
    .addColumn("expires_at", "text", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .addUniqueConstraint("preview_tokens_preview_name", ["preview_id", "name"])
    .execute();

  await db.schema
    .createTable("custom_domains")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workspace_id", "text", (c) => c.notNull().references("workspaces.id"))
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("verification_token", "text", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addColumn("verified_at", "text")
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ["custom_domains", "preview_tokens", "previews"]) await db.schema.dropTable(t).execute();
}
