// Table shapes as Kysely sees them. Timestamps are ISO-8601 UTC strings (sortable, portable);
// JSON documents are TEXT. Nothing here is SQLite-specific, so a PostgreSQL dialect can run it.

import type { Generated } from "kysely";

export interface WorkspaceTable {
  id: string;
  name: string;
  display_name: string;
  labels: string;
  created_at: string;
  updated_at: string;
}

export interface ApiKeyTable {
  id: string;
  name: string;
  /** sha256 of the key; the key itself is never stored. */
  hash: string;
  /** First characters of the key, to recognise it in listings. */
  prefix: string;
  /** 1 = may create workspaces and keys for any workspace it reaches. */
  admin: number;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface ApiKeyWorkspaceTable {
  key_id: string;
  workspace_id: string;
}

export interface SandboxTable {
  /** Runtime id: names host-side resources of this sandbox. */
  id: string;
  workspace_id: string;
  name: string;
  external_id: string | null;
  display_name: string;
  labels: string;
  status: string;
  state: string;
  /** The user's spec (JSON), secrets encrypted. */
  spec: string;
  events: string;
  /** Node that holds the sandbox (for multi-node; "local" on one box). */
  node: string;
  created_at: string;
  updated_at: string;
  last_used_at: string;
  /** When the reaper must delete it (min of ttl/expires/lifecycle); null = never. */
  expires_at: string | null;
  terminated_at: string | null;
  /** Monotonic counter for optimistic concurrency. */
  version: Generated<number>;
}

export interface PreviewTable {
  id: string;
  workspace_id: string;
  sandbox_id: string;
  name: string;
  label: string;
  port: number;
  public: number;
  prefix_url: string | null;
  custom_domain: string | null;
  request_headers: string;
  response_headers: string;
  expires_at: string | null;
  created_at: string;
  updated_at: string;
  /** Host port of an app preview in port mode (unique). */
  host_port: number | null;
}

export interface PreviewTokenTable {
  id: string;
  preview_id: string;
  name: string;
  hash: string;
  sealed: string;
  expires_at: string;
  created_at: string;
}

export interface CustomDomainTable {
  id: string;
  workspace_id: string;
  name: string;
  status: string;
  verification_token: string;
  created_at: string;
  updated_at: string;
  verified_at: string | null;
}

export interface BuildTable {
  id: string;
  workspace_id: string;
  resource_type: string;
  resource_name: string;
  status: string;
  upload_token_hash: string | null;
  upload_expires_at: string;
  source_digest: string | null;
  source_bytes: number | null;
  image: string | null;
  error: string | null;
  attempts: number;
  lease_owner: string | null;
  lease_expires_at: string | null;
  observed_at: string | null;
  stats: string;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface BuildLogTable {
  build_id: string;
  seq: number;
  time: string;
  severity: number;
  message: string;
}

export interface WorkloadTable {
  id: string;
  workspace_id: string;
  kind: string;
  name: string;
  display_name: string;
  labels: string;
  spec: string;
  status: string;
  events: string;
  active_revision: string | null;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface RevisionTable {
  id: string;
  workload_id: string;
  image: string;
  runtime: string;
  status: string;
  message: string | null;
  created_at: string;
}

export interface ReplicaTable {
  id: string;
  workload_id: string;
  revision_id: string;
  node: string;
  status: string;
  created_at: string;
}

export interface GatewayResourceTable {
  id: string;
  workspace_id: string;
  kind: string;
  name: string;
  display_name: string;
  labels: string;
  spec: string;
  status: string;
  events: string;
  revisions: string;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface ConnectionTokenTable {
  workspace_id: string;
  connection: string;
  source: string;
  access_token: string | null;
  expires_at: string | null;
  error: string | null;
  lease_owner: string | null;
  lease_until: string | null;
  updated_at: string;
  refresh_token: string | null;
}

export interface ModelUsageTable {
  workspace_id: string;
  model: string;
  bucket: string;
  requests: number;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
}

export interface ReplacementTable {
  id: string;
  workload_id: string;
  status: string;
  strategy: string;
  config: string;
  artifact: string;
  candidate_revision: string | null;
  previous_revision: string | null;
  message: string | null;
  created_at: string;
  ready_at: string | null;
  switched_at: string | null;
  finished_at: string | null;
}

export interface SnapshotTable {
  id: string;
  workspace_id: string;
  name: string;
  display_name: string;
  labels: string;
  kind: string;
  source_name: string;
  source_id: string;
  status: string;
  spec: string;
  processes: number;
  size_bytes: number | null;
  error: string | null;
  lease_owner: string | null;
  lease_expires_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface AsyncCallTable {
  id: string;
  workload_id: string;
  status: string;
  method: string;
  path: string;
  headers: string;
  body: Buffer;
  result_status: number | null;
  result_body: string | null;
  error: string | null;
  lease_owner: string | null;
  lease_until: string | null;
  created_at: string;
  updated_at: string;
}

export interface StorageResourceTable {
  id: string;
  workspace_id: string;
  kind: string;
  name: string;
  external_id: string | null;
  display_name: string;
  labels: string;
  spec: string;
  status: string;
  attached_to: string | null;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface Database {
  workspaces: WorkspaceTable;
  api_keys: ApiKeyTable;
  api_key_workspaces: ApiKeyWorkspaceTable;
  sandboxes: SandboxTable;
  previews: PreviewTable;
  preview_tokens: PreviewTokenTable;
  custom_domains: CustomDomainTable;
  builds: BuildTable;
  build_logs: BuildLogTable;
  workloads: WorkloadTable;
  revisions: RevisionTable;
  replicas: ReplicaTable;
  gateway_resources: GatewayResourceTable;
  model_usage: ModelUsageTable;
  storage_resources: StorageResourceTable;
  replacements: ReplacementTable;
  async_calls: AsyncCallTable;
  snapshots: SnapshotTable;
  job_executions: JobExecutionTable;
  job_tasks: JobTaskTable;
  job_task_logs: JobTaskLogTable;
  job_schedule_slots: JobScheduleSlotTable;
  sandbox_schedules: SandboxScheduleTable;
  sandbox_schedule_executions: SandboxScheduleExecutionTable;
  connection_tokens: ConnectionTokenTable;
}

export interface JobExecutionTable {
  id: string;
  workspace_id: string;
  job_id: string;
  job_name: string;
  revision_id: string;
  status: string;
  parallelism: number;
  max_retries: number;
  timeout_s: number;
  memory: number | null;
  env: string | null;
  tasks: string;
  data_token_hash: string;
  secrets: string;
  api_key_id: string | null;
  origin: string;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  completed_at: string | null;
}

export interface JobTaskTable {
  id: string;
  execution_id: string;
  idx: number;
  status: string;
  attempts: number;
  next_run_at: string;
  lease_owner: string | null;
  lease_expires_at: string | null;
  node: string | null;
  sandbox_id: string | null;
  exit_code: number | null;
  reason: string | null;
  conditions: string;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  completed_at: string | null;
}

export interface JobTaskLogTable {
  task_id: string;
  attempt: number;
  time: string;
  text: string;
}

export interface JobScheduleSlotTable {
  job_id: string;
  trigger_id: string;
  slot: string;
  execution_id: string | null;
  created_at: string;
}

export interface SandboxScheduleTable {
  workspace_id: string;
  sandbox_name: string;
  id: string;
  type: string;
  value: string;
  input: string;
  max_executions: number;
  created_at: string;
  updated_at: string;
}

export interface SandboxScheduleExecutionTable {
  id: string;
  workspace_id: string;
  sandbox_name: string;
  schedule_id: string;
  executed_at: string;
  status: string;
  status_code: number;
  process_name: string;
  error: string;
  timeout: number;
}
