import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // access tokens Hangar got for OAuth integration connections (sealed), and who is refreshing one
  await db.schema
    .createTable("connection_tokens")
    .addColumn("workspace_id", "text", (c) => c.notNull())
    .addColumn("connection", "text", (c) => c.notNull())
    /** The connection's id and version the token was got with: a changed connection makes it stale. */
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("access_token", "text")
    .addColumn("expires_at", "text")
    .addColumn("error", "text")
    .addColumn("lease_owner", "text")
    .addColumn("lease_until", "text")
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("connection_tokens_pk", ["workspace_id", "connection"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("connection_tokens").execute();
}
