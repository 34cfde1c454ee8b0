// Snapshots and archives of sandboxes, over Kysely. A capture in progress holds a lease, so a
// server that died mid-capture leaves a record the next one can see and fail.

import type { Kysely, Selectable, Transaction } from "kysely";
import type { Database, SnapshotTable } from "./schema.js";
import { keysetPage, mapConflict, queryFingerprint } from "./sql-util.js";
import type { ListQuery, Page, SnapshotRecord, SnapshotRepo, SnapshotStatus } from "./store.js";

type Db = Kysely<Database> | Transaction<Database>;

function toSnapshot(r: Selectable<SnapshotTable>): SnapshotRecord {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    name: r.name,
    displayName: r.display_name,
    labels: JSON.parse(r.labels) as Record<string, string>,
    kind: r.kind as SnapshotRecord["kind"],
    sourceName: r.source_name,
    sourceId: r.source_id,
    status: r.status as SnapshotStatus,
    spec: JSON.parse(r.spec) as Record<string, unknown>,
    processes: r.processes === 1,
    sizeBytes: r.size_bytes,
    error: r.error,
    leaseOwner: r.lease_owner,
    leaseExpiresAt: r.lease_expires_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const COLUMNS: Record<string, keyof SnapshotTable> = {
  status: "status",
  processes: "processes",
  sizeBytes: "size_bytes",
  error: "error",
  leaseOwner: "lease_owner",
  leaseExpiresAt: "lease_expires_at",
  sourceId: "source_id",
  spec: "spec",
  updatedAt: "updated_at",
};

export class SqlSnapshotRepo implements SnapshotRepo {
  constructor(private readonly db: Db) {}

  async insert(rec: SnapshotRecord): Promise<SnapshotRecord> {
    await mapConflict(
      this.db
        .insertInto("snapshots")
        .values({
          id: rec.id,
          workspace_id: rec.workspaceId,
          name: rec.name,
          display_name: rec.displayName,
          labels: JSON.stringify(rec.labels),
          kind: rec.kind,
          source_name: rec.sourceName,
          source_id: rec.sourceId,
          status: rec.status,
          spec: JSON.stringify(rec.spec),
          processes: rec.processes ? 1 : 0,
          size_bytes: rec.sizeBytes,
          error: rec.error,
          lease_owner: rec.leaseOwner,
          lease_expires_at: rec.leaseExpiresAt,
          created_at: rec.createdAt,
          updated_at: rec.updatedAt,
        })
        .execute(),
    );
    return rec;
  }

  async getById(id: string): Promise<SnapshotRecord | null> {
    const r = await this.db.selectFrom("snapshots").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toSnapshot(r) : null;
  }

  async find(workspaceId: string, idOrName: string): Promise<SnapshotRecord | null> {
    const byId = await this.db.selectFrom("snapshots").selectAll().where("workspace_id", "=", workspaceId).where("id", "=", idOrName).executeTakeFirst();
    if (byId) return toSnapshot(byId);
    const r = await this.db.selectFrom("snapshots").selectAll().where("workspace_id", "=", workspaceId).where("name", "=", idOrName).executeTakeFirst();
    return r ? toSnapshot(r) : null;
  }

  list(workspaceId: string, query: ListQuery): Promise<Page<SnapshotRecord>> {
    let base = this.db.selectFrom("snapshots").where("workspace_id", "=", workspaceId).where("kind", "=", "snapshot");
    if (query.statuses?.length) base = base.where("status", "in", query.statuses);
    const fp = queryFingerprint([workspaceId, "snapshots", query.sort, query.q ?? "", query.statuses ?? [], query.labels ?? {}]);
    return keysetPage(base, (q) => q, query, fp, toSnapshot);
  }

  async listForSource(workspaceId: string, sourceName: string): Promise<SnapshotRecord[]> {
    const rows = await this.db
      .selectFrom("snapshots")
      .selectAll()
      .where("workspace_id", "=", workspaceId)
      .where("kind", "=", "snapshot")
      .where("source_name", "=", sourceName)
      .orderBy("created_at", "desc")
      .orderBy("id", "desc")
      .execute();
    return rows.map(toSnapshot);
  }

  async images(): Promise<string[]> {
    const rows = await this.db.selectFrom("snapshots").select("spec").execute();
    return rows.map((r) => String((JSON.parse(r.spec) as { runtime?: { image?: string } }).runtime?.image ?? "")).filter(Boolean);
  }

  async listStale(now: string): Promise<SnapshotRecord[]> {
    const rows = await this.db
      .selectFrom("snapshots")
      .selectAll()
      .where("status", "=", "pending")
      .where((eb) => eb.or([eb("lease_expires_at", "is", null), eb("lease_expires_at", "<", now)]))
      .orderBy("created_at", "asc")
      .execute();
    return rows.map(toSnapshot);
  }

  async update(id: string, patch: Parameters<SnapshotRepo["update"]>[1], fromStatuses?: SnapshotStatus[]): Promise<SnapshotRecord | null> {
    const values: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(patch)) {
      const col = COLUMNS[k];
      if (!col || v === undefined) continue;
      values[col] = k === "spec" ? JSON.stringify(v) : k === "processes" ? (v ? 1 : 0) : v;
    }
    let q = this.db.updateTable("snapshots").set(values).where("id", "=", id);
    if (fromStatuses) q = q.where("status", "in", fromStatuses);
    const r = await q.executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) return null;
    return this.getById(id);
  }

  async delete(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom("snapshots").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}
