import { HangarError } from "./errors.js";

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses Blaxel durations such as "30s", "5m", "1h", "2d", "1w" into milliseconds. */
export function parseDuration(value: string, field = "duration"): number {
  const m = /^(\d+)([smhdw])$/.exec(value.trim());
  if (!m) {
    throw new HangarError("validation_failed", `${field} must be a number followed by s, m, h, d or w (e.g. "30m"); got ${JSON.stringify(value)}`);
  }
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new HangarError("validation_failed", `${field} must be a positive duration; got ${JSON.stringify(value)}`);
  }
  return ms;
}
