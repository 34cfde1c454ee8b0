// The model gateway's documents (integration connections, models, policies) and token usage, over Kysely.

import type { Kysely, Selectable, Transaction } from "kysely";
import type { Database, GatewayResourceTable } from "./schema.js";
import { keysetPage, mapConflict, queryFingerprint } from "./sql-util.js";
import type { GatewayRepo, GatewayResourceRecord, ListQuery, ModelUsageRow, Page } from "./store.js";

type Db = Kysely<Database> | Transaction<Database>;

function toRecord(r: Selectable<GatewayResourceTable>): GatewayResourceRecord {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    kind: r.kind,
    name: r.name,
    displayName: r.display_name,
    labels: JSON.parse(r.labels) as Record<string, string>,
    spec: JSON.parse(r.spec) as Record<string, unknown>,
    status: r.status,
    events: JSON.parse(r.events) as GatewayResourceRecord["events"],
    revisions: JSON.parse(r.revisions) as GatewayResourceRecord["revisions"],
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: r.version,
  };
}

export class SqlGatewayRepo implements GatewayRepo {
  constructor(private readonly db: Db) {}

  async insert(rec: GatewayResourceRecord): Promise<GatewayResourceRecord> {
    await mapConflict(
      this.db
        .insertInto("gateway_resources")
        .values({
          id: rec.id,
          workspace_id: rec.workspaceId,
          kind: rec.kind,
          name: rec.name,
          display_name: rec.displayName,
          labels: JSON.stringify(rec.labels),
          spec: JSON.stringify(rec.spec),
          status: rec.status,
          events: JSON.stringify(rec.events),
          revisions: JSON.stringify(rec.revisions),
          created_at: rec.createdAt,
          updated_at: rec.updatedAt,
          version: rec.version,
        })
        .execute(),
    );
    return rec;
  }

  async get(workspaceId: string, kind: string, name: string): Promise<GatewayResourceRecord | null> {
    const r = await this.db.selectFrom("gateway_resources").selectAll().where("workspace_id", "=", workspaceId).where("kind", "=", kind).where("name", "=", name).executeTakeFirst();
    return r ? toRecord(r) : null;
  }

  list(workspaceId: string, kind: string, query: ListQuery): Promise<Page<GatewayResourceRecord>> {
    let base = this.db.selectFrom("gateway_resources").where("workspace_id", "=", workspaceId).where("kind", "=", kind);
    if (query.statuses?.length) base = base.where("status", "in", query.statuses);
    const fp = queryFingerprint(["gateway", workspaceId, kind, query.sort, query.q ?? "", query.statuses ?? [], query.labels ?? {}]);
    return keysetPage(base, (q) => q, query, fp, toRecord);
  }

  async listAll(workspaceId: string, kind: string): Promise<GatewayResourceRecord[]> {
    const rows = await this.db.selectFrom("gateway_resources").selectAll().where("workspace_id", "=", workspaceId).where("kind", "=", kind).orderBy("name").execute();
    return rows.map(toRecord);
  }

  async update(
    id: string,
    patch: Partial<Pick<GatewayResourceRecord, "displayName" | "labels" | "spec" | "status" | "events" | "revisions" | "updatedAt">>,
    expectedVersion?: number,
  ): Promise<GatewayResourceRecord | null> {
    const values: Partial<GatewayResourceTable> = {};
    if (patch.displayName !== undefined) values.display_name = patch.displayName;
    if (patch.labels !== undefined) values.labels = JSON.stringify(patch.labels);
    if (patch.spec !== undefined) values.spec = JSON.stringify(patch.spec);
    if (patch.status !== undefined) values.status = patch.status;
    if (patch.events !== undefined) values.events = JSON.stringify(patch.events);
    if (patch.revisions !== undefined) values.revisions = JSON.stringify(patch.revisions);
    if (patch.updatedAt !== undefined) values.updated_at = patch.updatedAt;
    let q = this.db
      .updateTable("gateway_resources")
      .set((eb) => ({ ...values, version: eb("version", "+", 1) }))
      .where("id", "=", id);
    if (expectedVersion !== undefined) q = q.where("version", "=", expectedVersion);
    const r = await q.executeTakeFirst();
    if (!Number(r.numUpdatedRows)) return null;
    const row = await this.db.selectFrom("gateway_resources").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async delete(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom("gateway_resources").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async addUsage(rows: ModelUsageRow[]): Promise<void> {
    for (const u of rows) {
      await this.db
        .insertInto("model_usage")
        .values({
          workspace_id: u.workspaceId,
          model: u.model,
          bucket: u.bucket,
          requests: u.requests,
          input_tokens: u.inputTokens,
          output_tokens: u.outputTokens,
          total_tokens: u.totalTokens,
        })
        .onConflict((oc) =>
          oc.columns(["workspace_id", "model", "bucket"]).doUpdateSet((eb) => ({
            requests: eb("model_usage.requests", "+", u.requests),
            input_tokens: eb("model_usage.input_tokens", "+", u.inputTokens),
            output_tokens: eb("model_usage.output_tokens", "+", u.outputTokens),
            total_tokens: eb("model_usage.total_tokens", "+", u.totalTokens),
          })),
        )
        .execute();
    }
  }

  async usage(workspaceId: string, model: string, from: string, to?: string): Promise<ModelUsageRow[]> {
    let q = this.db.selectFrom("model_usage").selectAll().where("workspace_id", "=", workspaceId).where("model", "=", model).where("bucket", ">=", from);
    if (to) q = q.where("bucket", "<", to);
    const rows = await q.orderBy("bucket").execute();
    return rows.map((r) => ({ workspaceId: r.workspace_id, model: r.model, bucket: r.bucket, requests: r.requests, inputTokens: r.input_tokens, outputTokens: r.output_tokens, totalTokens: r.total_tokens }));
  }
}
