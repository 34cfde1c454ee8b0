import { type ProviderDef, versioned } from "../provider.js";

export const anthropic: ProviderDef = {
  integration: "anthropic",
  displayName: "Anthropic",
  modelTypes: ["anthropic"],
  baseUrl: "https://api.anthropic.com",
  secretKeys: ["apiKey"],
  auth: { header: "x-api-key", prefix: "", secret: "apiKey" },
  defaultHeaders: { "anthropic-version": "2023-06-01" },
  path: versioned("/v1", "/v1/messages"),
  // Anthropic streams always carry usage (message_start, message_delta)
  streamUsage: false,
  catalog: ["claude-opus-4-1", "claude-sonnet-4-5", "claude-sonnet-4-0", "claude-3-7-sonnet-latest", "claude-3-5-haiku-latest"],
  modelsPath: "/v1/models",
  endpoints: { "/v1/messages": { method: "POST", streamKey: "stream" }, "/v1/messages/count_tokens": { method: "POST" }, "/v1/chat/completions": { method: "POST", streamKey: "stream" } },
};
