import { OPENAI_ENDPOINTS, type ProviderDef, versioned } from "../provider.js";

export const openai: ProviderDef = {
  integration: "openai",
  displayName: "OpenAI",
  modelTypes: ["openai"],
  baseUrl: "https://api.openai.com",
  secretKeys: ["apiKey"],
  auth: { header: "authorization", prefix: "Bearer ", secret: "apiKey" },
  path: versioned("/v1", "/v1/chat/completions"),
  streamUsage: true,
  catalog: ["gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "o3", "o4-mini", "text-embedding-3-small", "text-embedding-3-large"],
  modelsPath: "/v1/models",
  endpoints: OPENAI_ENDPOINTS,
};
