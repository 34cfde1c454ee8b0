import { type ProviderDef, splitQuery } from "../provider.js";

export const cohere: ProviderDef = {
  integration: "cohere",
  displayName: "Cohere",
  modelTypes: ["cohere"],
  baseUrl: "https://api.cohere.com",
  secretKeys: ["apiKey"],
  auth: { header: "authorization", prefix: "Bearer ", secret: "apiKey" },
  // native /v1 and /v2 as they are; OpenAI-style chat/embeddings go to its compatibility API
  path(rest) {
    const [p, q] = splitQuery(rest);
    if (p === "/" || p === "") return `/v2/chat${q}`;
    const openaiStyle = /^(\/v1)?\/(chat\/completions|embeddings|models)$/.exec(p);
    if (openaiStyle) return `/compatibility/v1/${openaiStyle[2]}${q}`;
    if (/^\/(v1|v2|compatibility)(\/|$)/.test(p)) return p + q;
    return `/v2${p}${q}`;
  },
  streamUsage: true,
  catalog: ["command-a-03-2025", "command-r-plus", "command-r", "embed-v4.0", "rerank-v3.5"],
  modelsPath: "/v1/models",
  endpoints: { "/v2/chat": { method: "POST", streamKey: "stream" }, "/v2/embed": { method: "POST" }, "/v2/rerank": { method: "POST" }, "/compatibility/v1/chat/completions": { method: "POST", streamKey: "stream" } },
};
