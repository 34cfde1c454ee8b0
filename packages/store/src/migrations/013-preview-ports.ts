import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  /** The host port an app preview is served on (port mode); unique: the store is what allocates it. */
  await db.schema.alterTable("previews").addColumn("host_port", "integer").execute();
  await db.schema.createIndex("previews_host_port").on("previews").column("host_port").unique().execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("previews_host_port").execute();
  await db.schema.alterTable("previews").dropColumn("host_port").execute();
}
