// Workloads (agents, functions), their revisions and the replicas that run them, over Kysely.

import type { Kysely, Selectable, Transaction, Updateable } from "kysely";
import type { Database, ReplacementTable, ReplicaTable, RevisionTable, WorkloadTable } from "./schema.js";
import { keysetPage, mapConflict, queryFingerprint } from "./sql-util.js";
import type { ListQuery, Page, ReplacementRecord, ReplicaRecord, RevisionRecord, WorkloadRecord, WorkloadRepo } from "./store.js";

type Db = Kysely<Database> | Transaction<Database>;

function toWorkload(r: Selectable<WorkloadTable>): WorkloadRecord {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    kind: r.kind,
    name: r.name,
    displayName: r.display_name,
    labels: JSON.parse(r.labels) as Record<string, string>,
    spec: JSON.parse(r.spec) as Record<string, unknown>,
    status: r.status,
    events: JSON.parse(r.events) as WorkloadRecord["events"],
    activeRevision: r.active_revision,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: r.version,
  };
}

function toRevision(r: Selectable<RevisionTable>): RevisionRecord {
  return { id: r.id, workloadId: r.workload_id, image: r.image, runtime: JSON.parse(r.runtime) as Record<string, unknown>, status: r.status, message: r.message, createdAt: r.created_at };
}

function toReplica(r: Selectable<ReplicaTable>): ReplicaRecord {
  return { id: r.id, workloadId: r.workload_id, revisionId: r.revision_id, node: r.node, status: r.status, createdAt: r.created_at };
}

function toReplacement(r: Selectable<ReplacementTable>): ReplacementRecord {
  return {
    id: r.id,
    workloadId: r.workload_id,
    status: r.status,
    strategy: r.strategy,
    config: JSON.parse(r.config) as ReplacementRecord["config"],
    artifact: r.artifact,
    candidateRevision: r.candidate_revision,
    previousRevision: r.previous_revision,
    message: r.message,
    createdAt: r.created_at,
    readyAt: r.ready_at,
    switchedAt: r.switched_at,
    finishedAt: r.finished_at,
  };
}

export class SqlWorkloadRepo implements WorkloadRepo {
  constructor(private readonly db: Db) {}

  async insert(rec: WorkloadRecord): Promise<WorkloadRecord> {
    await mapConflict(
      this.db
        .insertInto("workloads")
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
          active_revision: rec.activeRevision,
          created_at: rec.createdAt,
          updated_at: rec.updatedAt,
          version: rec.version,
        })
        .execute(),
    );
    return rec;
  }

  async get(workspaceId: string, kind: string, name: string): Promise<WorkloadRecord | null> {
    const r = await this.db.selectFrom("workloads").selectAll().where("workspace_id", "=", workspaceId).where("kind", "=", kind).where("name", "=", name).executeTakeFirst();
    return r ? toWorkload(r) : null;
  }

  async getById(id: string): Promise<WorkloadRecord | null> {
    const r = await this.db.selectFrom("workloads").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toWorkload(r) : null;
  }

  list(workspaceId: string, kind: string, query: ListQuery): Promise<Page<WorkloadRecord>> {
    let base = this.db.selectFrom("workloads").where("workspace_id", "=", workspaceId).where("kind", "=", kind);
    if (query.statuses?.length) base = base.where("status", "in", query.statuses);
    const fp = queryFingerprint([workspaceId, kind, query.sort, query.q ?? "", query.statuses ?? [], query.labels ?? {}]);
    return keysetPage(base, (q) => q, query, fp, toWorkload);
  }

  async listAll(): Promise<WorkloadRecord[]> {
    return (await this.db.selectFrom("workloads").selectAll().execute()).map(toWorkload);
  }

  async update(id: string, patch: Partial<Pick<WorkloadRecord, "displayName" | "labels" | "spec" | "status" | "events" | "activeRevision" | "updatedAt">>, expectedVersion?: number): Promise<WorkloadRecord | null> {
    const values: Partial<Record<keyof WorkloadTable, unknown>> = {};
    if (patch.displayName !== undefined) values.display_name = patch.displayName;
    if (patch.labels !== undefined) values.labels = JSON.stringify(patch.labels);
    if (patch.spec !== undefined) values.spec = JSON.stringify(patch.spec);
    if (patch.status !== undefined) values.status = patch.status;
    if (patch.events !== undefined) values.events = JSON.stringify(patch.events);
    if (patch.activeRevision !== undefined) values.active_revision = patch.activeRevision;
    if (patch.updatedAt !== undefined) values.updated_at = patch.updatedAt;
    let q = this.db
      .updateTable("workloads")
      .set((eb) => ({ ...(values as Partial<WorkloadTable>), version: eb("version", "+", 1) }))
      .where("id", "=", id);
    if (expectedVersion !== undefined) q = q.where("version", "=", expectedVersion);
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows) ? this.getById(id) : null;
  }

  async delete(id: string): Promise<boolean> {
    await this.db.deleteFrom("replicas").where("workload_id", "=", id).execute();
    await this.db.deleteFrom("revisions").where("workload_id", "=", id).execute();
    const r = await this.db.deleteFrom("workloads").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async insertRevision(rec: RevisionRecord): Promise<RevisionRecord> {
    await this.db
      .insertInto("revisions")
      .values({ id: rec.id, workload_id: rec.workloadId, image: rec.image, runtime: JSON.stringify(rec.runtime), status: rec.status, message: rec.message, created_at: rec.createdAt })
      .execute();
    return rec;
  }

  async getRevision(id: string): Promise<RevisionRecord | null> {
    const r = await this.db.selectFrom("revisions").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toRevision(r) : null;
  }

  async listRevisions(workloadId: string): Promise<RevisionRecord[]> {
    const rows = await this.db.selectFrom("revisions").selectAll().where("workload_id", "=", workloadId).orderBy("created_at", "desc").orderBy("id", "desc").execute();
    return rows.map(toRevision);
  }

  async updateRevision(id: string, patch: Partial<Pick<RevisionRecord, "status" | "message">>): Promise<void> {
    await this.db.updateTable("revisions").set({ ...(patch.status !== undefined ? { status: patch.status } : {}), ...(patch.message !== undefined ? { message: patch.message } : {}) }).where("id", "=", id).execute();
  }

  async deleteRevision(id: string): Promise<void> {
    await this.db.deleteFrom("revisions").where("id", "=", id).execute();
  }

  async insertReplica(rec: ReplicaRecord): Promise<ReplicaRecord> {
    await this.db
      .insertInto("replicas")
      .values({ id: rec.id, workload_id: rec.workloadId, revision_id: rec.revisionId, node: rec.node, status: rec.status, created_at: rec.createdAt })
      .execute();
    return rec;
  }

  async listReplicas(workloadId?: string): Promise<ReplicaRecord[]> {
    let q = this.db.selectFrom("replicas").selectAll();
    if (workloadId) q = q.where("workload_id", "=", workloadId);
    return (await q.orderBy("created_at", "asc").execute()).map(toReplica);
  }

  async updateReplica(id: string, patch: Partial<Pick<ReplicaRecord, "status">>): Promise<void> {
    if (patch.status !== undefined) await this.db.updateTable("replicas").set({ status: patch.status }).where("id", "=", id).execute();
  }

  async deleteReplica(id: string): Promise<void> {
    await this.db.deleteFrom("replicas").where("id", "=", id).execute();
  }

  async insertReplacement(rec: ReplacementRecord): Promise<ReplacementRecord> {
    await this.db
      .insertInto("replacements")
      .values({
        id: rec.id,
        workload_id: rec.workloadId,
        status: rec.status,
        strategy: rec.strategy,
        config: JSON.stringify(rec.config),
        artifact: rec.artifact,
        candidate_revision: rec.candidateRevision,
        previous_revision: rec.previousRevision,
        message: rec.message,
        created_at: rec.createdAt,
        ready_at: rec.readyAt,
        switched_at: rec.switchedAt,
        finished_at: rec.finishedAt,
      })
      .execute();
    return rec;
  }

  async updateReplacement(id: string, patch: Partial<Omit<ReplacementRecord, "id" | "workloadId" | "createdAt">>): Promise<ReplacementRecord | null> {
    const set: Updateable<ReplacementTable> = {};
    if (patch.status !== undefined) set.status = patch.status;
    if (patch.strategy !== undefined) set.strategy = patch.strategy;
    if (patch.config !== undefined) set.config = JSON.stringify(patch.config);
    if (patch.artifact !== undefined) set.artifact = patch.artifact;
    if (patch.candidateRevision !== undefined) set.candidate_revision = patch.candidateRevision;
    if (patch.previousRevision !== undefined) set.previous_revision = patch.previousRevision;
    if (patch.message !== undefined) set.message = patch.message;
    if (patch.readyAt !== undefined) set.ready_at = patch.readyAt;
    if (patch.switchedAt !== undefined) set.switched_at = patch.switchedAt;
    if (patch.finishedAt !== undefined) set.finished_at = patch.finishedAt;
    if (Object.keys(set).length) await this.db.updateTable("replacements").set(set).where("id", "=", id).execute();
    const row = await this.db.selectFrom("replacements").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toReplacement(row) : null;
  }

  async listReplacements(workloadId?: string): Promise<ReplacementRecord[]> {
    let q = this.db.selectFrom("replacements").selectAll();
    if (workloadId) q = q.where("workload_id", "=", workloadId);
    return (await q.orderBy("created_at", "desc").orderBy("id", "desc").execute()).map(toReplacement);
  }
}
