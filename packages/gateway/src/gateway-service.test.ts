import { silentLogger } from "@hangar/common";
import { type TestStore, openTestStore } from "@hangar/store/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Accountant } from "./accountant.js";
import { GatewayService } from "./gateway-service.js";
import { parsePlacement } from "./policies.js";
import { connectionView } from "./routes.js";

let t: TestStore;
let service: GatewayService;
let changes = 0;

beforeEach(async () => {
  t = await openTestStore();
  changes = 0;
  service = new GatewayService({ store: t.store, secrets: t.secrets, placement: parsePlacement("country:fr,continent:eu", "cpu:x86"), onChange: () => changes++ });
});
afterEach(() => t.close());

const conn = (name: string, spec: Record<string, unknown>) => ({ metadata: { name }, spec });

describe("GatewayService", () => {
  it("seals connection secrets, never shows them, and keeps them when sent back empty", async () => {
    const rec = await service.applyConnection(t.workspace, conn("oa", { integration: "openai", secret: { apiKey: "sk-123" } }), { mustCreate: true });
    expect(JSON.stringify(rec.spec)).not.toContain("sk-123");
    expect(JSON.stringify(connectionView(rec, t.workspace))).not.toContain("sk-123");
    expect((connectionView(rec, t.workspace).spec as { secret: unknown }).secret).toEqual({ apiKey: "" });
    const again = await service.applyConnection(t.workspace, conn("oa", { integration: "openai", config: { url: "https://api.openai.com" }, secret: { apiKey: "" } }), { name: "oa" });
    expect(service.revealSecrets(again)).toEqual({ apiKey: "sk-123" });
    expect(changes).toBe(2);
    await expect(service.applyConnection(t.workspace, conn("oa", { integration: "openai", secret: { apiKey: "x" } }), { mustCreate: true })).rejects.toMatchObject({ code: "already_exists" });
  });

  it("refuses unknown integrations, missing keys and URLs the caller may not point at", async () => {
    await expect(service.applyConnection(t.workspace, conn("x", { integration: "acme", secret: { apiKey: "k" } }), {})).rejects.toThrow(/spec.integration/);
    await expect(service.applyConnection(t.workspace, conn("x", { integration: "anthropic" }), {})).rejects.toThrow(/spec.secret.apiKey/);
    await expect(service.applyConnection(t.workspace, conn("x", { integration: "openai-compatible" }), {})).rejects.toThrow(/spec.config.url/);
    const local = conn("x", { integration: "openai-compatible", config: { url: "http://127.0.0.1:11434" } });
    await expect(service.applyConnection(t.workspace, local, {})).rejects.toMatchObject({ code: "forbidden" });
    await expect(service.applyConnection(t.workspace, conn("x", { integration: "openai-compatible", config: { url: "http://169.254.169.254" } }), { admin: true })).rejects.toThrow(/link-local/);
    expect((await service.applyConnection(t.workspace, local, { admin: true })).name).toBe("x");
  });

  it("validates models against their connections and policies, and resolves what serves them", async () => {
    await service.applyConnection(t.workspace, conn("ant", { integration: "anthropic", secret: { apiKey: "sk-ant" } }), {});
    const model = (spec: Record<string, unknown>) => service.applyModel(t.workspace, { metadata: { name: "m" }, spec }, { name: "m" });
    await expect(model({ runtime: { type: "nope" } })).rejects.toThrow(/spec.runtime.type/);
    await expect(model({ runtime: { type: "openai" }, integrationConnections: ["ant"] })).rejects.toThrow(/serves anthropic models/);
    await expect(model({ runtime: { type: "anthropic" }, policies: ["missing"] })).rejects.toThrow(/policy 'missing' not found/);
    await service.applyPolicy(t.workspace, { metadata: { name: "agents-only" }, spec: { type: "location", locations: [{ type: "country", name: "fr" }], resourceTypes: ["agent"] } }, {});
    await expect(model({ runtime: { type: "anthropic" }, policies: ["agents-only"] })).rejects.toThrow(/not models/);
    const rec = await model({ runtime: { type: "anthropic", model: "claude-x" } });
    expect(rec.revisions).toHaveLength(1);
    // no connection named: the workspace's anthropic connection serves it
    const r = await service.resolveModel(t.workspace.id, "m");
    expect(r).toMatchObject({ baseUrl: "https://api.anthropic.com", authHeaders: { "x-api-key": "sk-ant" } });
    expect(r!.unavailable).toBeUndefined();
    expect((await model({ runtime: { type: "anthropic", model: "claude-y" } })).revisions).toHaveLength(2);
    expect((await model({ runtime: { type: "anthropic", model: "claude-y" } })).revisions).toHaveLength(2); // unchanged: no new revision
    await model({ runtime: { type: "anthropic" }, enabled: false });
    expect((await service.resolveModel(t.workspace.id, "m"))!.unavailable).toMatch(/disabled/);
    await expect(service.delete(t.workspace, "connections", "ant")).resolves.toBeTruthy(); // nothing names it
  });
});

describe("Accountant", () => {
  it("counts usage, writes it in batches, and calls a budget used up only once it is crossed", async () => {
    const acc = new Accountant(t.store, silentLogger);
    const budget = [{ name: "b", spec: { maxTokens: { granularity: "hour" as const, step: 1, input: 0, output: 0, total: 20 } } }];
    expect(await acc.overBudget("ws1", "m", budget)).toBeNull();
    acc.record("ws1", "m", { input: 10, output: 5, total: 15 });
    expect(await acc.overBudget("ws1", "m", budget)).toBeNull(); // 15 < 20
    acc.record("ws1", "m", { input: 10, output: 5, total: 15 });
    expect(await acc.overBudget("ws1", "m", budget)).toMatchObject({ policy: "b", metric: "total", used: 30, limit: 20 });
    await acc.flush();
    expect(await acc.overBudget("ws1", "m", budget)).toMatchObject({ used: 30 }); // same count once stored
    acc.record("ws1", "m", { input: 1, output: 1, total: 2 });
    expect((await acc.sums("ws1", "m", 3_600_000)).total).toBe(32);
    await acc.close();
    const rows = await t.store.gateway.usage("ws1", "m", "2000-01-01T00:00:00.000Z");
    expect(rows.reduce((n, r) => n + r.totalTokens, 0)).toBe(32);
    expect(rows.reduce((n, r) => n + r.requests, 0)).toBe(3);
    expect(await acc.overBudget("ws1", "other", budget)).toBeNull();
  });
});
