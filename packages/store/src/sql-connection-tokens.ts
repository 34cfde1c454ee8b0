// Access tokens of OAuth integration connections (sealed values) and their refresh leases, over Kysely.

import type { Kysely, Selectable, Transaction } from "kysely";
import type { ConnectionTokenTable, Database } from "./schema.js";
import type { ConnectionTokenRecord, ConnectionTokenRepo } from "./store.js";

type Db = Kysely<Database> | Transaction<Database>;

function toRecord(r: Selectable<ConnectionTokenTable>): ConnectionTokenRecord {
  return {
    workspaceId: r.workspace_id,
    connection: r.connection,
    source: r.source,
    accessToken: r.access_token,
    expiresAt: r.expires_at,
    error: r.error,
    refreshToken: r.refresh_token,
    leaseOwner: r.lease_owner,
    leaseUntil: r.lease_until,
    updatedAt: r.updated_at,
  };
}

export class SqlConnectionTokenRepo implements ConnectionTokenRepo {
  constructor(private readonly db: Db) {}

  async get(workspaceId: string, connection: string): Promise<ConnectionTokenRecord | null> {
    const r = await this.db.selectFrom("connection_tokens").selectAll().where("workspace_id", "=", workspaceId).where("connection", "=", connection).executeTakeFirst();
    return r ? toRecord(r) : null;
  }

  async claim(workspaceId: string, connection: string, owner: string, now: string, until: string): Promise<boolean> {
    await this.db
      .insertInto("connection_tokens")
      .values({ workspace_id: workspaceId, connection, source: "", access_token: null, expires_at: null, error: null, refresh_token: null, lease_owner: null, lease_until: null, updated_at: now })
      .onConflict((oc) => oc.columns(["workspace_id", "connection"]).doNothing())
      .execute();
    // the lease is taken only if nobody holds it (another server, another request)
    const r = await this.db
      .updateTable("connection_tokens")
      .set({ lease_owner: owner, lease_until: until })
      .where("workspace_id", "=", workspaceId)
      .where("connection", "=", connection)
      .where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<", now)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async save(workspaceId: string, connection: string, owner: string, patch: Pick<ConnectionTokenRecord, "source" | "accessToken" | "expiresAt" | "error" | "refreshToken">, now: string): Promise<boolean> {
    const r = await this.db
      .updateTable("connection_tokens")
      .set({ source: patch.source, access_token: patch.accessToken, expires_at: patch.expiresAt, error: patch.error, refresh_token: patch.refreshToken, lease_owner: null, lease_until: null, updated_at: now })
      .where("workspace_id", "=", workspaceId)
      .where("connection", "=", connection)
      .where("lease_owner", "=", owner)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async delete(workspaceId: string, connection: string): Promise<void> {
    await this.db.deleteFrom("connection_tokens").where("workspace_id", "=", workspaceId).where("connection", "=", connection).execute();
  }
}
