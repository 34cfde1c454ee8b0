// Names and identifiers shared by every resource, and the checks specs are validated with.

import { HangarError } from "./errors.js";

/** Blaxel resource names: lowercase alphanumerics and '-', at most 49, no leading/trailing '-'. */
export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,47}[a-z0-9])?$/;
export const NAME_MAX = 49;
/** Caller-owned external ids: at most 64 of [A-Za-z0-9-]. */
export const EXTERNAL_ID_PATTERN = /^[A-Za-z0-9-]{1,64}$/;
/** Environment variable names. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function describeNameProblem(name: string): string | null {
  if (name.length === 0) return "name must not be empty";
  if (name.length > NAME_MAX) return `name must be at most ${NAME_MAX} characters (got ${name.length})`;
  if (!NAME_PATTERN.test(name)) return `name ${JSON.stringify(name)} may only contain lowercase letters, digits and '-', and must start and end with a letter or digit`;
  return null;
}

/** A JSON object (not null, not an array). */
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** A 400 validation_failed that names the field: "field: message". */
export function fieldError(field: string, message: string): never {
  throw new HangarError("validation_failed", `${field}: ${message}`, { field });
}

/** An optional integer field within [min, max]; `dflt` when absent. */
export function intField(v: unknown, field: string, min: number, max: number, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) fieldError(field, `an integer from ${min} to ${max}`);
  return v;
}

/** A resource's metadata as a create or update sends it, validated. */
export interface ResourceMetadata {
  name?: string;
  displayName?: string;
  labels?: Record<string, string>;
  /** null: cleared ("" sent). */
  externalId?: string | null;
}

/** Checks metadata.name, displayName, labels and externalId (400s that name the field). */
export function validateMetadata(md: { name?: unknown; displayName?: unknown; labels?: unknown; externalId?: unknown } | null | undefined): ResourceMetadata {
  const out: ResourceMetadata = {};
  if (md === undefined || md === null) return out;
  if (typeof md !== "object" || Array.isArray(md)) throw new HangarError("validation_failed", "metadata: must be an object");
  if (md.name !== undefined && md.name !== null && md.name !== "") {
    if (typeof md.name !== "string") throw new HangarError("invalid_name", "metadata.name: must be a string");
    const problem = describeNameProblem(md.name);
    if (problem) throw new HangarError("invalid_name", `metadata.name: ${problem}`);
    out.name = md.name;
  }
  if (md.displayName !== undefined && md.displayName !== null) {
    if (typeof md.displayName !== "string" || md.displayName.length > 63) throw new HangarError("validation_failed", "metadata.displayName: must be a string of at most 63 characters");
    out.displayName = md.displayName;
  }
  if (md.labels !== undefined && md.labels !== null) {
    if (typeof md.labels !== "object" || Array.isArray(md.labels)) throw new HangarError("validation_failed", "metadata.labels: must be an object of string values");
    const labels: Record<string, string> = {};
    for (const [k, v] of Object.entries(md.labels as Record<string, unknown>)) {
      if (typeof v !== "string") throw new HangarError("validation_failed", `metadata.labels.${k}: must be a string`);
      if (k.length === 0 || k.length > 253) throw new HangarError("validation_failed", "metadata.labels: keys must be 1 to 253 characters");
      labels[k] = v;
    }
    out.labels = labels;
  }
  if (md.externalId !== undefined && md.externalId !== null) {
    if (md.externalId === "") out.externalId = null;
    else if (typeof md.externalId !== "string" || !EXTERNAL_ID_PATTERN.test(md.externalId)) {
      throw new HangarError("validation_failed", "metadata.externalId: must be 1 to 64 characters of [A-Za-z0-9-]");
    } else out.externalId = md.externalId;
  }
  return out;
}
