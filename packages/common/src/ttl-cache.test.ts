import { describe, expect, it } from "vitest";
import { TtlCache } from "./ttl-cache.js";

describe("TtlCache.getOrLoad", () => {
  it("loads once per key while fresh, caches null, and caches nothing when the load throws", async () => {
    const c = new TtlCache<string, string | null>(60_000);
    let loads = 0;
    const load = async () => (++loads, null);
    expect(await c.getOrLoad("a", load)).toBeNull();
    expect(await c.getOrLoad("a", load)).toBeNull();
    expect(loads).toBe(1);
    await expect(c.getOrLoad("b", async () => Promise.reject(new Error("no")))).rejects.toThrow("no");
    expect(await c.getOrLoad("b", async () => "v")).toBe("v");
  });

  it("loads again once the entry is older than the ttl", async () => {
    const c = new TtlCache<string, number>(20);
    let n = 0;
    expect(await c.getOrLoad("k", async () => ++n)).toBe(1);
    await new Promise((r) => setTimeout(r, 40));
    expect(await c.getOrLoad("k", async () => ++n)).toBe(2);
  });
});
