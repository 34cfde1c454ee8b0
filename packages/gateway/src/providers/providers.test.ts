import { describe, expect, it } from "vitest";
import { PROVIDERS } from "./index.js";

const ctx = { model: "m-1", config: {} };

describe("providers", () => {
  it("map the paths clients send onto each provider's API", () => {
    const map = (p: string, rest: string, c = ctx) => PROVIDERS.get(p)!.path(rest, c);
    expect(map("openai", "/v1/chat/completions")).toBe("/v1/chat/completions");
    expect(map("openai", "/chat/completions")).toBe("/v1/chat/completions");
    expect(map("openai", "/v1/responses?x=1")).toBe("/v1/responses?x=1");
    expect(map("openai", "/")).toBe("/v1/chat/completions");
    expect(map("anthropic", "/v1/messages")).toBe("/v1/messages");
    expect(map("anthropic", "/messages")).toBe("/v1/messages");
    expect(map("cohere", "/v2/chat")).toBe("/v2/chat");
    expect(map("cohere", "/v1/chat/completions")).toBe("/compatibility/v1/chat/completions");
    expect(map("gemini", "/v1beta/models/m-1:generateContent")).toBe("/v1beta/models/m-1:generateContent");
    expect(map("gemini", "/v1/chat/completions")).toBe("/v1beta/openai/chat/completions");
    expect(map("gemini", "/")).toBe("/v1beta/models/m-1:generateContent");
    expect(map("azure-openai-service", "/v1/chat/completions")).toBe("/openai/deployments/m-1/chat/completions?api-version=2024-10-21");
    expect(map("azure-ai-inference", "/chat/completions", { model: "x", config: { apiVersion: "2025-01-01" } })).toBe("/chat/completions?api-version=2025-01-01");
    expect(map("deepseek", "/v1/chat/completions")).toBe("/v1/chat/completions");
  });

  it("say how each is authenticated, and every provider of the docs is there", () => {
    for (const name of ["openai", "anthropic", "mistral", "cohere", "deepseek", "xai", "huggingface", "azure-ai-inference", "azure-openai-service", "azure-marketplace", "gemini", "openai-compatible"]) {
      expect(PROVIDERS.has(name), name).toBe(true);
    }
    expect(PROVIDERS.get("anthropic")!.auth).toEqual({ header: "x-api-key", prefix: "", secret: "apiKey" });
    expect(PROVIDERS.get("gemini")!.auth!.header).toBe("x-goog-api-key");
    expect(PROVIDERS.get("openai")!.auth!.prefix).toBe("Bearer ");
  });
});
