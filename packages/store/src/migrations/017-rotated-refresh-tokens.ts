import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // a refresh token the provider rotated to (sealed), used instead of the connection's own
  await db.schema.alterTable("connection_tokens").addColumn("refresh_token", "text").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("connection_tokens").dropColumn("refresh_token").execute();
}
