// Access tokens of OAuth integration connections: Hangar exchanges the connection's refresh token
// at the integration's token endpoint (grant_type=refresh_token, RFC 6749 §6), keeps the access
// token sealed in the store until near its expiry, and refreshes it under a lease in the store so
// two requests (or two servers) never refresh one connection at once. A refused refresh token
// (invalid_grant) is kept as the connection's error until the connection changes. A provider that
// rotates refresh tokens (a new refresh_token in the answer) has the new one kept, sealed, beside
// the access token and used from then on, until the connection's secrets change.

import { randomUUID } from "node:crypto";
import { HangarError, type Logger, silentLogger } from "@hangar/common";
import type { ConnectionTokenRecord, GatewayResourceRecord, SecretBox, Store } from "@hangar/store";
import type { ConnectionSpec } from "./gateway-service.js";
import { type EndpointOverrides, type McpIntegrationDef, MCP_INTEGRATIONS, integrationEndpoints } from "./integrations.js";

export interface ConnectionTokensOptions {
  store: Store;
  secrets: SecretBox;
  overrides?: EndpointOverrides;
  logger?: Logger;
  /** How long a refresh may hold the lease (default 15 s: the token request times out after 10 s). */
  leaseMs?: number;
  /** Transient failures (network, 5xx) are retried after this long (default 5 s). */
  retryMs?: number;
}

export interface AccessToken {
  accessToken: string;
  expiresAt: number;
}

/** Refused credentials: retrying cannot help until the connection changes. */
const PERMANENT = new Set(["invalid_grant", "invalid_client", "unauthorized_client"]);

/** How a permanent failure reads (kept until the connection changes). */
const REFUSED = "refused its credentials";

/** Refresh this long before expiry: a third of the token's life, at most a minute. */
function margin(rec: ConnectionTokenRecord): number {
  const life = Date.parse(rec.expiresAt!) - Date.parse(rec.updatedAt);
  return Math.min(60_000, Math.max(0, life / 3));
}

export class ConnectionTokens {
  private readonly owner = randomUUID();
  private readonly log: Logger;

  constructor(private readonly opts: ConnectionTokensOptions) {
    this.log = opts.logger ?? silentLogger;
  }

  /** The integration an MCP connection is of (null for model providers' connections). */
  integrationOf(conn: GatewayResourceRecord): McpIntegrationDef | null {
    return MCP_INTEGRATIONS.get((conn.spec as unknown as ConnectionSpec).integration) ?? null;
  }

  endpoints(conn: GatewayResourceRecord) {
    const def = this.integrationOf(conn);
    return def ? integrationEndpoints(def, this.opts.overrides ?? {}, (conn.spec as unknown as ConnectionSpec).config ?? {}) : null;
  }

  /** Why the connection's credentials fail now (the last refresh's error), or null. */
  async problem(workspaceId: string, name: string): Promise<string | null> {
    const conn = await this.opts.store.gateway.get(workspaceId, "connections", name);
    if (!conn) return `integration connection '${name}' not found`;
    const rec = await this.opts.store.connectionTokens.get(workspaceId, name);
    return rec && rec.source === source(conn) && rec.error ? rec.error : null;
  }

  /** A valid access token of the connection: the stored one, else a new one from the token endpoint. */
  async token(workspaceId: string, name: string): Promise<AccessToken> {
    const repo = this.opts.store.connectionTokens;
    const deadline = Date.now() + (this.opts.leaseMs ?? 15_000) + 5_000;
    for (;;) {
      const conn = await this.opts.store.gateway.get(workspaceId, "connections", name);
      if (!conn) throw new HangarError("not_found", `integration connection '${name}' not found`);
      const def = this.integrationOf(conn);
      if (!def) throw new HangarError("validation_failed", `integration connection '${name}' is not of an MCP integration`);
      const rec = await repo.get(workspaceId, name);
      const now = Date.now();
      if (rec && rec.source === source(conn)) {
        if (rec.accessToken && rec.expiresAt && Date.parse(rec.expiresAt) - now > margin(rec)) return { accessToken: this.opts.secrets.open(rec.accessToken), expiresAt: Date.parse(rec.expiresAt) };
        // a refused refresh token stays refused; a transient failure is retried after a while
        if (rec.error && (rec.error.includes(REFUSED) || now - Date.parse(rec.updatedAt) < (this.opts.retryMs ?? 5_000))) {
          throw new HangarError("connection_failed", rec.error);
        }
      }
      const until = new Date(now + (this.opts.leaseMs ?? 15_000)).toISOString();
      if (await repo.claim(workspaceId, name, this.owner, new Date(now).toISOString(), until)) return this.refresh(conn, def, rec?.source === source(conn) ? rec.refreshToken : null);
      // another request or server is refreshing it: its result lands in the store
      if (Date.now() > deadline) throw new HangarError("upstream_timeout", `refreshing the access token of integration connection '${name}' took too long`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Forgets the stored token (the connection was deleted). */
  forget(workspaceId: string, name: string): Promise<void> {
    return this.opts.store.connectionTokens.delete(workspaceId, name);
  }

  /** Gets a new access token with the rotated refresh token `rotated` (sealed) if any, else the connection's. */
  private async refresh(conn: GatewayResourceRecord, def: McpIntegrationDef, rotated: string | null): Promise<AccessToken> {
    const repo = this.opts.store.connectionTokens;
    const spec = conn.spec as unknown as ConnectionSpec;
    const { tokenUrl } = integrationEndpoints(def, this.opts.overrides ?? {}, spec.config ?? {});
    const secret = (k: string) => (spec.secret?.[k] ? this.opts.secrets.open(spec.secret[k]!) : "");
    const refreshToken = rotated ? this.opts.secrets.open(rotated) : secret("REFRESH_TOKEN");
    const save = (patch: Pick<ConnectionTokenRecord, "accessToken" | "expiresAt" | "error">, refresh = rotated) =>
      repo.save(conn.workspaceId, conn.name, this.owner, { source: source(conn), ...patch, refreshToken: refresh }, new Date().toISOString());
    let error: string;
    try {
      const res = await fetch(tokenUrl, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: secret("CLIENT_ID"), client_secret: secret("CLIENT_SECRET") }).toString(),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // not JSON: reported by status below
      }
      if (res.ok && typeof body.access_token === "string" && body.access_token) {
        const expiresIn = Number(body.expires_in ?? 3600);
        const expiresAt = Date.now() + (Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 3600) * 1000;
        // a rotated refresh token replaces the one used (which the provider may now refuse)
        const next = typeof body.refresh_token === "string" && body.refresh_token && body.refresh_token !== refreshToken ? this.opts.secrets.seal(body.refresh_token) : rotated;
        await save({ accessToken: this.opts.secrets.seal(body.access_token), expiresAt: new Date(expiresAt).toISOString(), error: null }, next);
        this.log.info({ connection: conn.name, workspace: conn.workspaceId, source: source(conn), expiresIn, rotated: next !== rotated }, "integration access token refreshed");
        return { accessToken: body.access_token, expiresAt };
      }
      const code = typeof body.error === "string" ? body.error : "";
      const desc = typeof body.error_description === "string" ? `: ${body.error_description.slice(0, 200)}` : "";
      error = PERMANENT.has(code)
        ? `integration connection '${conn.name}': ${def.displayName}'s token endpoint ${REFUSED} (${code}${desc}); the refresh token was revoked or expired, or the client is wrong: update the connection's secrets`
        : `integration connection '${conn.name}': ${def.displayName}'s token endpoint answered ${res.status}${code ? ` (${code}${desc})` : ""}`;
    } catch (e) {
      error = `integration connection '${conn.name}': ${def.displayName}'s token endpoint is unreachable (${e instanceof Error ? e.message : String(e)})`;
    }
    await save({ accessToken: null, expiresAt: null, error });
    this.log.warn({ connection: conn.name, workspace: conn.workspaceId, source: source(conn), error }, "integration access token refresh failed");
    throw new HangarError("connection_failed", error);
  }
}

/** What a stored token was got with: the connection's id and version (a change of its secrets makes it stale). */
function source(conn: GatewayResourceRecord): string {
  return `${conn.id}:${conn.version}`;
}
