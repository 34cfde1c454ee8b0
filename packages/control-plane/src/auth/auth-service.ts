// Authentication of API keys and selection of the workspace a request acts in.

import { HangarError, TtlCache, randomToken, sha256Hex } from "@hangar/common";
import type { ApiKeyRecord, Store, WorkspaceRecord } from "@hangar/store";

export const API_KEY_PREFIX = "hgr_";

/** Who is calling: the key, and which workspaces it reaches. */
export interface Principal {
  keyId: string;
  keyName: string;
  admin: boolean;
  workspaceIds: ReadonlySet<string>;
}

export interface Credentials {
  /** Value of x-blaxel-authorization or Authorization. */
  authorization?: string | undefined;
  /** Value of x-blaxel-workspace or ?workspace=. */
  workspace?: string | undefined;
}

/** Extracts a bearer token from "Bearer <token>" (case-insensitive scheme). */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

export function newApiKey(): string {
  return API_KEY_PREFIX + randomToken(30);
}

export function hashApiKey(key: string): string {
  return sha256Hex(key);
}

export class AuthService {
  /** Last time each key's last_used_at was written; writes are throttled to one a minute. */
  private readonly touched = new Map<string, number>();
  /** Keys seen in the last second, by hash; cleared whenever a key or grant changes here. */
  private readonly keys = new TtlCache<string, ApiKeyRecord | null>(1_000);
  private readonly workspacesByName = new TtlCache<string, WorkspaceRecord | null>(1_000);

  constructor(private readonly store: Store) {}

  /** Forgets cached keys and workspaces (after a revocation, a grant or a workspace change). */
  invalidate(): void {
    this.keys.clear();
    this.workspacesByName.clear();
  }

  /** Resolves a key to a principal; 401 when missing, unknown, revoked or expired. */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    const token = bearerToken(authorization);
    if (!token) throw new HangarError("unauthorized", "missing API key: send 'Authorization: Bearer <key>' or 'x-blaxel-authorization: Bearer <key>'");
    const hash = hashApiKey(token);
    const key = await this.keys.getOrLoad(hash, () => this.store.apiKeys.findByHash(hash));
    if (!key || key.revokedAt) throw new HangarError("unauthorized", key ? "API key has been revoked" : "unknown API key");
    if (key.expiresAt && Date.parse(key.expiresAt) <= Date.now()) throw new HangarError("unauthorized", "API key has expired");
    this.touch(key);
    return { keyId: key.id, keyName: key.name, admin: key.admin, workspaceIds: new Set(key.workspaceIds) };
  }

  /**
   * The workspace a request acts in: the named one if the key reaches it, else the key's only
   * workspace. 403 (not 404) for a workspace the key does not reach, so existence is not leaked.
   */
  async resolveWorkspace(principal: Principal, name: string | undefined): Promise<WorkspaceRecord> {
    if (!name) {
      if (principal.workspaceIds.size === 1) {
        const ws = await this.store.workspaces.getById([...principal.workspaceIds][0]!);
        if (ws) return ws;
      }
      throw new HangarError("workspace_required", "select a workspace with the x-blaxel-workspace header or ?workspace=");
    }
    const ws = await this.workspacesByName.getOrLoad(name, () => this.store.workspaces.getByName(name));
    if (!ws || !principal.workspaceIds.has(ws.id)) {
      throw new HangarError("forbidden", `this API key has no access to workspace '${name}'`);
    }
    return ws;
  }

  private touch(key: ApiKeyRecord): void {
    const now = Date.now();
    if (now - (this.touched.get(key.id) ?? 0) < 60_000) return;
    this.touched.set(key.id, now);
    void this.store.apiKeys.touch(key.id, new Date(now).toISOString()).catch(() => undefined);
  }
}
