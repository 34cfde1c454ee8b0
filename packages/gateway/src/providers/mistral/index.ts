import { OPENAI_ENDPOINTS, type ProviderDef, versioned } from "../provider.js";

export const mistral: ProviderDef = {
  integration: "mistral",
  displayName: "Mistral AI",
  modelTypes: ["mistral"],
  baseUrl: "https://api.mistral.ai",
  secretKeys: ["apiKey"],
  auth: { header: "authorization", prefix: "Bearer ", secret: "apiKey" },
  path: versioned("/v1", "/v1/chat/completions"),
  // Mistral streams end with a usage chunk on their own
  streamUsage: false,
  catalog: ["mistral-large-latest", "mistral-medium-latest", "mistral-small-latest", "codestral-latest", "mistral-embed"],
  modelsPath: "/v1/models",
  endpoints: { "/v1/chat/completions": OPENAI_ENDPOINTS["/v1/chat/completions"]!, "/v1/embeddings": OPENAI_ENDPOINTS["/v1/embeddings"]!, "/v1/fim/completions": { method: "POST", streamKey: "stream" } },
};
