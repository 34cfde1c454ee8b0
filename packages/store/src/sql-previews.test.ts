import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type TestStore, openTestStore } from "./test-support.js";
import type { PreviewRecord, SqlStore } from "./index.js";

let t: TestStore;
let store: SqlStore;

function preview(id: string, sandboxId = "sb1"): PreviewRecord {
  const now = new Date().toISOString();
  return { id, workspaceId: "ws1", sandboxId, name: id, label: `label-${id}`, port: 3000, public: true, prefixUrl: null, customDomain: null, requestHeaders: {}, responseHeaders: {}, expiresAt: null, createdAt: now, updatedAt: now };
}

beforeEach(async () => {
  t = await openTestStore();
  ({ store } = t);
});

afterEach(() => t.close());

describe("preview host ports", () => {
  it("hands out ports of the range once each, after the highest in use, and none when the range is full", async () => {
    for (const id of ["a", "b", "c", "d"]) await store.previews.insert(preview(id));
    expect(await store.previews.claimHostPort("a", 100, 102)).toBe(100);
    expect(await store.previews.claimHostPort("b", 100, 102, new Set([101]))).toBe(102);
    // 101 was skipped (held elsewhere on the host); after the top (102) the range wraps to it
    expect(await store.previews.claimHostPort("c", 100, 102)).toBe(101);
    expect(await store.previews.claimHostPort("d", 100, 102)).toBeNull();
    expect((await store.previews.getByHostPort(102))?.id).toBe("b");
    expect(await store.previews.listHostPorts()).toEqual([100, 101, 102]);
    // two previews never hold one port: the unique index refuses it
    await expect(store.previews.update("d", { hostPort: 100 })).rejects.toThrow();
  });

  it("frees a port when its preview or its sandbox's previews are deleted", async () => {
    await store.previews.insert(preview("a"));
    await store.previews.insert(preview("b", "sb2"));
    expect(await store.previews.claimHostPort("a", 100, 101)).toBe(100);
    expect(await store.previews.claimHostPort("b", 100, 101)).toBe(101);
    await store.previews.delete("a");
    await store.previews.deleteForSandbox("sb2");
    expect(await store.previews.listHostPorts()).toEqual([]);
    await store.previews.insert(preview("c"));
    expect(await store.previews.claimHostPort("c", 100, 101)).toBe(100);
    expect((await store.previews.get("sb1", "c"))?.hostPort).toBe(100);
  });
});
