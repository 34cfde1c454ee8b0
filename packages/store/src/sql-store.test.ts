import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type TestStore, openTestStore } from "./test-support.js";
import { type SandboxRecord, SecretBox, type SqlStore, StoreConflictError, StoreCursorError, openSqliteStore } from "./index.js";

let t: TestStore;
let dir: string;
let store: SqlStore;

function sandbox(over: Partial<SandboxRecord> & { id: string; name: string }): SandboxRecord {
  const now = new Date().toISOString();
  return {
    workspaceId: "ws1",
    externalId: null,
    displayName: "",
    labels: {},
    status: "DEPLOYED",
    state: "RUNNING",
    spec: {},
    events: [],
    node: "local",
    createdAt: now,
    updatedAt: now,
    lastUsedAt: now,
    expiresAt: null,
    terminatedAt: null,
    version: 1,
    ...over,
  };
}

beforeEach(async () => {
  t = await openTestStore();
  ({ dir, store } = t);
});

afterEach(async () => {
  // a test may have reopened the store on the same dir
  if (store !== t.store) await store.close();
  await t.close();
});

describe("sandboxes", () => {
  it("refuses a second live sandbox with the same name but allows it after termination", async () => {
    await store.sandboxes.insert(sandbox({ id: "a", name: "x" }));
    await expect(store.sandboxes.insert(sandbox({ id: "b", name: "x" }))).rejects.toBeInstanceOf(StoreConflictError);
    await store.sandboxes.update("a", { status: "TERMINATED", terminatedAt: new Date().toISOString() });
    await store.sandboxes.insert(sandbox({ id: "c", name: "x" }));
    expect((await store.sandboxes.get("ws1", "x"))?.id).toBe("c");
  });

  it("updates with optimistic concurrency", async () => {
    await store.sandboxes.insert(sandbox({ id: "a", name: "x" }));
    const u = await store.sandboxes.update("a", { labels: { k: "v" } }, 1);
    expect(u?.version).toBe(2);
    expect(await store.sandboxes.update("a", { labels: {} }, 1)).toBeNull();
  });

  it("pages through a listing with cursors in every sort, without repeats", async () => {
    const base = Date.parse("2026-01-01T00:00:00Z");
    for (let i = 0; i < 23; i++) {
      // Two items share each timestamp so the id tiebreak is exercised.
      await store.sandboxes.insert(sandbox({ id: `id${String(i).padStart(2, "0")}`, name: `sb-${String(22 - i).padStart(2, "0")}`, createdAt: new Date(base + Math.floor(i / 2) * 1000).toISOString() }));
    }
    for (const sort of ["createdAt:desc", "createdAt:asc", "name:asc", "name:desc"] as const) {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.sandboxes.list("ws1", { sort, limit: 5, cursor });
        expect(page.total).toBe(23);
        seen.push(...page.items.map((s) => s.name));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(new Set(seen).size, sort).toBe(23);
      const sorted = [...seen].sort();
      if (sort === "name:asc") expect(seen).toEqual(sorted);
      if (sort === "name:desc") expect(seen).toEqual(sorted.reverse());
    }
    const tail = await store.sandboxes.list("ws1", { sort: "createdAt:asc", limit: 3, anchorEnd: true });
    expect(tail.items.map((s) => s.id)).toEqual(["id20", "id21", "id22"]);
  });

  it("filters by q, labels, status and externalId, and rejects foreign cursors", async () => {
    await store.sandboxes.insert(sandbox({ id: "a", name: "alpha", labels: { env: "dev" }, externalId: "ext-1" }));
    await store.sandboxes.insert(sandbox({ id: "b", name: "beta", labels: { env: "prod" }, displayName: "The Beta", status: "FAILED" }));
    const names = async (q: Parameters<typeof store.sandboxes.list>[1]) => (await store.sandboxes.list("ws1", q)).items.map((s) => s.name).sort();
    expect(await names({ sort: "name:asc", limit: 50, q: "beta" })).toEqual(["beta"]);
    expect(await names({ sort: "name:asc", limit: 50, q: "prod" })).toEqual(["beta"]);
    expect(await names({ sort: "name:asc", limit: 50, labels: { env: "dev" } })).toEqual(["alpha"]);
    expect(await names({ sort: "name:asc", limit: 50, statuses: ["FAILED"] })).toEqual(["beta"]);
    expect(await names({ sort: "name:asc", limit: 50, externalId: "ext-1" })).toEqual(["alpha"]);
    expect(await names({ sort: "name:asc", limit: 50, q: "%" })).toEqual([]);
    const p = await store.sandboxes.list("ws1", { sort: "name:asc", limit: 1 });
    await expect(store.sandboxes.list("ws1", { sort: "name:desc", limit: 1, cursor: p.nextCursor! })).rejects.toBeInstanceOf(StoreCursorError);
    await expect(store.sandboxes.list("ws1", { sort: "name:asc", limit: 1, cursor: "garbage" })).rejects.toBeInstanceOf(StoreCursorError);
  });
});

describe("durability", () => {
  it("keeps a committed write when the writing process is killed with SIGKILL", async () => {
    await store.close();
    const script = `
      const { openSqliteStore } = await import(${JSON.stringify(new URL("./index.ts", import.meta.url).pathname)});
      const s = await openSqliteStore(${JSON.stringify(dir)});
      const now = new Date().toISOString();
      await s.workspaces.create({ id: "ws2", name: "second", displayName: "", labels: {}, createdAt: now, updatedAt: now });
      process.kill(process.pid, "SIGKILL");
    `;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" });
    expect(r.signal).toBe("SIGKILL");
    store = await openSqliteStore(dir);
    expect((await store.workspaces.getByName("second"))?.id).toBe("ws2");
  });
});

describe("secret box", () => {
  it("round-trips, keeps the key private and refuses tampering", () => {
    const box = SecretBox.open(dir);
    const sealed = box.seal("s3cret");
    expect(sealed).not.toContain("s3cret");
    expect(box.open(sealed)).toBe("s3cret");
    expect(statSync(join(dir, "secret.key")).mode & 0o777).toBe(0o600);
    const tampered = sealed.slice(0, -4) + (sealed.endsWith("AAAA") ? "BBBB" : "AAAA");
    expect(() => box.open(tampered)).toThrow();
    expect(SecretBox.open(dir).open(sealed)).toBe("s3cret");
  });
});
