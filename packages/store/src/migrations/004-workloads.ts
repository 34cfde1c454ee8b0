import type { Kysely } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("workloads")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workspace_id", "text", (c) => c.notNull().references("workspaces.id"))
    /** agents | functions */
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("display_name", "text", (c) => c.notNull())
    .addColumn("labels", "text", (c) => c.notNull().defaultTo("{}"))
    /** The user's spec (JSON), secrets sealed. */
    .addColumn("spec", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("events", "text", (c) => c.notNull().defaultTo("[]"))
    /** The revision that takes the traffic. */
    .addColumn("active_revision", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .addUniqueConstraint("workloads_ws_kind_name", ["workspace_id", "kind", "name"])
    .execute();

  await db.schema
    .createTable("revisions")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workload_id", "text", (c) => c.notNull().references("workloads.id").onDelete("cascade"))
    .addColumn("image", "text", (c) => c.notNull())
    /** What the revision runs: memory, envs (sealed), port. */
    .addColumn("runtime", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("message", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("revisions_workload").on("revisions").columns(["workload_id", "created_at"]).execute();

  await db.schema
    .createTable("replicas")
    /** Also the node sandbox id that runs it. */
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workload_id", "text", (c) => c.notNull().references("workloads.id").onDelete("cascade"))
    .addColumn("revision_id", "text", (c) => c.notNull())
    .addColumn("node", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("created_at", "text", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("replicas_workload").on("replicas").columns(["workload_id"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ["replicas", "revisions", "workloads"]) await db.schema.dropTable(t).execute();
}
