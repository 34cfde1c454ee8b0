// Every provider the gateway knows, by integration name.

import { anthropic } from "./anthropic/index.js";
import { azureAiInference, azureMarketplace, azureOpenAiService } from "./azure/index.js";
import { cohere } from "./cohere/index.js";
import { deepseek } from "./deepseek/index.js";
import { gemini } from "./gemini/index.js";
import { huggingface } from "./huggingface/index.js";
import { mistral } from "./mistral/index.js";
import { openai } from "./openai/index.js";
import { openaiCompatible } from "./openai-compatible/index.js";
import type { ProviderDef } from "./provider.js";
import { xai } from "./xai/index.js";

export * from "./provider.js";

export const PROVIDERS: ReadonlyMap<string, ProviderDef> = new Map(
  [openai, anthropic, mistral, cohere, deepseek, xai, huggingface, azureAiInference, azureOpenAiService, azureMarketplace, gemini, openaiCompatible].map((p) => [p.integration, p]),
);

/** Every spec.runtime.type some provider serves. */
export const MODEL_TYPES: ReadonlySet<string> = new Set([...PROVIDERS.values()].flatMap((p) => p.modelTypes));
