import { OPENAI_ENDPOINTS, type ProviderDef, versioned } from "../provider.js";

/** Any server speaking OpenAI's API at config.url (vLLM, Ollama, llama.cpp, LiteLLM…); the key is optional. */
export const openaiCompatible: ProviderDef = {
  integration: "openai-compatible",
  displayName: "OpenAI-compatible server",
  modelTypes: ["openai", "public_model"],
  secretKeys: [],
  auth: { header: "authorization", prefix: "Bearer ", secret: "apiKey" },
  path: versioned("/v1", "/v1/chat/completions"),
  streamUsage: true,
  catalog: [],
  modelsPath: "/v1/models",
  endpoints: OPENAI_ENDPOINTS,
};
