import { type ProviderDef, splitQuery } from "../provider.js";

/** Google Gemini: its native v1beta API, and its OpenAI-compatible API for OpenAI-style paths. */
export const gemini: ProviderDef = {
  integration: "gemini",
  displayName: "Gemini",
  modelTypes: ["gemini"],
  baseUrl: "https://generativelanguage.googleapis.com",
  secretKeys: ["apiKey"],
  auth: { header: "x-goog-api-key", prefix: "", secret: "apiKey" },
  path(rest, ctx) {
    const [p, q] = splitQuery(rest);
    if (p === "/" || p === "") return `/v1beta/models/${encodeURIComponent(ctx.model)}:generateContent${q}`;
    const openaiStyle = /^(\/v1)?\/(chat\/completions|embeddings|models)$/.exec(p);
    if (openaiStyle) return `/v1beta/openai/${openaiStyle[2]}${q}`;
    return p + q;
  },
  streamUsage: true,
  catalog: ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash", "text-embedding-004"],
  modelsPath: "/v1beta/models",
  endpoints: { "/v1beta/models/{model}:generateContent": { method: "POST" }, "/v1beta/models/{model}:streamGenerateContent": { method: "POST" }, "/v1beta/openai/chat/completions": { method: "POST", streamKey: "stream" } },
};
