// The one error registry of Hangar. Every error that leaves a plane is a HangarError whose
// code is listed here; transports turn it into an RFC 9457 problem body that also carries
// the fields Blaxel's SDK reads (`code` = HTTP status, `error` = human message).

export interface ErrorSpec {
  readonly status: number;
  readonly title: string;
  /** What the user can do about it; shown in problem bodies as `hint`. */
  readonly hint?: string;
}

export const ERRORS = {
  // 400
  bad_request: { status: 400, title: "Bad request" },
  validation_failed: { status: 400, title: "Request failed validation" },
  invalid_json: { status: 400, title: "Request body is not valid JSON", hint: "Send a JSON document with Content-Type: application/json." },
  invalid_api_version: { status: 400, title: "Unknown Blaxel-Version", hint: "Use 2026-04-16 or 2026-04-28, or omit the header." },
  invalid_cursor: { status: 400, title: "Invalid pagination cursor", hint: "Pass back the meta.nextCursor of the previous page unchanged." },
  invalid_name: { status: 400, title: "Invalid resource name", hint: "Use lowercase letters, digits and '-', starting with a letter or digit, at most 49 characters." },
  invalid_image: { status: 400, title: "Unknown or invalid image" },
  invalid_port: { status: 400, title: "Invalid port" },
  invalid_path: { status: 400, title: "Invalid path" },
  port_not_exposed: { status: 400, title: "Port not exposed", hint: "Declare the port in spec.runtime.ports when creating the sandbox." },
  workspace_required: { status: 400, title: "Workspace required", hint: "Send the x-blaxel-workspace header or ?workspace=." },
  not_a_directory: { status: 400, title: "Not a directory" },
  is_a_directory: { status: 400, title: "Is a directory" },
  process_name_in_use: { status: 400, title: "A running process already has this name" },
  invalid_archive: { status: 400, title: "Invalid archive", hint: "Upload a zip of regular files and directories with relative paths." },
  unknown_agent_version: { status: 400, title: "Unknown sandbox agent version", hint: "Use \"latest\" (this node's build of the agent) or the version GET /health reports." },
  // 401 / 403
  unauthorized: { status: 401, title: "Authentication required", hint: "Send 'Authorization: Bearer <api key>' or 'x-blaxel-authorization: Bearer <api key>'." },
  invalid_token: { status: 401, title: "Invalid or expired token" },
  forbidden: { status: 403, title: "Forbidden" },
  egress_denied: { status: 403, title: "Destination not allowed by the sandbox's network policy" },
  // 404
  not_found: { status: 404, title: "Not found" },
  route_not_found: { status: 404, title: "No such route" },
  workspace_not_found: { status: 404, title: "Workspace not found" },
  sandbox_not_found: { status: 404, title: "Sandbox not found" },
  api_key_not_found: { status: 404, title: "API key not found" },
  preview_not_found: { status: 404, title: "Preview not found" },
  token_not_found: { status: 404, title: "Preview token not found" },
  file_not_found: { status: 404, title: "File or directory not found" },
  process_not_found: { status: 404, title: "Process not found" },
  upload_not_found: { status: 404, title: "Multipart upload not found" },
  volume_not_found: { status: 404, title: "Volume not found" },
  volume_template_not_found: { status: 404, title: "Volume template not found" },
  drive_not_found: { status: 404, title: "Drive not found" },
  snapshot_not_found: { status: 404, title: "Snapshot not found" },
  mcp_session_not_found: { status: 404, title: "MCP session not found", hint: "The replica that held the session is gone: initialize a new session." },
  // 405 / 409 / 413 / 415 / 422 / 429
  method_not_allowed: { status: 405, title: "Method not allowed" },
  already_exists: { status: 409, title: "Resource already exists" },
  sandbox_already_exists: { status: 409, title: "Sandbox already exists" },
  conflict: { status: 409, title: "Conflict" },
  data_dir_in_use: { status: 409, title: "Data directory in use by another Hangar process" },
  stdin_closed: { status: 409, title: "Process stdin is not open" },
  volume_in_use: { status: 409, title: "Volume is attached to a sandbox", hint: "Delete the sandbox that holds it first (state.attachedTo names it)." },
  mount_path_busy: { status: 409, title: "Something is already mounted at this path", hint: "Unmount it first, or choose another mountPath." },
  snapshot_already_exists: { status: 409, title: "Snapshot already exists" },
  preview_ports_exhausted: { status: 409, title: "No preview port is free", hint: "Delete previews no longer needed, widen HANGAR_PREVIEW_PORTS, or serve previews by host name with HANGAR_PREVIEW_DOMAIN." },
  snapshot_not_ready: { status: 409, title: "Snapshot is not ready", hint: "Wait until its status is ready, or take a new one." },
  payload_too_large: { status: 413, title: "Request body too large" },
  archive_too_large: { status: 413, title: "Archive too large" },
  unsupported_media_type: { status: 415, title: "Unsupported media type" },
  range_not_satisfiable: { status: 416, title: "Range not satisfiable", hint: "Ask for bytes=start-end within the file size." },
  directory_not_empty: { status: 422, title: "Directory not empty", hint: "Pass recursive=true to remove a directory with its contents." },
  unprocessable: { status: 422, title: "Request could not be processed" },
  process_start_failed: { status: 422, title: "Process failed to start" },
  build_failed: { status: 422, title: "Build failed" },
  replacement_in_progress: { status: 422, title: "A replacement is already in progress", hint: "Wait for it to finish, or DELETE …/replacement to cancel it." },
  too_many_requests: { status: 429, title: "Too many requests" },
  token_budget_exceeded: { status: 429, title: "Token budget exceeded", hint: "A maxToken policy of this model is used up for its window; retry when the window has moved on, or raise the policy's limit." },
  // 5xx
  internal: { status: 500, title: "Internal server error" },
  runtime_failed: { status: 500, title: "Sandbox runtime failed" },
  sandbox_unavailable: { status: 503, title: "Sandbox is not running" },
  sandbox_recovering: { status: 503, title: "Sandbox is being recovered", hint: "Its files are kept; retry the request in a few seconds." },
  not_configured: { status: 503, title: "Feature not configured" },
  stdin_not_read: { status: 503, title: "Process stopped reading its stdin" },
  upstream_unreachable: { status: 502, title: "Upstream unreachable" },
  upstream_timeout: { status: 504, title: "Upstream timed out" },
  creation_in_progress: { status: 504, title: "Sandbox creation still in progress", hint: "Its image is being built on first use; poll GET /v0/sandboxes/{name} until DEPLOYED (the SDK does so by itself)." },
  model_unavailable: { status: 503, title: "Model unavailable", hint: "Check the model's status and events: its integration connection, its policies, spec.enabled." },
  /** A model provider answered with an error; the problem body carries the provider's own status. */
  provider_error: { status: 502, title: "The model provider answered with an error" },
  connection_failed: { status: 502, title: "An integration connection of this function failed", hint: "The integration's token endpoint refused the connection's credentials (e.g. a revoked refresh token): update the connection with PUT /v0/integrations/connections/{name}." },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** Extra members placed on the problem body (e.g. `reason`, `sandbox_name`). */
export type ProblemExtras = Record<string, unknown>;

export class HangarError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly extras: ProblemExtras | undefined;

  constructor(code: ErrorCode, detail?: string, extras?: ProblemExtras, options?: { cause?: unknown }) {
    super(detail ?? ERRORS[code].title, options);
    this.name = "HangarError";
    this.code = code;
    this.status = ERRORS[code].status;
    this.extras = extras;
  }
}

export function isHangarError(e: unknown): e is HangarError {
  return e instanceof HangarError;
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** HTTP status again, as Blaxel's `Error.code` (the SDK's 404/409 checks read it). */
  code: number;
  /** Human-readable message, as Blaxel's `Error.error` (the SDK prints it). */
  error: string;
  message: string;
  hint?: string;
  [extra: string]: unknown;
}

export function problemType(code: ErrorCode): string {
  return `urn:hangar:problem:${code}`;
}

/** The RFC 9457 body for an error, with the fields Blaxel clients read. */
export function toProblem(err: HangarError): ProblemBody {
  const spec: ErrorSpec = ERRORS[err.code];
  const body: ProblemBody = {
    type: problemType(err.code),
    title: spec.title,
    status: spec.status,
    detail: err.message,
    code: spec.status,
    error: err.message,
    message: err.message,
    ...(spec.hint ? { hint: spec.hint } : {}),
    ...err.extras,
  };
  return body;
}

/** Wraps anything thrown into a HangarError, keeping HangarErrors as they are. */
export function asHangarError(e: unknown): HangarError {
  if (e instanceof HangarError) return e;
  return new HangarError("internal", "internal server error", undefined, { cause: e });
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";
