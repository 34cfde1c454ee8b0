import { OPENAI_ENDPOINTS, type ProviderDef, versioned } from "../provider.js";

export const deepseek: ProviderDef = {
  integration: "deepseek",
  displayName: "DeepSeek",
  modelTypes: ["deepseek"],
  baseUrl: "https://api.deepseek.com",
  secretKeys: ["apiKey"],
  auth: { header: "authorization", prefix: "Bearer ", secret: "apiKey" },
  path: versioned("/v1", "/v1/chat/completions"),
  streamUsage: true,
  catalog: ["deepseek-chat", "deepseek-reasoner"],
  modelsPath: "/v1/models",
  endpoints: { "/v1/chat/completions": OPENAI_ENDPOINTS["/v1/chat/completions"]!, "/v1/models": OPENAI_ENDPOINTS["/v1/models"]! },
};
