// Store implementation over Kysely. Dialect-neutral SQL only: the embedded SQLite store and a
// PostgreSQL store differ in the Kysely dialect they are built with, nothing else.

import { type Kysely, type Selectable, type Transaction, sql } from "kysely";
import type { Database, SandboxTable } from "./schema.js";
import { SqlCustomDomainRepo, SqlPreviewRepo } from "./sql-previews.js";
import { SqlBuildRepo } from "./sql-builds.js";
import { SqlSnapshotRepo } from "./sql-snapshots.js";
import { SqlWorkloadRepo } from "./sql-workloads.js";
import { SqlConnectionTokenRepo } from "./sql-connection-tokens.js";
import { SqlGatewayRepo } from "./sql-gateway.js";
import { SqlStorageRepo } from "./sql-storage.js";
import { SqlJobRepo } from "./sql-jobs.js";
import { keysetPage, mapConflict, queryFingerprint } from "./sql-util.js";
import {
  type ApiKeyRecord,
  type ApiKeyRepo,
  type ListQuery,
  type Page,
  type SandboxRecord,
  type SandboxRepo,
  type Store,
  type WorkspaceRecord,
  type WorkspaceRepo,
} from "./store.js";

type Db = Kysely<Database> | Transaction<Database>;

const parseJson = <T>(s: string): T => JSON.parse(s) as T;

class SqlWorkspaceRepo implements WorkspaceRepo {
  constructor(private readonly db: Db) {}

  private static toRecord(r: Selectable<Database["workspaces"]>): WorkspaceRecord {
    return { id: r.id, name: r.name, displayName: r.display_name, labels: parseJson(r.labels), createdAt: r.created_at, updatedAt: r.updated_at };
  }

  async create(rec: WorkspaceRecord): Promise<WorkspaceRecord> {
    await mapConflict(
      this.db
        .insertInto("workspaces")
        .values({ id: rec.id, name: rec.name, display_name: rec.displayName, labels: JSON.stringify(rec.labels), created_at: rec.createdAt, updated_at: rec.updatedAt })
        .execute(),
    );
    return rec;
  }

  async getByName(name: string): Promise<WorkspaceRecord | null> {
    const r = await this.db.selectFrom("workspaces").selectAll().where("name", "=", name).executeTakeFirst();
    return r ? SqlWorkspaceRepo.toRecord(r) : null;
  }

  async getById(id: string): Promise<WorkspaceRecord | null> {
    const r = await this.db.selectFrom("workspaces").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? SqlWorkspaceRepo.toRecord(r) : null;
  }

  async list(ids?: string[]): Promise<WorkspaceRecord[]> {
    if (ids && ids.length === 0) return [];
    let q = this.db.selectFrom("workspaces").selectAll().orderBy("name");
    if (ids) q = q.where("id", "in", ids);
    return (await q.execute()).map(SqlWorkspaceRepo.toRecord);
  }

  async update(id: string, patch: Partial<Pick<WorkspaceRecord, "displayName" | "labels" | "updatedAt">>): Promise<WorkspaceRecord | null> {
    const values: Partial<Database["workspaces"]> = {};
    if (patch.displayName !== undefined) values.display_name = patch.displayName;
    if (patch.labels !== undefined) values.labels = JSON.stringify(patch.labels);
    if (patch.updatedAt !== undefined) values.updated_at = patch.updatedAt;
    if (Object.keys(values).length) await this.db.updateTable("workspaces").set(values).where("id", "=", id).execute();
    return this.getById(id);
  }

  async delete(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom("workspaces").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}

class SqlApiKeyRepo implements ApiKeyRepo {
  constructor(private readonly db: Db) {}

  private async withWorkspaces(rows: Selectable<Database["api_keys"]>[]): Promise<ApiKeyRecord[]> {
    if (rows.length === 0) return [];
    const links = await this.db
      .selectFrom("api_key_workspaces")
      .selectAll()
      .where("key_id", "in", rows.map((r) => r.id))
      .execute();
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      prefix: r.prefix,
      admin: r.admin === 1,
      createdAt: r.created_at,
      expiresAt: r.expires_at,
      lastUsedAt: r.last_used_at,
      revokedAt: r.revoked_at,
      workspaceIds: links.filter((l) => l.key_id === r.id).map((l) => l.workspace_id),
    }));
  }

  async create(rec: ApiKeyRecord, hash: string): Promise<ApiKeyRecord> {
    await mapConflict(
      this.db
        .insertInto("api_keys")
        .values({
          id: rec.id,
          name: rec.name,
          hash,
          prefix: rec.prefix,
          admin: rec.admin ? 1 : 0,
          created_at: rec.createdAt,
          expires_at: rec.expiresAt,
          last_used_at: rec.lastUsedAt,
          revoked_at: rec.revokedAt,
        })
        .execute(),
    );
    for (const ws of rec.workspaceIds) await this.grant(rec.id, ws);
    return rec;
  }

  async findByHash(hash: string): Promise<ApiKeyRecord | null> {
    const r = await this.db.selectFrom("api_keys").selectAll().where("hash", "=", hash).executeTakeFirst();
    return r ? ((await this.withWorkspaces([r]))[0] ?? null) : null;
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    const r = await this.db.selectFrom("api_keys").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? ((await this.withWorkspaces([r]))[0] ?? null) : null;
  }

  async list(workspaceId?: string): Promise<ApiKeyRecord[]> {
    let q = this.db.selectFrom("api_keys").selectAll("api_keys").orderBy("api_keys.created_at");
    if (workspaceId) {
      q = q.innerJoin("api_key_workspaces", "api_key_workspaces.key_id", "api_keys.id").where("api_key_workspaces.workspace_id", "=", workspaceId);
    }
    return this.withWorkspaces(await q.execute());
  }

  async revoke(id: string, at: string): Promise<boolean> {
    const r = await this.db.updateTable("api_keys").set({ revoked_at: at }).where("id", "=", id).where("revoked_at", "is", null).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async grant(keyId: string, workspaceId: string): Promise<void> {
    await this.db
      .insertInto("api_key_workspaces")
      .values({ key_id: keyId, workspace_id: workspaceId })
      .onConflict((oc) => oc.doNothing())
      .execute();
  }

  async touch(id: string, at: string): Promise<void> {
    await this.db.updateTable("api_keys").set({ last_used_at: at }).where("id", "=", id).execute();
  }
}

function fingerprint(workspaceId: string, q: ListQuery): string {
  return queryFingerprint([workspaceId, q.sort, q.q ?? "", q.statuses ?? [], q.externalId ?? "", q.labels ?? {}, q.showTerminated ?? false]);
}

class SqlSandboxRepo implements SandboxRepo {
  constructor(private readonly db: Db) {}

  private static toRecord(r: Selectable<SandboxTable>): SandboxRecord {
    return {
      id: r.id,
      workspaceId: r.workspace_id,
      name: r.name,
      externalId: r.external_id,
      displayName: r.display_name,
      labels: parseJson(r.labels),
      status: r.status,
      state: r.state,
      spec: parseJson(r.spec),
      events: parseJson(r.events),
      node: r.node,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      lastUsedAt: r.last_used_at,
      expiresAt: r.expires_at,
      terminatedAt: r.terminated_at,
      version: r.version,
    };
  }

  async insert(rec: SandboxRecord): Promise<SandboxRecord> {
    await mapConflict(
      this.db
        .insertInto("sandboxes")
        .values({
          id: rec.id,
          workspace_id: rec.workspaceId,
          name: rec.name,
          external_id: rec.externalId,
          display_name: rec.displayName,
          labels: JSON.stringify(rec.labels),
          status: rec.status,
          state: rec.state,
          spec: JSON.stringify(rec.spec),
          events: JSON.stringify(rec.events),
          node: rec.node,
          created_at: rec.createdAt,
          updated_at: rec.updatedAt,
          last_used_at: rec.lastUsedAt,
          expires_at: rec.expiresAt,
          terminated_at: rec.terminatedAt,
          version: rec.version,
        })
        .execute(),
    );
    return rec;
  }

  async get(workspaceId: string, name: string): Promise<SandboxRecord | null> {
    // A live record wins over terminated ones kept for retention.
    const r = await this.db
      .selectFrom("sandboxes")
      .selectAll()
      .where("workspace_id", "=", workspaceId)
      .where("name", "=", name)
      .orderBy(sql`terminated_at IS NULL`, "desc")
      .orderBy("created_at", "desc")
      .executeTakeFirst();
    return r ? SqlSandboxRepo.toRecord(r) : null;
  }

  async getById(id: string): Promise<SandboxRecord | null> {
    const r = await this.db.selectFrom("sandboxes").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? SqlSandboxRepo.toRecord(r) : null;
  }

  async getByExternalId(workspaceId: string, externalId: string): Promise<SandboxRecord | null> {
    const r = await this.db
      .selectFrom("sandboxes")
      .selectAll()
      .where("workspace_id", "=", workspaceId)
      .where("external_id", "=", externalId)
      .where("terminated_at", "is", null)
      .orderBy("created_at", "desc")
      .executeTakeFirst();
    return r ? SqlSandboxRepo.toRecord(r) : null;
  }

  async list(workspaceId: string, query: ListQuery): Promise<Page<SandboxRecord>> {
    let base = this.db.selectFrom("sandboxes").where("workspace_id", "=", workspaceId);
    if (query.statuses?.length) base = base.where("status", "in", query.statuses);
    else if (!query.showTerminated) base = base.where("terminated_at", "is", null);
    const extId = query.externalId;
    return keysetPage(base, extId ? (q) => q.where("external_id", "=", extId) : (q) => q, query, fingerprint(workspaceId, query), SqlSandboxRepo.toRecord);
  }

  async listAll(): Promise<SandboxRecord[]> {
    return (await this.db.selectFrom("sandboxes").selectAll().orderBy("created_at").execute()).map(SqlSandboxRepo.toRecord);
  }

  async listExpiring(before: string): Promise<SandboxRecord[]> {
    const rows = await this.db.selectFrom("sandboxes").selectAll().where("terminated_at", "is", null).where("expires_at", "is not", null).where("expires_at", "<=", before).execute();
    return rows.map(SqlSandboxRepo.toRecord);
  }

  async listTerminated(): Promise<SandboxRecord[]> {
    return (await this.db.selectFrom("sandboxes").selectAll().where("terminated_at", "is not", null).execute()).map(SqlSandboxRepo.toRecord);
  }

  async update(
    id: string,
    patch: Partial<Omit<SandboxRecord, "id" | "workspaceId" | "createdAt" | "version">>,
    expectedVersion?: number,
  ): Promise<SandboxRecord | null> {
    const v: Record<string, unknown> = {};
    if (patch.name !== undefined) v.name = patch.name;
    if (patch.externalId !== undefined) v.external_id = patch.externalId;
    if (patch.displayName !== undefined) v.display_name = patch.displayName;
    if (patch.labels !== undefined) v.labels = JSON.stringify(patch.labels);
    if (patch.status !== undefined) v.status = patch.status;
    if (patch.state !== undefined) v.state = patch.state;
    if (patch.spec !== undefined) v.spec = JSON.stringify(patch.spec);
    if (patch.events !== undefined) v.events = JSON.stringify(patch.events);
    if (patch.node !== undefined) v.node = patch.node;
    if (patch.updatedAt !== undefined) v.updated_at = patch.updatedAt;
    if (patch.lastUsedAt !== undefined) v.last_used_at = patch.lastUsedAt;
    if (patch.expiresAt !== undefined) v.expires_at = patch.expiresAt;
    if (patch.terminatedAt !== undefined) v.terminated_at = patch.terminatedAt;
    let q = this.db
      .updateTable("sandboxes")
      .set({ ...v, version: sql<number>`version + 1` })
      .where("id", "=", id);
    if (expectedVersion !== undefined) q = q.where("version", "=", expectedVersion);
    const r = await mapConflict(q.executeTakeFirst());
    if (Number(r.numUpdatedRows) === 0) return null;
    return this.getById(id);
  }

  async delete(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom("sandboxes").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}

/** A Store over any Kysely database whose schema has been migrated. */
export class SqlStore implements Store {
  readonly workspaces: WorkspaceRepo;
  readonly apiKeys: ApiKeyRepo;
  readonly sandboxes: SandboxRepo;
  readonly previews: SqlPreviewRepo;
  readonly customDomains: SqlCustomDomainRepo;
  readonly builds: SqlBuildRepo;
  readonly workloads: SqlWorkloadRepo;
  readonly gateway: SqlGatewayRepo;
  readonly storage: SqlStorageRepo;
  readonly snapshots: SqlSnapshotRepo;
  readonly jobs: SqlJobRepo;
  readonly connectionTokens: SqlConnectionTokenRepo;

  constructor(
    private readonly db: Kysely<Database>,
    readonly dialect: "sqlite" | "postgres",
    private readonly onClose: () => Promise<void> = async () => db.destroy(),
  ) {
    this.workspaces = new SqlWorkspaceRepo(db);
    this.apiKeys = new SqlApiKeyRepo(db);
    this.sandboxes = new SqlSandboxRepo(db);
    this.previews = new SqlPreviewRepo(db);
    this.customDomains = new SqlCustomDomainRepo(db);
    this.builds = new SqlBuildRepo(db);
    this.workloads = new SqlWorkloadRepo(db);
    this.gateway = new SqlGatewayRepo(db);
    this.storage = new SqlStorageRepo(db);
    this.snapshots = new SqlSnapshotRepo(db);
    this.jobs = new SqlJobRepo(db);
    this.connectionTokens = new SqlConnectionTokenRepo(db);
  }

  async transaction<T>(fn: (tx: Omit<Store, "transaction" | "close">) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((trx) =>
      fn({
        dialect: this.dialect,
        workspaces: new SqlWorkspaceRepo(trx),
        apiKeys: new SqlApiKeyRepo(trx),
        sandboxes: new SqlSandboxRepo(trx),
        previews: new SqlPreviewRepo(trx),
        customDomains: new SqlCustomDomainRepo(trx),
        builds: new SqlBuildRepo(trx),
        workloads: new SqlWorkloadRepo(trx),
        gateway: new SqlGatewayRepo(trx),
        storage: new SqlStorageRepo(trx),
        snapshots: new SqlSnapshotRepo(trx),
        jobs: new SqlJobRepo(trx),
        connectionTokens: new SqlConnectionTokenRepo(trx),
      }),
    );
  }

  async close(): Promise<void> {
    await this.onClose();
  }
}
