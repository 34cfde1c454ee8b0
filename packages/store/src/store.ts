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

export interface PreviewRecord {
  id: string;
  workspaceId: string;
  sandboxId: string;
  name: string;
  /** DNS label it is served under (unique across the node). */
  label: string;
  port: number;
  public: boolean;
  prefixUrl: string | null;
  customDomain: string | null;
  requestHeaders: Record<string, string>;
  responseHeaders: Record<string, string>;
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
  /** The host port it is served on (port mode, app ports): unique in the store. */
  hostPort?: number | null;
}

export interface PreviewTokenRecord {
  id: string;
  previewId: string;
  name: string;
  /** The token, sealed with the SecretBox. */
  sealed: string;
  expiresAt: string;
  createdAt: string;
}

export interface CustomDomainRecord {
  id: string;
  workspaceId: string;
  name: string;
  status: "PENDING" | "VERIFIED";
  verificationToken: string;
  createdAt: string;
  updatedAt: string;
  verifiedAt: string | null;
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
  /** Live records whose stored expiry is at or before `before`. */
  listExpiring(before: string): Promise<SandboxRecord[]>;
  /** Terminated records kept for retention. */
  listTerminated(): Promise<SandboxRecord[]>;
  /**
   * Applies a patch; with expectedVersion, only if the record still has it (returns null otherwise).
   * Bumps version.
   */
  update(id: string, patch: Partial<Omit<SandboxRecord, "id" | "workspaceId" | "createdAt" | "version">>, expectedVersion?: number): Promise<SandboxRecord | null>;
  delete(id: string): Promise<boolean>;
}

export interface PreviewRepo {
  /** StoreConflictError when the name (per sandbox), label or custom domain is taken. */
  insert(rec: PreviewRecord): Promise<PreviewRecord>;
  get(sandboxId: string, name: string): Promise<PreviewRecord | null>;
  getByLabel(label: string): Promise<PreviewRecord | null>;
  getByCustomDomain(domain: string): Promise<PreviewRecord | null>;
  list(sandboxId: string): Promise<PreviewRecord[]>;
  update(id: string, patch: Partial<Omit<PreviewRecord, "id" | "workspaceId" | "sandboxId" | "createdAt">>): Promise<PreviewRecord | null>;
  delete(id: string): Promise<boolean>;
  deleteForSandbox(sandboxId: string): Promise<number>;
  /** Previews whose expiry is at or before `before`. */
  listExpired(before: string): Promise<PreviewRecord[]>;
  insertToken(rec: PreviewTokenRecord, hash: string): Promise<PreviewTokenRecord>;
  listTokens(previewId: string): Promise<PreviewTokenRecord[]>;
  findTokenByHash(hash: string): Promise<PreviewTokenRecord | null>;
  deleteToken(previewId: string, name: string): Promise<boolean>;
  getByHostPort(port: number): Promise<PreviewRecord | null>;
  /** Every host port held by a preview. */
  listHostPorts(): Promise<number[]>;
  /**
   * Gives a preview the lowest host port of [first, last] no other preview holds (and not in
   * `skip`); the unique index settles races between processes. Null when none is left.
   */
  claimHostPort(id: string, first: number, last: number, skip?: ReadonlySet<number>): Promise<number | null>;
}

export interface CustomDomainRepo {
  insert(rec: CustomDomainRecord): Promise<CustomDomainRecord>;
  get(workspaceId: string, name: string): Promise<CustomDomainRecord | null>;
  list(workspaceId: string): Promise<CustomDomainRecord[]>;
  /** Verified domains of a workspace that cover `host` (the domain itself or a subdomain). */
  findCovering(workspaceId: string, host: string): Promise<CustomDomainRecord | null>;
  update(id: string, patch: Partial<Pick<CustomDomainRecord, "status" | "updatedAt" | "verifiedAt">>): Promise<CustomDomainRecord | null>;
  delete(id: string): Promise<boolean>;
}

export type BuildStatus = "UPLOADING" | "QUEUED" | "BUILDING" | "BUILT" | "FAILED" | "CANCELLED";

export interface BuildRecord {
  id: string;
  workspaceId: string;
  /** sandboxes | agents | functions | jobs, or images (an image only, `bl push`). */
  resourceType: string;
  resourceName: string;
  status: BuildStatus;
  uploadExpiresAt: string;
  sourceDigest: string | null;
  sourceBytes: number | null;
  /** The image the build produced (an image-store reference). */
  image: string | null;
  error: string | null;
  attempts: number;
  leaseOwner: string | null;
  leaseExpiresAt: string | null;
  observedAt: string | null;
  stats: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface BuildLogLine {
  seq: number;
  time: string;
  /** 1 trace … 5 info … 9 error, as Blaxel's observability logs number severities. */
  severity: number;
  message: string;
}

export interface BuildRepo {
  insert(rec: BuildRecord, uploadTokenHash: string): Promise<BuildRecord>;
  get(id: string): Promise<BuildRecord | null>;
  /** The build an unused, unexpired upload token belongs to. */
  findByUploadToken(hash: string, now: string): Promise<BuildRecord | null>;
  /** Builds of one resource, newest first. */
  listForResource(workspaceId: string, resourceType: string, resourceName: string, limit?: number): Promise<BuildRecord[]>;
  /** Builds with one of these statuses, oldest first. */
  listByStatus(statuses: BuildStatus[]): Promise<BuildRecord[]>;
  /** Applies a patch, only while the build has one of `fromStatuses` when given; null when it did not. */
  update(id: string, patch: Partial<Omit<BuildRecord, "id" | "workspaceId" | "createdAt">> & { uploadTokenHash?: null }, fromStatuses?: BuildStatus[]): Promise<BuildRecord | null>;
  /**
   * Claims the oldest QUEUED build, or a BUILDING one whose lease ran out (its server died), for
   * `owner` until `leaseUntil`; counts the attempt. Null when there is none.
   */
  claim(owner: string, now: string, leaseUntil: string): Promise<BuildRecord | null>;
  /** Extends the lease while `owner` still holds it; false when it lost it. */
  renew(id: string, owner: string, leaseUntil: string): Promise<boolean>;
  appendLogs(buildId: string, lines: Omit<BuildLogLine, "seq">[]): Promise<void>;
  logs(buildId: string, afterSeq?: number, limit?: number): Promise<BuildLogLine[]>;
  delete(id: string): Promise<boolean>;
}

export interface WorkloadRecord {
  id: string;
  workspaceId: string;
  /** agents | functions */
  kind: string;
  name: string;
  displayName: string;
  labels: Record<string, string>;
  spec: Record<string, unknown>;
  status: string;
  events: SandboxEvent[];
  activeRevision: string | null;
  createdAt: string;
  updatedAt: string;
  version: number;
}

export interface RevisionRecord {
  id: string;
  workloadId: string;
  image: string;
  /** memory, envs (secrets sealed), port */
  runtime: Record<string, unknown>;
  /** DEPLOYING | READY | FAILED | RETIRED */
  status: string;
  message: string | null;
  createdAt: string;
}

export interface ReplicaRecord {
  /** Also the node sandbox id that runs it. */
  id: string;
  workloadId: string;
  revisionId: string;
  node: string;
  /** STARTING | READY | DRAINING */
  status: string;
  createdAt: string;
}

export interface WorkloadRepo {
  /** StoreConflictError when the (workspace, kind, name) exists. */
  insert(rec: WorkloadRecord): Promise<WorkloadRecord>;
  get(workspaceId: string, kind: string, name: string): Promise<WorkloadRecord | null>;
  getById(id: string): Promise<WorkloadRecord | null>;
  list(workspaceId: string, kind: string, query: ListQuery): Promise<Page<WorkloadRecord>>;
  /** Every workload (adoption). */
  listAll(): Promise<WorkloadRecord[]>;
  /** With expectedVersion, only if unchanged (null otherwise); bumps version. */
  update(id: string, patch: Partial<Pick<WorkloadRecord, "displayName" | "labels" | "spec" | "status" | "events" | "activeRevision" | "updatedAt">>, expectedVersion?: number): Promise<WorkloadRecord | null>;
  delete(id: string): Promise<boolean>;
  insertRevision(rec: RevisionRecord): Promise<RevisionRecord>;
  getRevision(id: string): Promise<RevisionRecord | null>;
  /** Newest first. */
  listRevisions(workloadId: string): Promise<RevisionRecord[]>;
  updateRevision(id: string, patch: Partial<Pick<RevisionRecord, "status" | "message">>): Promise<void>;
  deleteRevision(id: string): Promise<void>;
  insertReplica(rec: ReplicaRecord): Promise<ReplicaRecord>;
  listReplicas(workloadId?: string): Promise<ReplicaRecord[]>;
  updateReplica(id: string, patch: Partial<Pick<ReplicaRecord, "status">>): Promise<void>;
  deleteReplica(id: string): Promise<void>;
  insertReplacement(rec: ReplacementRecord): Promise<ReplacementRecord>;
  updateReplacement(id: string, patch: Partial<Omit<ReplacementRecord, "id" | "workloadId" | "createdAt">>): Promise<ReplacementRecord | null>;
  /** Newest first; of every workload when none is given. */
  listReplacements(workloadId?: string): Promise<ReplacementRecord[]>;
  insertAsyncCall(rec: AsyncCallRecord): Promise<void>;
  /**
   * Leases up to `limit` calls in `statuses` whose lease is free or expired to `owner` until
   * `until`; returns them as claimed.
   */
  claimAsyncCalls(statuses: string[], owner: string, now: string, until: string, limit: number): Promise<AsyncCallRecord[]>;
  updateAsyncCall(id: string, patch: Partial<Pick<AsyncCallRecord, "status" | "resultStatus" | "resultBody" | "error" | "leaseOwner" | "leaseUntil">>): Promise<void>;
  deleteAsyncCall(id: string): Promise<void>;
  listAsyncCalls(workloadId?: string): Promise<AsyncCallRecord[]>;
}

/** An async call to an agent (`?async=true`), kept until its result is delivered. */
export interface AsyncCallRecord {
  id: string;
  workloadId: string;
  /** queued | running | delivering | failed */
  status: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  resultStatus: number | null;
  resultBody: string | null;
  error: string | null;
  leaseOwner: string | null;
  leaseUntil: string | null;
  createdAt: string;
  updatedAt: string;
}

/** A rolling replacement of a workload's revision (the stable invoke URL's replacement API). */
export interface ReplacementRecord {
  id: string;
  workloadId: string;
  /** launching | warming | switched | completed | cancelled | rolled_back | failed */
  status: string;
  strategy: string;
  config: { warmupDurationMinutes: number; keepOldVersionMinutes: number };
  /** The image (or revision id) it moves to. */
  artifact: string;
  candidateRevision: string | null;
  previousRevision: string | null;
  message: string | null;
  createdAt: string;
  readyAt: string | null;
  switchedAt: string | null;
  finishedAt: string | null;
}

export type SnapshotStatus = "pending" | "ready" | "failed";

/** A capture of a sandbox: a snapshot (listed, forkable, restorable) or the archive of an archived sandbox. */
export interface SnapshotRecord {
  id: string;
  workspaceId: string;
  name: string;
  displayName: string;
  labels: Record<string, string>;
  kind: "snapshot" | "archive";
  sourceName: string;
  sourceId: string;
  status: SnapshotStatus;
  /** The source's spec at capture, secrets sealed. */
  spec: Record<string, unknown>;
  /** Holds processes and memory besides the files. */
  processes: boolean;
  sizeBytes: number | null;
  error: string | null;
  leaseOwner: string | null;
  leaseExpiresAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface SnapshotRepo {
  /** StoreConflictError when the name is taken in the workspace. */
  insert(rec: SnapshotRecord): Promise<SnapshotRecord>;
  getById(id: string): Promise<SnapshotRecord | null>;
  /** A snapshot of the workspace by id, else by name (either kind). */
  find(workspaceId: string, idOrName: string): Promise<SnapshotRecord | null>;
  /** Snapshots (kind snapshot) of the workspace, paginated. */
  list(workspaceId: string, query: ListQuery): Promise<Page<SnapshotRecord>>;
  /** Snapshots (kind snapshot) captured from the sandbox named so, newest first. */
  listForSource(workspaceId: string, sourceName: string): Promise<SnapshotRecord[]>;
  /** Pending captures whose lease ran out before `now` (their server died). */
  listStale(now: string): Promise<SnapshotRecord[]>;
  /** The images the snapshots' sandboxes ran (kept while a snapshot may be forked or restored). */
  images(): Promise<string[]>;
  /** Applies a patch, only while the status is one of `fromStatuses` when given; null when it did not. */
  update(id: string, patch: Partial<Pick<SnapshotRecord, "status" | "processes" | "sizeBytes" | "error" | "leaseOwner" | "leaseExpiresAt" | "sourceId" | "spec" | "updatedAt">>, fromStatuses?: SnapshotStatus[]): Promise<SnapshotRecord | null>;
  delete(id: string): Promise<boolean>;
}

/** An access token Hangar got for an OAuth integration connection (sealed), or why it could not. */
export interface ConnectionTokenRecord {
  workspaceId: string;
  connection: string;
  /** The connection's id and version the token was got with. */
  source: string;
  /** Sealed. */
  accessToken: string | null;
  expiresAt: string | null;
  error: string | null;
  /**
   * Sealed: the refresh token the provider rotated to (RFC 6749 §6 lets it issue a new one with
   * each refresh), used instead of the connection's own until the connection changes.
   */
  refreshToken: string | null;
  leaseOwner: string | null;
  leaseUntil: string | null;
  updatedAt: string;
}

export interface ConnectionTokenRepo {
  get(workspaceId: string, connection: string): Promise<ConnectionTokenRecord | null>;
  /** Takes the refresh lease (creating the row) when it is free or expired; false when another holds it. */
  claim(workspaceId: string, connection: string, owner: string, now: string, until: string): Promise<boolean>;
  /** Stores the outcome of a refresh and frees the lease, only while `owner` holds it; false otherwise. */
  save(workspaceId: string, connection: string, owner: string, patch: Pick<ConnectionTokenRecord, "source" | "accessToken" | "expiresAt" | "error" | "refreshToken">, now: string): Promise<boolean>;
  delete(workspaceId: string, connection: string): Promise<void>;
}

/** A named document of the model gateway: an integration connection, a model or a policy. */
export interface GatewayResourceRecord {
  id: string;
  workspaceId: string;
  /** connections | models | policies */
  kind: string;
  name: string;
  displayName: string;
  labels: Record<string, string>;
  /** The stored spec (secrets already sealed by the caller). */
  spec: Record<string, unknown>;
  status: string;
  events: SandboxEvent[];
  /** Newest first. */
  revisions: { id: string; createdAt: string; status: string }[];
  createdAt: string;
  updatedAt: string;
  version: number;
}

/** A volume, drive or volume template (kind). */
export interface StorageRecord {
  id: string;
  workspaceId: string;
  kind: StorageKind;
  name: string;
  externalId: string | null;
  displayName: string;
  labels: Record<string, string>;
  spec: Record<string, unknown>;
  status: string;
  /** Volumes: runtime id of the sandbox holding it. */
  attachedTo: string | null;
  createdAt: string;
  updatedAt: string;
  version: number;
}

/** Tokens counted for one model in one workspace during one minute. */
export interface ModelUsageRow {
  workspaceId: string;
  model: string;
  /** Start of the minute, ISO-8601. */
  bucket: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
}

export interface GatewayRepo {
  /** StoreConflictError when (workspace, kind, name) exists. */
  insert(rec: GatewayResourceRecord): Promise<GatewayResourceRecord>;
  get(workspaceId: string, kind: string, name: string): Promise<GatewayResourceRecord | null>;
  list(workspaceId: string, kind: string, query: ListQuery): Promise<Page<GatewayResourceRecord>>;
  /** Every resource of a kind in a workspace (small sets: connections, policies). */
  listAll(workspaceId: string, kind: string): Promise<GatewayResourceRecord[]>;
  /** With expectedVersion, only if unchanged (null otherwise); bumps version. */
  update(
    id: string,
    patch: Partial<Pick<GatewayResourceRecord, "displayName" | "labels" | "spec" | "status" | "events" | "revisions" | "updatedAt">>,
    expectedVersion?: number,
  ): Promise<GatewayResourceRecord | null>;
  delete(id: string): Promise<boolean>;
  /** Adds the rows' counts to what is stored for their (workspace, model, bucket). */
  addUsage(rows: ModelUsageRow[]): Promise<void>;
  /** Usage rows of a model with bucket >= from (and < to), oldest first. */
  usage(workspaceId: string, model: string, from: string, to?: string): Promise<ModelUsageRow[]>;
}

export type StorageKind = "volumes" | "drives" | "volume_templates";

export interface StorageRepo {
  /** StoreConflictError when (workspace, kind, name) exists. */
  insert(rec: StorageRecord): Promise<StorageRecord>;
  get(workspaceId: string, kind: StorageKind, name: string): Promise<StorageRecord | null>;
  getByExternalId(workspaceId: string, kind: StorageKind, externalId: string): Promise<StorageRecord | null>;
  list(workspaceId: string, kind: StorageKind, query: ListQuery): Promise<Page<StorageRecord>>;
  /** Every record of a kind, across workspaces. */
  listAll(kind: StorageKind): Promise<StorageRecord[]>;
  /** Volumes held by a sandbox. */
  listAttached(sandboxId: string): Promise<StorageRecord[]>;
  update(id: string, patch: Partial<Pick<StorageRecord, "displayName" | "labels" | "spec" | "status" | "externalId" | "updatedAt">>): Promise<StorageRecord | null>;
  /** Sets attachedTo to `sandboxId` only while free (or already its own); false when another holds it. */
  claim(id: string, sandboxId: string): Promise<boolean>;
  /** Frees it when `sandboxId` holds it. */
  release(id: string, sandboxId: string): Promise<void>;
  /** Deletes it only while nothing holds it; false otherwise. */
  deleteIfFree(id: string): Promise<boolean>;
}

export type JobExecutionStatus = "queued" | "running" | "cancelling" | "cancelled" | "failed" | "succeeded" | "timeout";

export interface JobExecutionRecord {
  id: string;
  workspaceId: string;
  jobId: string;
  jobName: string;
  revisionId: string;
  status: JobExecutionStatus;
  /** Tasks of this execution running at once at most (the job's maxConcurrentTasks). */
  parallelism: number;
  maxRetries: number;
  /** Seconds a task may run; 0 = no limit. */
  timeoutS: number;
  memory: number | null;
  /** Env overrides, values sealed. */
  env: Record<string, string> | null;
  tasks: Array<Record<string, unknown>>;
  /** sha256 of the data URL's token. */
  dataTokenHash: string;
  /** Sealed JSON {token, apiKey}. */
  secrets: string;
  apiKeyId: string | null;
  /** api | cron:<trigger id> */
  origin: string;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  completedAt: string | null;
}

export type JobTaskStatus = "pending" | "running" | "succeeded" | "failed" | "cancelled";

export interface JobTaskRecord {
  id: string;
  executionId: string;
  index: number;
  status: JobTaskStatus;
  attempts: number;
  nextRunAt: string;
  leaseOwner: string | null;
  leaseExpiresAt: string | null;
  node: string | null;
  sandboxId: string | null;
  exitCode: number | null;
  /** Why the last run ended: succeeded | failed | timeout | cancelled. */
  reason: string | null;
  conditions: Array<Record<string, unknown>>;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  completedAt: string | null;
}

export interface JobTaskCounts {
  total: number;
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  timedOut: number;
  /** Tasks that ran more than once (or wait for a retry). */
  retried: number;
}

export interface SandboxScheduleRecord {
  workspaceId: string;
  sandboxName: string;
  id: string;
  /** cron | at */
  type: string;
  value: string;
  /** The process request; env values sealed. */
  input: Record<string, unknown>;
  maxExecutions: number;
  createdAt: string;
  updatedAt: string;
}

export interface SandboxScheduleExecutionRecord {
  id: string;
  workspaceId: string;
  sandboxName: string;
  scheduleId: string;
  executedAt: string;
  status: "succeeded" | "failed";
  statusCode: number;
  processName: string;
  error: string;
  timeout: number;
}

export interface JobRepo {
  /** Inserts the execution and its tasks in one go; StoreConflictError when the id is taken. */
  insertExecution(rec: JobExecutionRecord, tasks: JobTaskRecord[]): Promise<JobExecutionRecord>;
  getExecution(id: string): Promise<JobExecutionRecord | null>;
  getExecutionByToken(hash: string): Promise<JobExecutionRecord | null>;
  /** Executions of a job, newest first (keyset-paginated on created_at). */
  listExecutions(jobId: string, query: ListQuery): Promise<Page<JobExecutionRecord>>;
  /** Executions with one of these statuses, oldest first. */
  listExecutionsByStatus(statuses: JobExecutionStatus[]): Promise<JobExecutionRecord[]>;
  /** Applies a patch while the execution has one of `fromStatuses` (when given); null when it did not. */
  updateExecution(id: string, patch: Partial<Pick<JobExecutionRecord, "status" | "updatedAt" | "startedAt" | "completedAt" | "apiKeyId">>, fromStatuses?: JobExecutionStatus[]): Promise<JobExecutionRecord | null>;
  deleteExecutionsOfJob(jobId: string): Promise<void>;
  listTasks(executionId: string): Promise<JobTaskRecord[]>;
  getTask(id: string): Promise<JobTaskRecord | null>;
  counts(executionId: string): Promise<JobTaskCounts>;
  /** True while a task of the execution is pending or running. */
  hasOpenTasks(executionId: string): Promise<boolean>;
  /** Tasks running on a node (adoption after a restart). */
  listRunningTasks(node: string): Promise<JobTaskRecord[]>;
  /** Tasks running on a node right now (for the node-wide cap). */
  countRunning(node?: string): Promise<number>;
  /**
   * Claims pending tasks that are due, oldest execution first, at most `parallelism` running per
   * execution and `nodeCap` on the node: each becomes running, leased by `owner` until `leaseUntil`,
   * with a new sandbox id and one more attempt.
   */
  claimTasks(owner: string, node: string, now: string, leaseUntil: string, nodeCap: number, newSandboxId: () => string): Promise<JobTaskRecord[]>;
  /** Extends the leases `owner` holds on running tasks. */
  renewLeases(owner: string, leaseUntil: string): Promise<void>;
  /** Takes over the running tasks of a node whose leases ran out (or all of them with `force`) for `owner`. */
  takeOver(node: string, owner: string, now: string, leaseUntil: string, force?: boolean): Promise<JobTaskRecord[]>;
  /** Applies a patch while the task has one of `fromStatuses` (and, with `owner`, is leased by it). */
  updateTask(id: string, patch: Partial<Omit<JobTaskRecord, "id" | "executionId" | "index" | "createdAt">>, fromStatuses?: JobTaskStatus[], owner?: string): Promise<JobTaskRecord | null>;
  /** Pending tasks of an execution become cancelled; returns how many. */
  cancelPending(executionId: string, now: string): Promise<number>;
  putTaskLog(taskId: string, attempt: number, time: string, text: string): Promise<void>;
  taskLogs(taskId: string): Promise<Array<{ attempt: number; time: string; text: string }>>;
  /** Records a cron firing slot; false when it was claimed already. */
  claimSlot(jobId: string, triggerId: string, slot: string, now: string): Promise<boolean>;
  setSlotExecution(jobId: string, triggerId: string, slot: string, executionId: string): Promise<void>;
  /** The latest slot fired for a trigger. */
  lastSlot(jobId: string, triggerId: string): Promise<string | null>;
  /** Sandbox schedules (StoreConflictError when the id is taken in that sandbox). */
  insertSchedule(rec: SandboxScheduleRecord): Promise<SandboxScheduleRecord>;
  getSchedule(workspaceId: string, sandboxName: string, id: string): Promise<SandboxScheduleRecord | null>;
  /** Of a sandbox, of a workspace, or all (the scheduler). */
  listSchedules(workspaceId?: string, sandboxName?: string): Promise<SandboxScheduleRecord[]>;
  updateSchedule(rec: SandboxScheduleRecord): Promise<void>;
  deleteSchedule(workspaceId: string, sandboxName: string, id: string): Promise<boolean>;
  /** Records an execution, keeping the schedule's newest `keep`. */
  insertScheduleExecution(rec: SandboxScheduleExecutionRecord, keep: number): Promise<void>;
  /** Newest first. */
  listScheduleExecutions(workspaceId: string, sandboxName?: string, limit?: number): Promise<SandboxScheduleExecutionRecord[]>;
}

export interface Store {
  readonly dialect: "sqlite" | "postgres";
  readonly workspaces: WorkspaceRepo;
  readonly apiKeys: ApiKeyRepo;
  readonly sandboxes: SandboxRepo;
  readonly previews: PreviewRepo;
  readonly customDomains: CustomDomainRepo;
  readonly builds: BuildRepo;
  readonly workloads: WorkloadRepo;
  readonly gateway: GatewayRepo;
  readonly storage: StorageRepo;
  readonly snapshots: SnapshotRepo;
  readonly jobs: JobRepo;
  readonly connectionTokens: ConnectionTokenRepo;
  /** Runs fn in one transaction; repos passed to fn act inside it. */
  transaction<T>(fn: (tx: Omit<Store, "transaction" | "close">) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
