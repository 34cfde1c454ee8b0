// API keys: created with their secret shown once, stored hashed, listed, revoked.

import { HangarError, parseDuration, randomId } from "@hangar/common";
import type { ApiKeyRecord, Store } from "@hangar/store";
import { type Principal, hashApiKey, newApiKey } from "./auth-service.js";

export interface CreatedApiKey {
  record: ApiKeyRecord;
  /** The key itself; never retrievable again. */
  key: string;
}

export interface CreateApiKeyInput {
  name: string;
  workspaceIds: string[];
  admin?: boolean;
  /** Duration such as "30d"; absent = never expires. */
  expiresIn?: string | undefined;
  /** Use this key instead of generating one (bootstrap automation). */
  key?: string;
}

export class ApiKeyService {
  /** `onChange` runs after keys are created or revoked (e.g. to drop cached keys). */
  constructor(
    private readonly store: Store,
    private readonly onChange: () => void = () => {},
  ) {}

  async create(input: CreateApiKeyInput): Promise<CreatedApiKey> {
    const key = input.key ?? newApiKey();
    const now = new Date();
    const record: ApiKeyRecord = {
      id: `ak_${randomId(16)}`,
      name: input.name,
      prefix: keyPrefix(key),
      admin: input.admin ?? false,
      createdAt: now.toISOString(),
      expiresAt: input.expiresIn ? new Date(now.getTime() + parseDuration(input.expiresIn, "expires_in")).toISOString() : null,
      lastUsedAt: null,
      revokedAt: null,
      workspaceIds: input.workspaceIds,
    };
    await this.store.apiKeys.create(record, hashApiKey(key));
    this.onChange();
    return { record, key };
  }

  /** Creates a key on behalf of a caller, who may only grant what it holds. */
  async createFor(principal: Principal, input: Omit<CreateApiKeyInput, "key">): Promise<CreatedApiKey> {
    if (input.admin && !principal.admin) throw new HangarError("forbidden", "only an admin key can create admin keys");
    for (const ws of input.workspaceIds) {
      if (!principal.workspaceIds.has(ws)) throw new HangarError("forbidden", "a key can only be granted workspaces its creator reaches");
    }
    return this.create(input);
  }

  async list(workspaceId: string): Promise<ApiKeyRecord[]> {
    return this.store.apiKeys.list(workspaceId);
  }

  /** Revokes a key; the caller must reach every workspace the key reaches (or be admin). */
  async revoke(principal: Principal, id: string): Promise<ApiKeyRecord> {
    const key = await this.store.apiKeys.get(id);
    if (!key || !(principal.admin || key.workspaceIds.every((w) => principal.workspaceIds.has(w)))) {
      throw new HangarError("api_key_not_found", `no API key '${id}'`);
    }
    await this.store.apiKeys.revoke(id, new Date().toISOString());
    this.onChange();
    return (await this.store.apiKeys.get(id))!;
  }

  /**
   * A workload's own key (an agent's replicas, a job's tasks), reaching its workspace only. The
   * caller derives `key` from the workload's id, so it is never stored in clear; the record is
   * created on first use and listed with the workspace's keys under `name`.
   */
  async ensureKey(name: string, workspaceId: string, key: string): Promise<void> {
    if (!(await this.exists(key))) await this.create({ name, workspaceIds: [workspaceId], key });
  }

  /** Revokes the key with this value, if stored (a workload deleted). */
  async revokeKey(key: string): Promise<void> {
    const rec = await this.store.apiKeys.findByHash(hashApiKey(key));
    if (!rec || rec.revokedAt) return;
    await this.store.apiKeys.revoke(rec.id, new Date().toISOString());
    this.onChange();
  }

  /** True when the hash of `key` is already stored. */
  async exists(key: string): Promise<boolean> {
    return (await this.store.apiKeys.findByHash(hashApiKey(key))) !== null;
  }
}

/** The API shape of a key (never the key or its hash). */
/**
 * The part of a key shown in listings: "hgr_" and 4 random characters of a generated key (of 40
 * random ones); at most a quarter, and no more than 4 characters, of a key chosen by an operator.
 */
export function keyPrefix(key: string): string {
  return key.startsWith("hgr_") && key.length >= 32 ? key.slice(0, 8) : key.slice(0, Math.min(4, Math.floor(key.length / 4)));
}

/**
 * A key as the API shows it. `reach`: the workspaces the viewer may know of (others are left
 * out); all when absent.
 */
export function apiKeyView(k: ApiKeyRecord, workspaceNames: Map<string, string>, key?: string, reach?: (workspaceId: string) => boolean): Record<string, unknown> {
  return {
    id: k.id,
    name: k.name,
    prefix: k.prefix.length > 8 ? k.prefix.slice(0, 8) : k.prefix,
    admin: k.admin,
    workspaces: k.workspaceIds.filter((w) => !reach || reach(w)).map((w) => workspaceNames.get(w) ?? w),
    createdAt: k.createdAt,
    expiresAt: k.expiresAt,
    lastUsedAt: k.lastUsedAt,
    revokedAt: k.revokedAt,
    ...(key ? { apiKey: key } : {}),
  };
}
