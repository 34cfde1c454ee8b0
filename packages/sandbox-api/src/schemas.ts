// JSON schemas of the sandbox API requests (validation now, OpenAPI generation later). Shapes follow
// Blaxel's sandbox-api OpenAPI document and what @blaxel/core 0.3.21 sends.

export const processRequestSchema = {
  type: "object",
  required: ["command"],
  properties: {
    command: { type: "string", minLength: 1, description: "Shell command, run as `$SHELL -c <command>`" },
    name: { type: "string", maxLength: 256, description: "Process name; unique among running processes. Default proc-<8 chars>" },
    workingDir: { type: "string", description: "Working directory (must exist); default the image working directory" },
    env: { type: "object", additionalProperties: { type: "string" }, description: "Variables merged over the sandbox environment" },
    waitForCompletion: { type: "boolean", description: "Answer when the process has exited (at most 60 s)" },
    timeout: { type: "number", minimum: 0, description: "Seconds before the process group is killed; 0 = none; 600 by default with keepAlive" },
    waitForPorts: { type: "array", items: { type: "integer", minimum: 1, maximum: 65535 }, description: "Answer once these ports listen on a routable address" },
    restartOnFailure: { type: "boolean" },
    maxRestarts: { type: "integer", description: "Restarts on failure; negative = unlimited; default 3 with restartOnFailure" },
    keepAlive: { type: "boolean", description: "Keep the sandbox out of standby while this process runs" },
    stdin: { type: "boolean", description: "Keep a stdin pipe open (POST/DELETE /process/{id}/stdin)" },
  },
} as const;

export const fileRequestSchema = {
  type: "object",
  properties: {
    content: { type: "string" },
    isDirectory: { type: "boolean" },
    permissions: { type: "string", description: "Octal, e.g. \"0644\"" },
  },
} as const;

export const treeRequestSchema = {
  type: "object",
  required: ["files"],
  properties: {
    files: { type: "object", additionalProperties: { type: "string" }, description: "Relative path → text content" },
  },
} as const;

export const multipartInitiateSchema = {
  anyOf: [{ type: "object", properties: { permissions: { type: "string" } } }, { type: "null" }],
} as const;

export const multipartCompleteSchema = {
  type: "object",
  required: ["parts"],
  properties: {
    parts: {
      type: "array",
      items: {
        type: "object",
        required: ["partNumber"],
        properties: { partNumber: { type: "integer", minimum: 1, maximum: 10000 }, etag: { type: "string" }, size: { type: "integer" } },
      },
    },
  },
} as const;

export const portMonitorSchema = {
  type: "object",
  required: ["callback"],
  properties: { callback: { type: "string", minLength: 1 } },
} as const;

export const applyEditSchema = {
  type: "object",
  required: ["codeEdit"],
  properties: { codeEdit: { type: "string", minLength: 1 }, model: { type: "string" } },
} as const;

export const identifierParams = {
  type: "object",
  required: ["identifier"],
  properties: { identifier: { type: "string", minLength: 1 } },
} as const;

export const pidParams = {
  type: "object",
  required: ["pid"],
  properties: { pid: { type: "integer", minimum: 1 } },
} as const;

export const uploadIdParams = {
  type: "object",
  required: ["uploadId"],
  properties: { uploadId: { type: "string", minLength: 1 } },
} as const;

export const recursiveQuery = {
  type: "object",
  properties: { recursive: { type: "boolean" } },
} as const;

export const fileGetQuery = {
  type: "object",
  properties: { download: { type: "boolean" } },
} as const;

export const findQuery = {
  type: "object",
  properties: {
    type: { type: "string", enum: ["file", "directory"] },
    patterns: { type: "string" },
    maxResults: { type: "integer" },
    excludeDirs: { type: "string" },
    excludeHidden: { type: "boolean" },
  },
} as const;

export const fuzzyQuery = {
  type: "object",
  properties: {
    query: { type: "string" },
    maxResults: { type: "integer" },
    patterns: { type: "string" },
    excludeDirs: { type: "string" },
    excludeHidden: { type: "boolean" },
  },
} as const;

export const contentSearchQuery = {
  type: "object",
  required: ["query"],
  properties: {
    query: { type: "string", minLength: 1 },
    caseSensitive: { type: "boolean" },
    contextLines: { type: "integer", minimum: 0 },
    maxResults: { type: "integer" },
    filePattern: { type: "string" },
    excludeDirs: { type: "string" },
  },
} as const;

export const partQuery = {
  type: "object",
  required: ["partNumber"],
  properties: { partNumber: { type: "integer", minimum: 1, maximum: 10000 } },
} as const;

export const watchQuery = {
  type: "object",
  properties: { ignore: { type: "string" } },
} as const;

export const rerankQuery = {
  type: "object",
  required: ["query"],
  properties: {
    query: { type: "string", minLength: 1 },
    scoreThreshold: { type: "number", minimum: 0, maximum: 1 },
    tokenLimit: { type: "integer", minimum: 1 },
    filePattern: { type: "string" },
  },
} as const;
