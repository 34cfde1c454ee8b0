import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type TestStore, openTestStore } from "./test-support.js";
import type { BuildRecord, SqlStore } from "./index.js";

let t: TestStore;
let store: SqlStore;

function build(id: string, over: Partial<BuildRecord> = {}): BuildRecord {
  const now = new Date().toISOString();
  return {
    id,
    workspaceId: "ws1",
    resourceType: "sandboxes",
    resourceName: "app",
    status: "UPLOADING",
    uploadExpiresAt: new Date(Date.now() + 60_000).toISOString(),
    sourceDigest: null,
    sourceBytes: null,
    image: null,
    error: null,
    attempts: 0,
    leaseOwner: null,
    leaseExpiresAt: null,
    observedAt: null,
    stats: {},
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    ...over,
  };
}

beforeEach(async () => {
  t = await openTestStore();
  ({ store } = t);
});

afterEach(() => t.close());

describe("builds", () => {
  it("finds a build by its upload token only while it is unused and unexpired", async () => {
    await store.builds.insert(build("b1"), "hash1");
    const now = new Date().toISOString();
    expect((await store.builds.findByUploadToken("hash1", now))?.id).toBe("b1");
    expect(await store.builds.findByUploadToken("hash1", new Date(Date.now() + 120_000).toISOString())).toBeNull();
    expect(await store.builds.update("b1", { status: "QUEUED", uploadTokenHash: null }, ["UPLOADING"])).not.toBeNull();
    expect(await store.builds.findByUploadToken("hash1", now)).toBeNull();
    // a second upload with the same token finds nothing to move
    expect(await store.builds.update("b1", { status: "QUEUED" }, ["UPLOADING"])).toBeNull();
  });

  it("hands each queued build to one claimer, and a build whose lease ran out to the next", async () => {
    await store.builds.insert(build("b1", { status: "QUEUED" }), "h1");
    await store.builds.insert(build("b2", { status: "QUEUED", createdAt: new Date(Date.now() + 1).toISOString() }), "h2");
    const now = new Date();
    const until = new Date(now.getTime() + 30_000).toISOString();
    const [a, b, c] = await Promise.all([
      store.builds.claim("s1", now.toISOString(), until),
      store.builds.claim("s2", now.toISOString(), until),
      store.builds.claim("s3", now.toISOString(), until),
    ]);
    const claimed = [a, b, c].filter((x) => x !== null);
    expect(claimed.map((x) => x!.id).sort()).toEqual(["b1", "b2"]);
    expect(claimed.every((x) => x!.status === "BUILDING" && x!.attempts === 1)).toBe(true);
    const holder = claimed.find((x) => x!.id === "b1")!.leaseOwner!;
    expect(await store.builds.renew("b1", "someone-else", until)).toBe(false);
    expect(await store.builds.renew("b1", holder, until)).toBe(true);
    // later than the lease: the build is claimable again (its server died), attempt 2
    const later = new Date(now.getTime() + 60_000);
    const again = await store.builds.claim("s4", later.toISOString(), new Date(later.getTime() + 30_000).toISOString());
    expect(again?.attempts).toBe(2);
    expect(again?.leaseOwner).toBe("s4");
  });

  it("keeps log lines in order and lists a resource's builds newest first", async () => {
    await store.builds.insert(build("b1"), "h1");
    await store.builds.insert(build("b2", { createdAt: new Date(Date.now() + 5).toISOString() }), "h2");
    await store.builds.appendLogs("b1", [
      { time: "t1", severity: 5, message: "one" },
      { time: "t2", severity: 9, message: "two" },
    ]);
    await store.builds.appendLogs("b1", [{ time: "t3", severity: 5, message: "three" }]);
    expect((await store.builds.logs("b1")).map((l) => `${l.seq}:${l.message}`)).toEqual(["1:one", "2:two", "3:three"]);
    expect((await store.builds.logs("b1", 2)).map((l) => l.message)).toEqual(["three"]);
    expect((await store.builds.listForResource("ws1", "sandboxes", "app")).map((b) => b.id)).toEqual(["b2", "b1"]);
    expect(await store.builds.delete("b1")).toBe(true);
    expect(await store.builds.logs("b1")).toEqual([]);
  });
});
