// A user calls LLMs through Hangar: the provider's key stays on the server (the caller sends only
// its Hangar key), streams arrive chunk by chunk, tokens are counted, a token budget answers 429
// after the request that crossed it, provider failures come back in one shape. The provider is a
// stand-in on loopback; the clients are the official ones (openai, @blaxel/langgraph, @blaxel/llamaindex).

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { STAND_IN_TEXT, type ProviderStandIn, startProviderStandIn } from "@hangar/gateway/testing";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, type RunningHangar, api, startHangar, useSdkAgainst } from "./harness.js";

const PROVIDER_KEY = "sk-provider-secret-0123456789";
const ANTHROPIC_KEY = "sk-ant-secret-0123456789";
let h: RunningHangar;
let provider: ProviderStandIn;
let keyB: string;
/** A port nothing listens on. */
let deadPort: number;

async function put(path: string, body: unknown): Promise<Record<string, any>> {
  const res = await api(h, "PUT", path, body);
  const json = (await res.json()) as Record<string, any>;
  expect(res.status, JSON.stringify(json)).toBe(200);
  return json;
}

function model(name: string, type: string, upstream: string, extra: { runtime?: object; [k: string]: unknown } = {}): Promise<Record<string, any>> {
  const { runtime, ...rest } = extra;
  return put(`/v0/models/${name}`, { metadata: { name }, spec: { ...rest, runtime: { type, model: upstream, ...(runtime ?? {}) } } });
}

/** Calls a model's run URL with the Hangar key, as curl from the docs does. */
function call(name: string, path: string, body: unknown, key = h.apiKey, ws = "default", headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${h.url}/run/${ws}/models/${name}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-blaxel-authorization": `Bearer ${key}`, "x-blaxel-workspace": ws, ...headers },
    body: JSON.stringify(body),
  });
}

async function tokens(name: string): Promise<{ requests: number; inputTokens: number; outputTokens: number; totalTokens: number }> {
  const m = (await (await api(h, "GET", `/v0/models/${name}`)).json()) as { metrics: { tokens: { lastHour: Awaited<ReturnType<typeof tokens>> } } };
  return m.metrics.tokens.lastHour;
}

beforeAll(async () => {
  provider = await startProviderStandIn({ chunkDelayMs: 80 });
  const probe = await startProviderStandIn();
  deadPort = probe.port;
  await probe.close();
  h = await startHangar({ env: { HANGAR_MODEL_TIMEOUT: "2s", HANGAR_NODE_LOCATION: "country:fr,continent:eu" } });
  await put("/v0/integrations/connections/stand-in-openai", { metadata: { name: "stand-in-openai" }, spec: { integration: "openai", config: { url: provider.url }, secret: { apiKey: PROVIDER_KEY } } });
  await put("/v0/integrations/connections/stand-in-anthropic", { metadata: { name: "stand-in-anthropic" }, spec: { integration: "anthropic", config: { url: provider.url }, secret: { apiKey: ANTHROPIC_KEY } } });
  await put("/v0/integrations/connections/dead", { metadata: { name: "dead" }, spec: { integration: "openai-compatible", config: { url: `http://127.0.0.1:${deadPort}` } } });
  const openaiConn = { integrationConnections: ["stand-in-openai"] };
  await model("gpt-stand-in", "openai", "stand-in-model", { ...openaiConn, runtime: { generation: "mk3" } });
  await model("classic", "openai", "stand-in-model", openaiConn);
  await model("claude-stand-in", "anthropic", "claude-stand-in-1", { integrationConnections: ["stand-in-anthropic"] });
  await model("broken", "openai", "fail-500", openaiConn);
  await model("sleepy", "openai", "slow", openaiConn);
  await model("unreachable", "openai", "stand-in-model", { integrationConnections: ["dead"] });
  expect((await api(h, "POST", "/v0/workspaces", { name: "team-b" })).status).toBe(200);
  const k = await api(h, "POST", "/v0/api-keys", { name: "b-key", workspaces: ["team-b"] }, { "x-blaxel-workspace": "team-b" });
  keyB = ((await k.json()) as { apiKey: string }).apiKey;
});

afterAll(async () => {
  await h?.dispose();
  await provider?.close();
});

describe("calling models through the gateway", () => {
  it("keeps the provider's key on the server: never returned, never stored in clear, never logged", async () => {
    const conn = (await (await api(h, "GET", "/v0/integrations/connections/stand-in-openai")).json()) as { spec: { secret: Record<string, string>; integration: string } };
    expect(conn.spec).toMatchObject({ integration: "openai", secret: { apiKey: "" } });
    const list = await (await api(h, "GET", "/v0/integrations/connections")).text();
    expect(Array.isArray(JSON.parse(list))).toBe(true); // a bare array, as the SDK expects
    expect(list).not.toContain(PROVIDER_KEY);
    // a PUT that sends the masked value back keeps the key
    await put("/v0/integrations/connections/stand-in-openai", { metadata: { name: "stand-in-openai" }, spec: { ...conn.spec, config: { url: provider.url } } });
    expect(readFileSync(join(h.dataDir, "hangar.db")).includes(PROVIDER_KEY)).toBe(false);
    const openapi = (await (await fetch(`${h.url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    for (const p of ["/v0/integrations/connections", "/v0/models/{name}", "/v0/policies/{name}/usages"]) expect(Object.keys(openapi.paths)).toContain(p);
    const integration = (await (await api(h, "GET", "/v0/integrations/openai")).json()) as { endpoints: Record<string, unknown> };
    expect(Object.keys(integration.endpoints)).toContain("/v1/chat/completions");
    const models = (await (await api(h, "GET", "/v0/integrations/connections/stand-in-openai/models")).json()) as { id: string }[];
    expect(models.map((m) => m.id)).toContain("stand-in-model");
    expect((await api(h, "GET", "/v0/integrations/connections/stand-in-openai/models/stand-in-model")).status).toBe(200);
    const endpoints = (await (await api(h, "GET", "/v0/integrations/connections/stand-in-anthropic/endpointConfigurations")).json()) as { path: string }[];
    expect(endpoints.map((e) => e.path)).toContain("/v1/messages");
  });

  it("injects the provider's key in place of the caller's, and names the provider's model", async () => {
    provider.seen.length = 0;
    const res = await call("gpt-stand-in", "/v1/chat/completions", { model: "gpt-stand-in", messages: [{ role: "user", content: "hi" }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: { message: { content: string } }[] };
    expect(body.choices[0]!.message.content).toBe(STAND_IN_TEXT);
    const seen = provider.seen.at(-1)!;
    expect(seen.path).toBe("/v1/chat/completions");
    expect(seen.headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`);
    expect(JSON.stringify(seen.headers)).not.toContain(h.apiKey);
    expect(Object.keys(seen.headers).filter((k) => k.startsWith("x-blaxel-"))).toEqual([]);
    expect(seen.body!.model).toBe("stand-in-model");
    expect(h.output()).not.toContain(PROVIDER_KEY);
  });

  it("serves the openai client with baseURL = the model's URL: chat, streaming chunk by chunk, Responses, embeddings", async () => {
    const m = (await (await api(h, "GET", "/v0/models/gpt-stand-in")).json()) as { metadata: { url: string }; spec: { runtime: { generation: string } } };
    expect(m.metadata.url).toBe(`${h.url}/run/default/models/gpt-stand-in`);
    const before = await tokens("gpt-stand-in");
    // the Hangar key as the client's apiKey: it travels as Authorization and stops at Hangar
    const client = new OpenAI({ apiKey: h.apiKey, baseURL: `${m.metadata.url}/v1`, maxRetries: 0 });
    provider.seen.length = 0;

    const chat = await client.chat.completions.create({ model: "gpt-stand-in", messages: [{ role: "user", content: "hi" }] });
    expect(chat.choices[0]!.message.content).toBe(STAND_IN_TEXT);

    const stream = await client.chat.completions.create({ model: "gpt-stand-in", messages: [{ role: "user", content: "hi" }], stream: true });
    const arrivals: number[] = [];
    let text = "";
    for await (const chunk of stream) {
      expect(chunk.choices.length).toBeGreaterThan(0); // the usage chunk Hangar asked for is not shown to a client that did not
      const piece = chunk.choices[0]!.delta.content;
      if (piece) {
        text += piece;
        arrivals.push(Date.now());
      }
    }
    expect(text).toBe(STAND_IN_TEXT);
    // sent 80 ms apart, they arrive apart: nothing buffered the stream
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThanOrEqual(3 * 60);
    expect(provider.seen.at(-1)!.body!.stream_options).toEqual({ include_usage: true });

    const resp = await client.responses.create({ model: "gpt-stand-in", input: "hi" });
    expect(resp.output_text).toBe(STAND_IN_TEXT);
    const rstream = await client.responses.create({ model: "gpt-stand-in", input: "hi", stream: true });
    let rtext = "";
    for await (const ev of rstream) if (ev.type === "response.output_text.delta") rtext += ev.delta;
    expect(rtext).toBe(STAND_IN_TEXT);

    const emb = await client.embeddings.create({ model: "gpt-stand-in", input: "hi" });
    expect(emb.data[0]!.embedding).toHaveLength(3);
    for (const s of provider.seen) expect(s.headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`);

    // usage: chat 15 + stream 15 + responses 15 + responses stream 15 + embeddings 10 (input only)
    const after = await tokens("gpt-stand-in");
    expect(after.requests - before.requests).toBe(5);
    expect(after.totalTokens - before.totalTokens).toBe(70);
    expect(after.inputTokens - before.inputTokens).toBe(50);
    expect(after.outputTokens - before.outputTokens).toBe(20);
  });

  it("forwards Anthropic messages with the key as x-api-key, streamed or not, and counts both", async () => {
    const before = await tokens("claude-stand-in");
    provider.seen.length = 0;
    const headers = { "anthropic-version": "2023-06-01", "x-api-key": "replaced" };
    const res = await call("claude-stand-in", "/v1/messages", { model: "x", max_tokens: 10, messages: [{ role: "user", content: "hi" }] }, h.apiKey, "default", headers);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { content: { text: string }[] }).content[0]!.text).toBe(STAND_IN_TEXT);
    expect(provider.seen.at(-1)!.headers["x-api-key"]).toBe(ANTHROPIC_KEY);
    expect(provider.seen.at(-1)!.body!.model).toBe("claude-stand-in-1");
    const sres = await call("claude-stand-in", "/v1/messages", { model: "x", max_tokens: 10, stream: true, messages: [{ role: "user", content: "hi" }] }, h.apiKey, "default", headers);
    expect(sres.headers.get("content-type")).toContain("text/event-stream");
    expect(await sres.text()).toContain("message_stop");
    const after = await tokens("claude-stand-in");
    expect(after.totalTokens - before.totalTokens).toBe(30);
  });

  it("answers 429 once a maxToken budget is used up, after letting the crossing request complete", async () => {
    await put("/v0/policies/tiny-budget", { metadata: { name: "tiny-budget" }, spec: { type: "maxToken", maxTokens: { granularity: "hour", step: 1, total: 20 } } });
    await model("budgeted", "openai", "stand-in-model", { integrationConnections: ["stand-in-openai"], policies: ["tiny-budget"] });
    const ask = () => call("budgeted", "/v1/chat/completions", { messages: [{ role: "user", content: "hi" }] });
    expect((await ask()).status).toBe(200); // 15 of 20
    expect((await ask()).status).toBe(200); // 30: crosses, still served
    const over = await ask();
    expect(over.status).toBe(429);
    const problem = (await over.json()) as { type: string; policy: string; used: number; limit: number };
    expect(problem).toMatchObject({ type: "urn:hangar:problem:token_budget_exceeded", policy: "tiny-budget", used: 30, limit: 20 });
    const usages = (await (await api(h, "GET", "/v0/policies/tiny-budget/usages")).json()) as { models: string[] };
    expect(usages.models).toEqual(["budgeted"]);
    expect((await api(h, "DELETE", "/v0/policies/tiny-budget")).status).toBe(409);
  });

  it("normalizes provider failures, keeping the provider's status; times out; reports an unreachable provider", async () => {
    const failed = await call("broken", "/v1/chat/completions", { messages: [] });
    expect(failed.status).toBe(500);
    expect(await failed.json()).toMatchObject({ type: "urn:hangar:problem:provider_error", status: 500, providerStatus: 500, provider: "openai", detail: expect.stringContaining("the stand-in broke") });
    const t0 = Date.now();
    const slow = await call("sleepy", "/v1/chat/completions", { messages: [] });
    expect(slow.status).toBe(504);
    expect(Date.now() - t0).toBeLessThan(6_000);
    expect(((await slow.json()) as { type: string }).type).toBe("urn:hangar:problem:upstream_timeout");
    const gone = await call("unreachable", "/v1/chat/completions", { messages: [] });
    expect(gone.status).toBe(502);
    expect(((await gone.json()) as { type: string }).type).toBe("urn:hangar:problem:upstream_unreachable");
  });

  it("refuses callers without a key of the model's workspace", async () => {
    expect((await call("gpt-stand-in", "/v1/chat/completions", {}, keyB)).status).toBe(403);
    expect((await call("gpt-stand-in", "/v1/chat/completions", {}, keyB, "team-b")).status).toBe(404);
    const anon = await fetch(`${h.url}/run/default/models/gpt-stand-in/v1/chat/completions`, { method: "POST", headers: { authorization: "Bearer replaced" }, body: "{}" });
    expect(anon.status).toBe(401);
  });

  it("marks a model whose location policies this node does not satisfy as failed, with the reason", async () => {
    await put("/v0/policies/us-only", { metadata: { name: "us-only" }, spec: { type: "location", locations: [{ type: "country", name: "us" }] } });
    await put("/v0/policies/europe", { metadata: { name: "europe" }, spec: { type: "location", locations: [{ type: "continent", name: "eu" }] } });
    const failed = await model("us-model", "openai", "stand-in-model", { integrationConnections: ["stand-in-openai"], policies: ["us-only"] });
    expect(failed.status).toBe("FAILED");
    expect(JSON.stringify(failed.events)).toContain("country us");
    expect((await call("us-model", "/v1/chat/completions", { messages: [] })).status).toBe(503);
    // union within a type: US or Europe is satisfied here
    const ok = await model("us-model", "openai", "stand-in-model", { integrationConnections: ["stand-in-openai"], policies: ["us-only", "europe"] });
    expect(ok.status).toBe("DEPLOYED");
    const revisions = (await (await api(h, "GET", "/v0/models/us-model/revisions")).json()) as { active: boolean }[];
    expect(revisions.length).toBe(2);
    expect(revisions[0]!.active).toBe(true);
    // an agent whose policies this node does not satisfy fails to deploy, saying why
    await put("/v0/agents/us-agent", { metadata: { name: "us-agent" }, spec: { runtime: { image: "hangar/base", memory: 256 }, policies: ["us-only"] } });
    const deadline = Date.now() + 20_000;
    let agent: { status: string; events: { message: string }[] };
    do {
      agent = (await (await api(h, "GET", "/v0/agents/us-agent")).json()) as typeof agent;
      if (agent.status === "FAILED") break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    expect(agent.status).toBe("FAILED");
    expect(agent.events.at(-1)!.message).toMatch(/no node satisfies the workload's policies: .*country us/);
    expect(((await (await api(h, "GET", "/v0/policies/us-only/usages")).json()) as { agents: string[] }).agents).toEqual(["us-agent"]);
  });

  it("drives connections, models and policies with the unmodified @blaxel/core", async () => {
    useSdkAgainst(h);
    const sdk = await import("@blaxel/core");
    const conns = await sdk.listIntegrationConnections({ throwOnError: true });
    expect(conns.data.map((c) => c.metadata.name)).toContain("stand-in-openai");
    await sdk.createIntegrationConnection({ body: { metadata: { name: "sdk-conn" }, spec: { integration: "mistral", secret: { apiKey: "sk-mistral" } } }, throwOnError: true });
    const created = await sdk.createModel({ body: { metadata: { name: "sdk-model" }, spec: { runtime: { type: "mistral", model: "mistral-small-latest" }, integrationConnections: ["sdk-conn"] } }, throwOnError: true });
    expect(created.data.metadata.url).toBe(`${h.url}/run/default/models/sdk-model`);
    const got = await sdk.getModel({ path: { modelName: "sdk-model" }, throwOnError: true });
    expect(got.data.spec.runtime?.model).toBe("mistral-small-latest");
    const list = (await sdk.listModels({ throwOnError: true })).data as unknown as { data: { metadata: { name: string } }[] };
    expect(list.data.map((m) => m.metadata.name)).toContain("sdk-model");
    expect((await sdk.listModelRevisions({ path: { modelName: "sdk-model" }, throwOnError: true })).data).toHaveLength(1);
    await sdk.createPolicy({ body: { metadata: { name: "sdk-policy" }, spec: { type: "maxToken", maxTokens: { granularity: "day", step: 1, total: 1000 } } }, throwOnError: true });
    expect((await sdk.getPolicyUsages({ path: { policyName: "sdk-policy" }, throwOnError: true })).data.models).toEqual([]);
    await expect(sdk.createModel({ body: { metadata: { name: "bad" }, spec: { runtime: { type: "nope" as "openai" } } }, throwOnError: true })).rejects.toMatchObject({ code: 400 });
    await expect(sdk.getModel({ path: { modelName: "missing" }, throwOnError: true })).rejects.toMatchObject({ code: 404 });
    expect((await sdk.deleteModel({ path: { modelName: "sdk-model" }, throwOnError: true })).data.metadata.name).toBe("sdk-model");
  });

  it("lists models, policies and connections with the hangar CLI", () => {
    const hangar = (...args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { ...process.env, HANGAR_URL: h.url, HANGAR_API_KEY: h.apiKey, HANGAR_CONFIG: "/nonexistent/hangar.json" } });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    expect(hangar("get", "models")).toMatch(/gpt-stand-in\s+DEPLOYED\s+openai\s+stand-in-model/);
    expect(hangar("get", "policies")).toMatch(/tiny-budget\s+maxToken\s+total ≤ 20 per 1 hour/);
    const conns = hangar("get", "connections");
    expect(conns).toMatch(/stand-in-anthropic\s+anthropic/);
    expect(conns).not.toContain(ANTHROPIC_KEY);
    expect(hangar("delete", "model", "us-model")).toContain("model/us-model deleted");
  });

  it("answers the framework adapters with env vars only: @blaxel/langgraph and @blaxel/llamaindex", async () => {
    useSdkAgainst(h);
    const { blModel: langgraphModel } = await import("@blaxel/langgraph");
    provider.seen.length = 0;
    const chat = await langgraphModel("classic");
    const answer = await chat.invoke("hi");
    expect(answer.content).toBe(STAND_IN_TEXT);
    // 0.2.18 sends its key as Authorization and no workspace header: the path names the workspace
    expect(provider.seen.at(-1)!.headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`);
    const streamed: string[] = [];
    for await (const c of await chat.stream("hi")) if (typeof c.content === "string" && c.content) streamed.push(c.content);
    expect(streamed.join("")).toBe(STAND_IN_TEXT);

    const { blModel: llamaModel } = await import("@blaxel/llamaindex");
    const llm = await llamaModel("gpt-stand-in"); // mk3: metadata.url + "/v1"
    const r = await llm.chat({ messages: [{ role: "user", content: "hi" }] });
    expect(String(r.message.content)).toBe(STAND_IN_TEXT);
    let llamaText = "";
    for await (const c of await llm.chat({ messages: [{ role: "user", content: "hi" }], stream: true })) llamaText += c.delta;
    expect(llamaText).toBe(STAND_IN_TEXT);

    // Anthropic through LangChain's client: its own key is a placeholder, Hangar's travels in x-blaxel-authorization
    process.env.ANTHROPIC_API_KEY = "replaced";
    const claude = await langgraphModel("claude-stand-in");
    expect((await claude.invoke("hi")).content).toBe(STAND_IN_TEXT);
    expect(provider.seen.at(-1)!.headers["x-api-key"]).toBe(ANTHROPIC_KEY);
  });

  it("keeps connections, models and the usage it counted across a kill -9", async () => {
    const before = await tokens("classic");
    expect((await call("classic", "/chat/completions", { messages: [{ role: "user", content: "hi" }] })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_500)); // usage is written once a second
    await h.kill9();
    h = await h.restart();
    const after = await tokens("classic");
    expect(after.totalTokens - before.totalTokens).toBe(15);
    provider.seen.length = 0;
    expect((await call("classic", "/chat/completions", { messages: [{ role: "user", content: "hi" }] })).status).toBe(200);
    expect(provider.seen.at(-1)!.headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`);
  });
});
