import { OPENAI_ENDPOINTS, type ProviderDef, versioned } from "../provider.js";

export const xai: ProviderDef = {
  integration: "xai",
  displayName: "xAI",
  modelTypes: ["xai"],
  baseUrl: "https://api.x.ai",
  secretKeys: ["apiKey"],
  auth: { header: "authorization", prefix: "Bearer ", secret: "apiKey" },
  path: versioned("/v1", "/v1/chat/completions"),
  streamUsage: true,
  catalog: ["grok-4", "grok-3", "grok-3-mini"],
  modelsPath: "/v1/models",
  endpoints: { ...OPENAI_ENDPOINTS, "/v1/messages": { method: "POST", streamKey: "stream" } },
};
