// The Store interface: everything Hangar persists, as plain records. Services depend on this
// interface only; SqlStore implements it over Kysely, so SQLite (embedded default) and
// PostgreSQL (scale-out) share one implementation.

export interface WorkspaceRecord {
  id: string;
  name: string;
  displayName: string;
  labels: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

export interface ApiKeyRecord {
  id: string;
  name: string;
  prefix: string;
  admin: boolean;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
  workspaceIds: string[];
}

export interface SandboxEvent {
  type: string;
  status: string;
  message: string;
  time: string;
  revision?: string;
}

export interface SandboxRecord {
  id: string;
  workspaceId: string;
  name: string;
  externalId: string | null;
  displayName: string;
  labels: Record<string, string>;
  status: string;
  state: string;
  /** The stored spec document (secrets already encrypted by the caller). */
  spec: Record<string, unknown>;
  events: SandboxEvent[];
  node: string;
  createdAt: string;
  updatedAt: string;
  lastUsedAt: string;
  expiresAt: string | null;
  terminatedAt: string | null;
  version: number;
}

export type SortSpec = "createdAt:desc" | "createdAt:asc" | "name:asc" | "name:desc";

export interface ListQuery {
  sort: SortSpec;
  limit: number;
  cursor?: string | undefined;
  /** Return the last page directly (createdAt sorts only). */
  anchorEnd?: boolean;
  /** Lowercased substring over name, displayName and labels. */
  q?: string | undefined;
  statuses?: string[] | undefined;
  externalId?: string | undefined;
  /** Exact label matches, all required. */
  labels?: Record<string, string> | undefined;
  showTerminated?: boolean;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
  /** Items in the workspace regardless of this page's filters. */
  total: number;
}

/** Thrown when an insert or update would violate a uniqueness rule. */
export class StoreConflictError extends Error {
  constructor(message = "conflict") {
    super(message);
    this.name = "StoreConflictError";
  }
}

/** Thrown when a cursor is malformed or belongs to another query. */
export class StoreCursorError extends Error {
  constructor(message = "invalid cursor") {
    super(message);
    this.name = "StoreCursorError";
  }
}

export interface WorkspaceRepo {
  create(rec: WorkspaceRecord): Promise<WorkspaceRecord>;
  getByName(name: string): Promise<WorkspaceRecord | null>;
  getById(id: string): Promise<WorkspaceRecord | null>;
  list(ids?: string[]): Promise<WorkspaceRecord[]>;
  update(id: string, patch: Partial<Pick<WorkspaceRecord, "displayName" | "labels" | "updatedAt">>): Promise<WorkspaceRecord | null>;
  delete(id: string): Promise<boolean>;
}

export interface ApiKeyRepo {
  create(rec: ApiKeyRecord, hash: string): Promise<ApiKeyRecord>;
  findByHash(hash: string): Promise<ApiKeyRecord | null>;
  get(id: string): Promise<ApiKeyRecord | null>;
  /** Keys that reach the workspace (or all keys). */
  list(workspaceId?: string): Promise<ApiKeyRecord[]>;
  revoke(id: string, at: string): Promise<boolean>;
  grant(keyId: string, workspaceId: string): Promise<void>;
  touch(id: string, at: string): Promise<void>;
}

export interface SandboxRepo {
  /** Inserts a new sandbox; StoreConflictError if a live one has the name. */
  insert(rec: SandboxRecord): Promise<SandboxRecord>;
  get(workspaceId: string, name: string): Promise<SandboxRecord | null>;
  getById(id: string): Promise<SandboxRecord | null>;
  getByExternalId(workspaceId: string, externalId: string): Promise<SandboxRecord | null>;
  list(workspaceId: string, query: ListQuery): Promise<Page<SandboxRecord>>;
  /** Every record not yet deleted, across workspaces (adoption, reaper). */
  listAll(): Promise<SandboxRecord[]>;
  /**
   * Applies a patch; with expectedVersion, only if the record still has it (returns null otherwise).
   * Bumps version.
   */
  update(id: string, patch: Partial<Omit<SandboxRecord, "id" | "workspaceId" | "createdAt" | "version">>, expectedVersion?: number): Promise<SandboxRecord | null>;
  delete(id: string): Promise<boolean>;
}

export interface Store {
  readonly dialect: "sqlite" | "postgres";
  readonly workspaces: WorkspaceRepo;
  readonly apiKeys: ApiKeyRepo;
  readonly sandboxes: SandboxRepo;
  /** Runs fn in one transaction; repos passed to fn act inside it. */
  transaction<T>(fn: (tx: Omit<Store, "transaction" | "close">) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
