// @hangar/sandbox-api: Blaxel's in-sandbox API (files, processes, logs, watch, terminal, MCP),
// served on the host for every sandbox over its agent.

export { createSandboxApi, SANDBOX_API_VERSION, type SandboxApi, type SandboxApiOptions } from "./app.js";
export { SandboxServices, type SandboxServicesEvents } from "./services.js";
export { DEFAULT_LIMITS, type SandboxImage, type SandboxLimits, type SandboxServicesOptions, type AgentUpgradePort, type UpgradeStatus } from "./types.js";
export type { ExecRequest, ProcessResponse, ProcessStatus } from "./managers/process-manager.js";
export { TOOLS as MCP_TOOLS } from "./mcp/tools.js";
