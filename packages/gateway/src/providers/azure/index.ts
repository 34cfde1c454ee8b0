import { type ProviderDef, splitQuery } from "../provider.js";

/** The path without a leading /v1, with Azure's api-version added. */
function azurePath(prefix: (model: string) => string, defaultVersion: string): ProviderDef["path"] {
  return (rest, ctx) => {
    const [p, q] = splitQuery(rest);
    let path = p.replace(/^\/v1(?=\/|$)/, "") || "/chat/completions";
    if (path === "/") path = "/chat/completions";
    const version = ctx.config.apiVersion ?? defaultVersion;
    const query = q ? (/[?&]api-version=/.test(q) ? q : `${q}&api-version=${encodeURIComponent(version)}`) : `?api-version=${encodeURIComponent(version)}`;
    return prefix(ctx.model) + path + query;
  };
}

const endpoints = { "/chat/completions": { method: "POST", streamKey: "stream" }, "/embeddings": { method: "POST" } };

/** Azure AI Foundry "Azure AI Inference": the resource's model inference endpoint (config.url). */
export const azureAiInference: ProviderDef = {
  integration: "azure-ai-inference",
  displayName: "Azure AI Inference",
  modelTypes: ["azure-ai-inference"],
  secretKeys: ["apiKey"],
  auth: { header: "api-key", prefix: "", secret: "apiKey" },
  path: azurePath(() => "", "2024-05-01-preview"),
  streamUsage: true,
  catalog: [],
  endpoints,
};

/** Azure OpenAI Service: deployments under the resource's endpoint (config.url). */
export const azureOpenAiService: ProviderDef = {
  integration: "azure-openai-service",
  displayName: "Azure OpenAI Service",
  modelTypes: ["azure-openai-service"],
  secretKeys: ["apiKey"],
  auth: { header: "api-key", prefix: "", secret: "apiKey" },
  path: azurePath((model) => `/openai/deployments/${encodeURIComponent(model)}`, "2024-10-21"),
  streamUsage: true,
  catalog: [],
  endpoints,
};

/** Azure AI Marketplace: one model's serverless endpoint (config.url). */
export const azureMarketplace: ProviderDef = {
  integration: "azure-marketplace",
  displayName: "Azure AI Marketplace",
  modelTypes: ["azure-marketplace"],
  secretKeys: ["apiKey"],
  auth: { header: "authorization", prefix: "Bearer ", secret: "apiKey" },
  path: azurePath(() => "", "2024-05-01-preview"),
  streamUsage: true,
  catalog: [],
  endpoints,
};
