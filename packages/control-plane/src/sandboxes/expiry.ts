// When a sandbox record is due to expire, from its spec and the freshest activity known. Shared by
// the expiry reaper (which acts on it) and by every read (which reports it), so a read never says
// TERMINATED for a sandbox the reaper would keep, and never says DEPLOYED for one it would end.

import type { SandboxEvent, SandboxRecord } from "@hangar/store";
import { type SandboxSpecDoc, computeExpiry } from "./sandbox-spec.js";

/** Statuses the reaper leaves alone: a deletion or a creation (or reboot) is in flight. */
const NOT_EXPIRING = new Set(["DELETING", "DEPLOYING", "TERMINATED"]);

export const EXPIRED_MESSAGE = "expired by its TTL or lifecycle policy";

/**
 * When the record really expires (ms since the epoch), using the later of its stored lastUsedAt and
 * `activeMs` (the node's last activity, newer than the store's). Null when nothing expires it.
 */
export function expiryDue(rec: SandboxRecord, activeMs: number | null): number | null {
  const last = Math.max(Date.parse(rec.lastUsedAt), activeMs ?? 0);
  return computeExpiry(rec.spec as unknown as SandboxSpecDoc, rec.createdAt, new Date(last).toISOString())?.getTime() ?? null;
}

/**
 * The record as it stands at `now`: unchanged, or — when it is past its expiry and the reaper has
 * not ended it yet — a copy that is TERMINATED as of its due time, which is what the reaper will
 * store. `activity` gives the node's last activity; it is asked only for records whose stored
 * expiry has passed (the stored value is never later than the real one, so a future one settles it).
 */
export function asOf(rec: SandboxRecord, now: number, activity: (id: string) => number | null): SandboxRecord {
  if (rec.terminatedAt || rec.expiresAt === null || NOT_EXPIRING.has(rec.status)) return rec;
  if (Date.parse(rec.expiresAt) > now) return rec;
  const due = expiryDue(rec, activity(rec.id));
  if (due === null || due > now) return rec;
  const at = new Date(due).toISOString();
  const ended: SandboxEvent = { type: "deployment", status: "TERMINATED", message: EXPIRED_MESSAGE, time: at };
  return { ...rec, status: "TERMINATED", terminatedAt: at, events: [...rec.events, ended] };
}
