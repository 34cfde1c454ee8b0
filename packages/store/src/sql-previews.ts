// Previews, their tokens, and custom domains, over Kysely.

import type { Kysely, Selectable, Transaction } from "kysely";
import type { CustomDomainTable, Database, PreviewTable } from "./schema.js";
import { mapConflict } from "./sql-util.js";
import { StoreConflictError } from "./store.js";
import type { CustomDomainRecord, CustomDomainRepo, PreviewRecord, PreviewRepo, PreviewTokenRecord } from "./store.js";

type Db = Kysely<Database> | Transaction<Database>;

function toPreview(r: Selectable<PreviewTable>): PreviewRecord {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    sandboxId: r.sandbox_id,
    name: r.name,
    label: r.label,
    port: r.port,
    public: r.public === 1,
    prefixUrl: r.prefix_url,
    customDomain: r.custom_domain,
    requestHeaders: JSON.parse(r.request_headers) as Record<string, string>,
    responseHeaders: JSON.parse(r.response_headers) as Record<string, string>,
    expiresAt: r.expires_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    hostPort: r.host_port ?? null,
  };
}

export class SqlPreviewRepo implements PreviewRepo {
  constructor(private readonly db: Db) {}

  async insert(rec: PreviewRecord): Promise<PreviewRecord> {
    await mapConflict(
      this.db
        .insertInto("previews")
        .values({
          id: rec.id,
          workspace_id: rec.workspaceId,
          sandbox_id: rec.sandboxId,
          name: rec.name,
          label: rec.label,
          port: rec.port,
          public: rec.public ? 1 : 0,
          prefix_url: rec.prefixUrl,
          custom_domain: rec.customDomain,
          request_headers: JSON.stringify(rec.requestHeaders),
          response_headers: JSON.stringify(rec.responseHeaders),
          expires_at: rec.expiresAt,
          created_at: rec.createdAt,
          updated_at: rec.updatedAt,
          host_port: rec.hostPort ?? null,
        })
        .execute(),
    );
    return rec;
  }

  private async one(where: (q: ReturnType<SqlPreviewRepo["base"]>) => ReturnType<SqlPreviewRepo["base"]>): Promise<PreviewRecord | null> {
    const r = await where(this.base()).executeTakeFirst();
    return r ? toPreview(r) : null;
  }

  private base() {
    return this.db.selectFrom("previews").selectAll();
  }

  get(sandboxId: string, name: string): Promise<PreviewRecord | null> {
    return this.one((q) => q.where("sandbox_id", "=", sandboxId).where("name", "=", name));
  }

  getByLabel(label: string): Promise<PreviewRecord | null> {
    return this.one((q) => q.where("label", "=", label));
  }

  getByCustomDomain(domain: string): Promise<PreviewRecord | null> {
    return this.one((q) => q.where("custom_domain", "=", domain));
  }

  async list(sandboxId: string): Promise<PreviewRecord[]> {
    return (await this.base().where("sandbox_id", "=", sandboxId).orderBy("created_at").execute()).map(toPreview);
  }

  async update(id: string, patch: Partial<Omit<PreviewRecord, "id" | "workspaceId" | "sandboxId" | "createdAt">>): Promise<PreviewRecord | null> {
    const v: Partial<PreviewTable> = {};
    if (patch.name !== undefined) v.name = patch.name;
    if (patch.label !== undefined) v.label = patch.label;
    if (patch.port !== undefined) v.port = patch.port;
    if (patch.public !== undefined) v.public = patch.public ? 1 : 0;
    if (patch.prefixUrl !== undefined) v.prefix_url = patch.prefixUrl;
    if (patch.customDomain !== undefined) v.custom_domain = patch.customDomain;
    if (patch.requestHeaders !== undefined) v.request_headers = JSON.stringify(patch.requestHeaders);
    if (patch.responseHeaders !== undefined) v.response_headers = JSON.stringify(patch.responseHeaders);
    if (patch.expiresAt !== undefined) v.expires_at = patch.expiresAt;
    if (patch.updatedAt !== undefined) v.updated_at = patch.updatedAt;
    if (patch.hostPort !== undefined) v.host_port = patch.hostPort;
    if (Object.keys(v).length) await mapConflict(this.db.updateTable("previews").set(v).where("id", "=", id).execute());
    return this.one((q) => q.where("id", "=", id));
  }

  async delete(id: string): Promise<boolean> {
    await this.db.deleteFrom("preview_tokens").where("preview_id", "=", id).execute();
    const r = await this.db.deleteFrom("previews").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async deleteForSandbox(sandboxId: string): Promise<number> {
    const ids = (await this.db.selectFrom("previews").select("id").where("sandbox_id", "=", sandboxId).execute()).map((r) => r.id);
    if (ids.length) await this.db.deleteFrom("preview_tokens").where("preview_id", "in", ids).execute();
    const r = await this.db.deleteFrom("previews").where("sandbox_id", "=", sandboxId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async listExpired(before: string): Promise<PreviewRecord[]> {
    return (await this.base().where("expires_at", "is not", null).where("expires_at", "<=", before).execute()).map(toPreview);
  }

  getByHostPort(port: number): Promise<PreviewRecord | null> {
    return this.one((q) => q.where("host_port", "=", port));
  }

  async listHostPorts(): Promise<number[]> {
    const rows = await this.db.selectFrom("previews").select("host_port").where("host_port", "is not", null).orderBy("host_port").execute();
    return rows.map((r) => r.host_port!);
  }

  async claimHostPort(id: string, first: number, last: number, skip: ReadonlySet<number> = new Set()): Promise<number | null> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const used = new Set(
        (await this.db.selectFrom("previews").select("host_port").where("host_port", ">=", first).where("host_port", "<=", last).execute()).map((r) => r.host_port!),
      );
      // after the highest port in use first (a freed port is not handed out again at once), then from the bottom
      const top = used.size ? Math.max(...used) : first - 1;
      let port: number | null = null;
      for (let i = 1; i <= last - first + 1 && port === null; i++) {
        const p = first + ((top - first + i) % (last - first + 1));
        if (!used.has(p) && !skip.has(p)) port = p;
      }
      if (port === null) return null;
      try {
        await mapConflict(this.db.updateTable("previews").set({ host_port: port }).where("id", "=", id).execute());
        return port;
      } catch (e) {
        if (!(e instanceof StoreConflictError)) throw e;
        // another process took it meanwhile: look again
      }
    }
    return null;
  }

  async insertToken(rec: PreviewTokenRecord, hash: string): Promise<PreviewTokenRecord> {
    await mapConflict(
      this.db
        .insertInto("preview_tokens")
        .values({ id: rec.id, preview_id: rec.previewId, name: rec.name, hash, sealed: rec.sealed, expires_at: rec.expiresAt, created_at: rec.createdAt })
        .execute(),
    );
    return rec;
  }

  async listTokens(previewId: string): Promise<PreviewTokenRecord[]> {
    const rows = await this.db.selectFrom("preview_tokens").selectAll().where("preview_id", "=", previewId).orderBy("created_at").orderBy("id").execute();
    return rows.map((r) => ({ id: r.id, previewId: r.preview_id, name: r.name, sealed: r.sealed, expiresAt: r.expires_at, createdAt: r.created_at }));
  }

  async findTokenByHash(hash: string): Promise<PreviewTokenRecord | null> {
    const r = await this.db.selectFrom("preview_tokens").selectAll().where("hash", "=", hash).executeTakeFirst();
    return r ? { id: r.id, previewId: r.preview_id, name: r.name, sealed: r.sealed, expiresAt: r.expires_at, createdAt: r.created_at } : null;
  }

  async deleteToken(previewId: string, name: string): Promise<boolean> {
    const r = await this.db.deleteFrom("preview_tokens").where("preview_id", "=", previewId).where("name", "=", name).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}

function toDomain(r: Selectable<CustomDomainTable>): CustomDomainRecord {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    name: r.name,
    status: r.status as CustomDomainRecord["status"],
    verificationToken: r.verification_token,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    verifiedAt: r.verified_at,
  };
}

export class SqlCustomDomainRepo implements CustomDomainRepo {
  constructor(private readonly db: Db) {}

  async insert(rec: CustomDomainRecord): Promise<CustomDomainRecord> {
    await mapConflict(
      this.db
        .insertInto("custom_domains")
        .values({
          id: rec.id,
          workspace_id: rec.workspaceId,
          name: rec.name,
          status: rec.status,
          verification_token: rec.verificationToken,
          created_at: rec.createdAt,
          updated_at: rec.updatedAt,
          verified_at: rec.verifiedAt,
        })
        .execute(),
    );
    return rec;
  }

  async get(workspaceId: string, name: string): Promise<CustomDomainRecord | null> {
    const r = await this.db.selectFrom("custom_domains").selectAll().where("workspace_id", "=", workspaceId).where("name", "=", name).executeTakeFirst();
    return r ? toDomain(r) : null;
  }

  async list(workspaceId: string): Promise<CustomDomainRecord[]> {
    return (await this.db.selectFrom("custom_domains").selectAll().where("workspace_id", "=", workspaceId).orderBy("name").execute()).map(toDomain);
  }

  async findCovering(workspaceId: string, host: string): Promise<CustomDomainRecord | null> {
    // The domain itself or any parent of it, verified, in the workspace.
    const labels = host.split(".");
    const candidates = labels.map((_, i) => labels.slice(i).join(".")).filter((d) => d.includes("."));
    if (!candidates.length) return null;
    const r = await this.db
      .selectFrom("custom_domains")
      .selectAll()
      .where("workspace_id", "=", workspaceId)
      .where("status", "=", "VERIFIED")
      .where("name", "in", candidates)
      .executeTakeFirst();
    return r ? toDomain(r) : null;
  }

  async update(id: string, patch: Partial<Pick<CustomDomainRecord, "status" | "updatedAt" | "verifiedAt">>): Promise<CustomDomainRecord | null> {
    const v: Partial<CustomDomainTable> = {};
    if (patch.status !== undefined) v.status = patch.status;
    if (patch.updatedAt !== undefined) v.updated_at = patch.updatedAt;
    if (patch.verifiedAt !== undefined) v.verified_at = patch.verifiedAt;
    if (Object.keys(v).length) await this.db.updateTable("custom_domains").set(v).where("id", "=", id).execute();
    const r = await this.db.selectFrom("custom_domains").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toDomain(r) : null;
  }

  async delete(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom("custom_domains").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}
