import { OPENAI_ENDPOINTS, type ProviderDef, versioned } from "../provider.js";

/** Hugging Face: the serverless router (OpenAI-compatible); a dedicated endpoint sets config.url. */
export const huggingface: ProviderDef = {
  integration: "huggingface",
  displayName: "Hugging Face",
  modelTypes: ["huggingface", "hf_public_endpoint", "hf_private_endpoint", "public_model"],
  baseUrl: "https://router.huggingface.co",
  secretKeys: ["apiKey"],
  auth: { header: "authorization", prefix: "Bearer ", secret: "apiKey" },
  path: versioned("/v1", "/v1/chat/completions"),
  streamUsage: true,
  catalog: ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-72B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3"],
  modelsPath: "/v1/models",
  endpoints: { "/v1/chat/completions": OPENAI_ENDPOINTS["/v1/chat/completions"]!, "/v1/embeddings": OPENAI_ENDPOINTS["/v1/embeddings"]! },
};
