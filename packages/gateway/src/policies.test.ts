import { describe, expect, it } from "vitest";
import { normalizePolicy, parsePlacement, placementAllowed, windowMs } from "./policies.js";

const policy = (name: string, spec: unknown) => ({ name, spec: normalizePolicy(spec) });

describe("policies", () => {
  it("validate each type with a message naming the field", () => {
    expect(() => normalizePolicy({ type: "nope" })).toThrow(/spec.type/);
    expect(() => normalizePolicy({ type: "location", locations: [] })).toThrow(/spec.locations/);
    expect(() => normalizePolicy({ type: "flavor", flavors: [{ type: "tpu", name: "x" }] })).toThrow(/spec.flavors\[0\].type/);
    expect(() => normalizePolicy({ type: "maxToken", maxTokens: { granularity: "week", total: 1 } })).toThrow(/granularity/);
    expect(() => normalizePolicy({ type: "maxToken", maxTokens: { granularity: "hour", step: 0, total: 1 } })).toThrow(/step/);
    expect(() => normalizePolicy({ type: "maxToken", maxTokens: { granularity: "hour", total: 0 } })).toThrow(/at least one/);
    const p = normalizePolicy({ type: "maxToken", maxTokens: { granularity: "hour", step: 2, total: 100 } });
    expect(p.maxTokens).toEqual({ granularity: "hour", step: 2, input: 0, output: 0, total: 100 });
    expect(windowMs(p.maxTokens!)).toBe(2 * 3_600_000);
  });

  it("combine as the docs say: union within a type, intersection across types", () => {
    const A = policy("a", { type: "location", locations: [{ type: "country", name: "US" }] });
    const B = policy("b", { type: "location", locations: [{ type: "continent", name: "na" }, { type: "continent", name: "eu" }] });
    const C = policy("c", { type: "flavor", flavors: [{ type: "gpu", name: "t4" }] });
    const paris = parsePlacement("country:fr,continent:eu", "cpu:x86");
    const ohioGpu = parsePlacement("country:us,continent:na", "cpu:x86,gpu:t4");
    expect(placementAllowed([A], paris).ok).toBe(false);
    expect(placementAllowed([A, B], paris).ok).toBe(true); // union: Europe is allowed by B
    expect(placementAllowed([B, C], paris).ok).toBe(false); // intersection: no T4 here
    expect(placementAllowed([A, C], ohioGpu).ok).toBe(true);
    expect(placementAllowed([A, B, C], ohioGpu).ok).toBe(true);
    const r = placementAllowed([A], parsePlacement(undefined, undefined));
    expect(r.ok === false && r.reason).toMatch(/no declared location/);
    expect(() => parsePlacement("planet:mars", undefined)).toThrow(/HANGAR_NODE_LOCATION/);
  });
});
