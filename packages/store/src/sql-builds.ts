// Builds and their logs, over Kysely. Work is claimed with leases (a conditional update), so any
// number of servers sharing the store can run builds without two running the same one.

import type { Kysely, Selectable, Transaction } from "kysely";
import type { BuildTable, Database } from "./schema.js";
import { mapConflict } from "./sql-util.js";
import type { BuildLogLine, BuildRecord, BuildRepo, BuildStatus } from "./store.js";

type Db = Kysely<Database> | Transaction<Database>;

function toBuild(r: Selectable<BuildTable>): BuildRecord {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    resourceType: r.resource_type,
    resourceName: r.resource_name,
    status: r.status as BuildStatus,
    uploadExpiresAt: r.upload_expires_at,
    sourceDigest: r.source_digest,
    sourceBytes: r.source_bytes,
    image: r.image,
    error: r.error,
    attempts: r.attempts,
    leaseOwner: r.lease_owner,
    leaseExpiresAt: r.lease_expires_at,
    observedAt: r.observed_at,
    stats: JSON.parse(r.stats) as Record<string, unknown>,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

const COLUMNS: Record<string, keyof BuildTable> = {
  resourceType: "resource_type",
  resourceName: "resource_name",
  status: "status",
  uploadTokenHash: "upload_token_hash",
  uploadExpiresAt: "upload_expires_at",
  sourceDigest: "source_digest",
  sourceBytes: "source_bytes",
  image: "image",
  error: "error",
  attempts: "attempts",
  leaseOwner: "lease_owner",
  leaseExpiresAt: "lease_expires_at",
  observedAt: "observed_at",
  stats: "stats",
  updatedAt: "updated_at",
  startedAt: "started_at",
  finishedAt: "finished_at",
};

export class SqlBuildRepo implements BuildRepo {
  constructor(private readonly db: Db) {}

  async insert(rec: BuildRecord, uploadTokenHash: string): Promise<BuildRecord> {
    await mapConflict(
      this.db
        .insertInto("builds")
        .values({
          id: rec.id,
          workspace_id: rec.workspaceId,
          resource_type: rec.resourceType,
          resource_name: rec.resourceName,
          status: rec.status,
          upload_token_hash: uploadTokenHash,
          upload_expires_at: rec.uploadExpiresAt,
          source_digest: rec.sourceDigest,
          source_bytes: rec.sourceBytes,
          image: rec.image,
          error: rec.error,
          attempts: rec.attempts,
          lease_owner: rec.leaseOwner,
          lease_expires_at: rec.leaseExpiresAt,
          observed_at: rec.observedAt,
          stats: JSON.stringify(rec.stats),
          created_at: rec.createdAt,
          updated_at: rec.updatedAt,
          started_at: rec.startedAt,
          finished_at: rec.finishedAt,
        })
        .execute(),
    );
    return rec;
  }

  async get(id: string): Promise<BuildRecord | null> {
    const r = await this.db.selectFrom("builds").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toBuild(r) : null;
  }

  async findByUploadToken(hash: string, now: string): Promise<BuildRecord | null> {
    const r = await this.db
      .selectFrom("builds")
      .selectAll()
      .where("upload_token_hash", "=", hash)
      .where("upload_expires_at", ">", now)
      .where("status", "=", "UPLOADING")
      .executeTakeFirst();
    return r ? toBuild(r) : null;
  }

  async listForResource(workspaceId: string, resourceType: string, resourceName: string, limit = 20): Promise<BuildRecord[]> {
    const rows = await this.db
      .selectFrom("builds")
      .selectAll()
      .where("workspace_id", "=", workspaceId)
      .where("resource_type", "=", resourceType)
      .where("resource_name", "=", resourceName)
      .orderBy("created_at", "desc")
      .orderBy("id", "desc")
      .limit(limit)
      .execute();
    return rows.map(toBuild);
  }

  async listByStatus(statuses: BuildStatus[]): Promise<BuildRecord[]> {
    if (!statuses.length) return [];
    const rows = await this.db.selectFrom("builds").selectAll().where("status", "in", statuses).orderBy("created_at", "asc").execute();
    return rows.map(toBuild);
  }

  async update(id: string, patch: Partial<Omit<BuildRecord, "id" | "workspaceId" | "createdAt">> & { uploadTokenHash?: null }, fromStatuses?: BuildStatus[]): Promise<BuildRecord | null> {
    const values: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(patch)) {
      const col = COLUMNS[k];
      if (!col || v === undefined) continue;
      values[col] = k === "stats" ? JSON.stringify(v) : v;
    }
    let q = this.db.updateTable("builds").set(values).where("id", "=", id);
    if (fromStatuses) q = q.where("status", "in", fromStatuses);
    const r = await q.executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) return null;
    return this.get(id);
  }

  async claim(owner: string, now: string, leaseUntil: string): Promise<BuildRecord | null> {
    for (let i = 0; i < 5; i++) {
      const cand = await this.db
        .selectFrom("builds")
        .select(["id", "status"])
        .where((eb) => eb.or([eb("status", "=", "QUEUED"), eb.and([eb("status", "=", "BUILDING"), eb("lease_expires_at", "<", now)])]))
        .orderBy("created_at", "asc")
        .limit(1)
        .executeTakeFirst();
      if (!cand) return null;
      const r = await this.db
        .updateTable("builds")
        .set((eb) => ({ status: "BUILDING", lease_owner: owner, lease_expires_at: leaseUntil, attempts: eb("attempts", "+", 1), updated_at: now }))
        .where("id", "=", cand.id)
        .where((eb) => eb.or([eb("status", "=", "QUEUED"), eb.and([eb("status", "=", "BUILDING"), eb("lease_expires_at", "<", now)])]))
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 1) return this.get(cand.id);
    }
    return null;
  }

  async renew(id: string, owner: string, leaseUntil: string): Promise<boolean> {
    const r = await this.db
      .updateTable("builds")
      .set({ lease_expires_at: leaseUntil })
      .where("id", "=", id)
      .where("lease_owner", "=", owner)
      .where("status", "=", "BUILDING")
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async appendLogs(buildId: string, lines: Omit<BuildLogLine, "seq">[]): Promise<void> {
    if (!lines.length) return;
    const last = await this.db.selectFrom("build_logs").select((eb) => eb.fn.max("seq").as("m")).where("build_id", "=", buildId).executeTakeFirst();
    let seq = Number(last?.m ?? 0);
    await this.db
      .insertInto("build_logs")
      .values(lines.map((l) => ({ build_id: buildId, seq: ++seq, time: l.time, severity: l.severity, message: l.message })))
      .execute();
  }

  async logs(buildId: string, afterSeq = 0, limit = 10_000): Promise<BuildLogLine[]> {
    const rows = await this.db
      .selectFrom("build_logs")
      .select(["seq", "time", "severity", "message"])
      .where("build_id", "=", buildId)
      .where("seq", ">", afterSeq)
      .orderBy("seq", "asc")
      .limit(limit)
      .execute();
    return rows;
  }

  async delete(id: string): Promise<boolean> {
    await this.db.deleteFrom("build_logs").where("build_id", "=", id).execute();
    const r = await this.db.deleteFrom("builds").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}
