// Volumes, drives and volume templates (one table, by kind) over Kysely.

import type { Kysely, Selectable, Transaction } from "kysely";
import type { Database, StorageResourceTable } from "./schema.js";
import { keysetPage, mapConflict, queryFingerprint } from "./sql-util.js";
import type { ListQuery, Page, StorageKind, StorageRecord, StorageRepo } from "./store.js";

type Db = Kysely<Database> | Transaction<Database>;

function toRecord(r: Selectable<StorageResourceTable>): StorageRecord {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    kind: r.kind as StorageKind,
    name: r.name,
    externalId: r.external_id,
    displayName: r.display_name,
    labels: JSON.parse(r.labels) as Record<string, string>,
    spec: JSON.parse(r.spec) as Record<string, unknown>,
    status: r.status,
    attachedTo: r.attached_to,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: r.version,
  };
}

export class SqlStorageRepo implements StorageRepo {
  constructor(private readonly db: Db) {}

  async insert(rec: StorageRecord): Promise<StorageRecord> {
    await mapConflict(
      this.db
        .insertInto("storage_resources")
        .values({
          id: rec.id,
          workspace_id: rec.workspaceId,
          kind: rec.kind,
          name: rec.name,
          external_id: rec.externalId,
          display_name: rec.displayName,
          labels: JSON.stringify(rec.labels),
          spec: JSON.stringify(rec.spec),
          status: rec.status,
          attached_to: rec.attachedTo,
          created_at: rec.createdAt,
          updated_at: rec.updatedAt,
          version: rec.version,
        })
        .execute(),
    );
    return rec;
  }

  async get(workspaceId: string, kind: StorageKind, name: string): Promise<StorageRecord | null> {
    const r = await this.db.selectFrom("storage_resources").selectAll().where("workspace_id", "=", workspaceId).where("kind", "=", kind).where("name", "=", name).executeTakeFirst();
    return r ? toRecord(r) : null;
  }

  async getById(id: string): Promise<StorageRecord | null> {
    const r = await this.db.selectFrom("storage_resources").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toRecord(r) : null;
  }

  async getByExternalId(workspaceId: string, kind: StorageKind, externalId: string): Promise<StorageRecord | null> {
    const r = await this.db.selectFrom("storage_resources").selectAll().where("workspace_id", "=", workspaceId).where("kind", "=", kind).where("external_id", "=", externalId).executeTakeFirst();
    return r ? toRecord(r) : null;
  }

  list(workspaceId: string, kind: StorageKind, query: ListQuery): Promise<Page<StorageRecord>> {
    let base = this.db.selectFrom("storage_resources").where("workspace_id", "=", workspaceId).where("kind", "=", kind);
    if (query.statuses?.length) base = base.where("status", "in", query.statuses);
    if (query.externalId) base = base.where("external_id", "=", query.externalId);
    const fp = queryFingerprint([workspaceId, kind, query.sort, query.q ?? "", query.statuses ?? [], query.labels ?? {}, query.externalId ?? ""]);
    return keysetPage(base, (q) => q, query, fp, toRecord);
  }

  async listAll(kind: StorageKind): Promise<StorageRecord[]> {
    return (await this.db.selectFrom("storage_resources").selectAll().where("kind", "=", kind).execute()).map(toRecord);
  }

  async listAttached(sandboxId: string): Promise<StorageRecord[]> {
    return (await this.db.selectFrom("storage_resources").selectAll().where("attached_to", "=", sandboxId).execute()).map(toRecord);
  }

  async update(id: string, patch: Partial<Pick<StorageRecord, "displayName" | "labels" | "spec" | "status" | "externalId" | "updatedAt">>): Promise<StorageRecord | null> {
    const values: Partial<Record<keyof StorageResourceTable, unknown>> = {};
    if (patch.displayName !== undefined) values.display_name = patch.displayName;
    if (patch.labels !== undefined) values.labels = JSON.stringify(patch.labels);
    if (patch.spec !== undefined) values.spec = JSON.stringify(patch.spec);
    if (patch.status !== undefined) values.status = patch.status;
    if (patch.externalId !== undefined) values.external_id = patch.externalId;
    if (patch.updatedAt !== undefined) values.updated_at = patch.updatedAt;
    await this.db
      .updateTable("storage_resources")
      .set((eb) => ({ ...(values as Partial<StorageResourceTable>), version: eb("version", "+", 1) }))
      .where("id", "=", id)
      .execute();
    return this.getById(id);
  }

  async claim(id: string, sandboxId: string): Promise<boolean> {
    const r = await this.db
      .updateTable("storage_resources")
      .set({ attached_to: sandboxId })
      .where("id", "=", id)
      .where((eb) => eb.or([eb("attached_to", "is", null), eb("attached_to", "=", sandboxId)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async release(id: string, sandboxId: string): Promise<void> {
    await this.db.updateTable("storage_resources").set({ attached_to: null }).where("id", "=", id).where("attached_to", "=", sandboxId).execute();
  }

  async deleteIfFree(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom("storage_resources").where("id", "=", id).where("attached_to", "is", null).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}
