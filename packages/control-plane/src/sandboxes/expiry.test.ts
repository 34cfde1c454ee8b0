import type { SandboxRecord } from "@hangar/store";
import { describe, expect, it } from "vitest";
import { asOf, expiryDue } from "./expiry.js";
import { computeExpiry, normalizeSpec } from "./sandbox-spec.js";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();

/** A DEPLOYED record created at T0, last used at `lastUsed`, with its stored expiry computed then. */
function record(spec: unknown, lastUsed = T0, status = "DEPLOYED"): SandboxRecord {
  const doc = normalizeSpec(spec);
  return {
    id: "sb1",
    workspaceId: "ws1",
    name: "box",
    externalId: null,
    displayName: "box",
    labels: {},
    status,
    state: "RUNNING",
    spec: doc as unknown as Record<string, unknown>,
    events: [],
    node: "local",
    createdAt: iso(T0),
    updatedAt: iso(T0),
    lastUsedAt: iso(lastUsed),
    expiresAt: computeExpiry(doc, iso(T0), iso(lastUsed))?.toISOString() ?? null,
    terminatedAt: null,
    version: 1,
  };
}

const idle = () => null;

describe("a sandbox as it stands when read", () => {
  it("reads TERMINATED as soon as its ttl, expires date or ttl-max-age policy has passed, as of that time", () => {
    for (const spec of [
      { runtime: { ttl: "1s" } },
      { runtime: { expires: iso(T0 + 1_000) } },
      { lifecycle: { expirationPolicies: [{ type: "ttl-max-age", value: "1s", action: "delete" }] } },
    ]) {
      const rec = record(spec);
      expect(asOf(rec, T0 + 999, idle)).toBe(rec);
      const ended = asOf(rec, T0 + 1_100, idle);
      expect(ended.status).toBe("TERMINATED");
      expect(ended.terminatedAt).toBe(iso(T0 + 1_000));
      expect(ended.events.at(-1)).toMatchObject({ status: "TERMINATED", time: iso(T0 + 1_000) });
      expect(rec.status).toBe("DEPLOYED"); // the stored record is left to the reaper
    }
  });

  it("ttl-idle: judged with the node's freshest activity, so a busy sandbox never reads TERMINATED early", () => {
    const rec = record({ lifecycle: { expirationPolicies: [{ type: "ttl-idle", value: "3s", action: "delete" }] } });
    // the store says idle since T0; the node saw it used at T0 + 2 s
    expect(asOf(rec, T0 + 4_000, () => T0 + 2_000)).toBe(rec);
    expect(expiryDue(rec, T0 + 2_000)).toBe(T0 + 5_000);
    expect(asOf(rec, T0 + 5_000, () => T0 + 2_000).status).toBe("TERMINATED");
    // busy now (the node reports now): kept
    expect(asOf(rec, T0 + 60_000, () => T0 + 60_000)).toBe(rec);
    // nothing fresher than the store: due 3 s after the stored last use
    expect(asOf(rec, T0 + 3_000, idle).status).toBe("TERMINATED");
  });

  it("leaves alone what the reaper leaves alone: no expiry, a future stored expiry, creations and deletions in flight", () => {
    const never = record({});
    expect(asOf(never, T0 + 1e9, idle)).toBe(never);
    for (const status of ["DEPLOYING", "DELETING"]) {
      const rec = record({ runtime: { ttl: "1s" } }, T0, status);
      expect(asOf(rec, T0 + 5_000, idle)).toBe(rec);
    }
    const ended = { ...record({ runtime: { ttl: "1s" } }), status: "TERMINATED", terminatedAt: iso(T0 + 1_000) };
    expect(asOf(ended, T0 + 5_000, idle)).toBe(ended);
    // failed sandboxes expire too, as the reaper ends them
    expect(asOf(record({ runtime: { ttl: "1s" } }, T0, "FAILED"), T0 + 5_000, idle).status).toBe("TERMINATED");
    // activity is asked only once the stored expiry has passed
    const rec = record({ runtime: { ttl: "1h" } });
    expect(asOf(rec, T0 + 1_000, () => { throw new Error("asked"); })).toBe(rec);
  });
});
