// Policies (Blaxel's model governance): location and flavor policies say where a workload may run,
// maxToken policies cap a model's tokens over a window. Policies of one type combine as a union,
// types combine as an intersection.

import { HangarError } from "@hangar/common";

export type PolicyType = "location" | "flavor" | "maxToken";
export interface PolicyLocation {
  type: "location" | "country" | "continent";
  name: string;
}
export interface PolicyFlavor {
  type: "cpu" | "gpu";
  name: string;
}
export interface MaxTokens {
  granularity: "month" | "day" | "hour" | "minute";
  step: number;
  input: number;
  output: number;
  total: number;
  ratioInputOverOutput?: number;
}
export interface PolicySpec {
  type: PolicyType;
  locations?: PolicyLocation[];
  flavors?: PolicyFlavor[];
  maxTokens?: MaxTokens;
  resourceTypes?: string[];
  sandbox?: boolean;
}

const RESOURCE_TYPES = new Set(["model", "function", "agent", "sandbox", "application", "job"]);
const GRANULARITY_MS = { minute: 60_000, hour: 3_600_000, day: 86_400_000, month: 30 * 86_400_000 } as const;

function bad(message: string): never {
  throw new HangarError("validation_failed", message);
}

function nonNegInt(v: unknown, field: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) bad(`${field}: must be a non-negative integer`);
  return v;
}

/** Checks and normalizes a policy spec; 400 naming the field otherwise. */
export function normalizePolicy(input: unknown): PolicySpec {
  if (!input || typeof input !== "object") bad("spec: must be an object");
  const s = input as Record<string, unknown>;
  const type = s.type;
  if (type !== "location" && type !== "flavor" && type !== "maxToken") bad(`spec.type: must be one of location, flavor, maxToken (got ${JSON.stringify(type)})`);
  const out: PolicySpec = { type };
  if (s.resourceTypes !== undefined) {
    if (!Array.isArray(s.resourceTypes) || s.resourceTypes.some((r) => typeof r !== "string" || !RESOURCE_TYPES.has(r))) bad(`spec.resourceTypes: each must be one of ${[...RESOURCE_TYPES].join(", ")}`);
    out.resourceTypes = s.resourceTypes as string[];
  }
  if (typeof s.sandbox === "boolean") out.sandbox = s.sandbox;
  if (type === "location") {
    if (!Array.isArray(s.locations) || !s.locations.length) bad("spec.locations: a location policy needs at least one location");
    out.locations = s.locations.map((l, i) => {
      const o = (l ?? {}) as Record<string, unknown>;
      if (o.type !== "location" && o.type !== "country" && o.type !== "continent") bad(`spec.locations[${i}].type: must be location, country or continent`);
      if (typeof o.name !== "string" || !o.name.trim()) bad(`spec.locations[${i}].name: required`);
      return { type: o.type, name: o.name.trim().toLowerCase() };
    });
  } else if (type === "flavor") {
    if (!Array.isArray(s.flavors) || !s.flavors.length) bad("spec.flavors: a flavor policy needs at least one flavor");
    out.flavors = s.flavors.map((f, i) => {
      const o = (f ?? {}) as Record<string, unknown>;
      if (o.type !== "cpu" && o.type !== "gpu") bad(`spec.flavors[${i}].type: must be cpu or gpu`);
      if (typeof o.name !== "string" || !o.name.trim()) bad(`spec.flavors[${i}].name: required`);
      return { type: o.type, name: o.name.trim().toLowerCase() };
    });
  } else {
    const m = (s.maxTokens ?? null) as Record<string, unknown> | null;
    if (!m || typeof m !== "object") bad("spec.maxTokens: a maxToken policy needs maxTokens {granularity, step, input|output|total}");
    const granularity = m.granularity;
    if (granularity !== "month" && granularity !== "day" && granularity !== "hour" && granularity !== "minute") bad("spec.maxTokens.granularity: must be month, day, hour or minute");
    const step = m.step === undefined ? 1 : m.step;
    if (typeof step !== "number" || !Number.isInteger(step) || step < 1) bad("spec.maxTokens.step: must be an integer of at least 1");
    const mt: MaxTokens = { granularity, step, input: nonNegInt(m.input, "spec.maxTokens.input"), output: nonNegInt(m.output, "spec.maxTokens.output"), total: nonNegInt(m.total, "spec.maxTokens.total") };
    if (!mt.input && !mt.output && !mt.total) bad("spec.maxTokens: set at least one of input, output, total above 0");
    if (typeof m.ratioInputOverOutput === "number") mt.ratioInputOverOutput = m.ratioInputOverOutput;
    out.maxTokens = mt;
  }
  return out;
}

/** The window a maxToken policy counts over, in ms (a month is 30 days). */
export function windowMs(m: MaxTokens): number {
  return GRANULARITY_MS[m.granularity] * m.step;
}

/** Where this node runs and on what: what location and flavor policies are checked against. */
export interface NodePlacement {
  locations: PolicyLocation[];
  flavors: PolicyFlavor[];
}

/**
 * Whether the node satisfies a set of policies: for each type present, one of its policies must
 * allow the node (union); every type present must be satisfied (intersection). maxToken policies
 * do not constrain placement. Returns the reason when it does not.
 */
export function placementAllowed(policies: { name: string; spec: PolicySpec }[], node: NodePlacement): { ok: true } | { ok: false; reason: string } {
  const locs = policies.filter((p) => p.spec.type === "location");
  if (locs.length) {
    const allowed = locs.flatMap((p) => p.spec.locations ?? []);
    const hit = allowed.some((a) => node.locations.some((n) => n.type === a.type && n.name === a.name));
    if (!hit) {
      const here = node.locations.map((l) => `${l.type} ${l.name}`).join(", ") || "no declared location";
      return { ok: false, reason: `location policies ${locs.map((p) => p.name).join(", ")} allow ${allowed.map((a) => `${a.type} ${a.name}`).join(" or ")}; this node has ${here} (HANGAR_NODE_LOCATION)` };
    }
  }
  const flavors = policies.filter((p) => p.spec.type === "flavor");
  if (flavors.length) {
    const allowed = flavors.flatMap((p) => p.spec.flavors ?? []);
    const hit = allowed.some((a) => node.flavors.some((n) => n.type === a.type && n.name === a.name));
    if (!hit) {
      const here = node.flavors.map((f) => `${f.type} ${f.name}`).join(", ") || "no declared flavor";
      return { ok: false, reason: `flavor policies ${flavors.map((p) => p.name).join(", ")} allow ${allowed.map((a) => `${a.type} ${a.name}`).join(" or ")}; this node has ${here} (HANGAR_NODE_FLAVORS)` };
    }
  }
  return { ok: true };
}

/** Parses "country:us,continent:na" (HANGAR_NODE_LOCATION) or "cpu:x86,gpu:t4" (HANGAR_NODE_FLAVORS). */
export function parsePlacement(locations: string | undefined, flavors: string | undefined): NodePlacement {
  const pairs = (text: string | undefined, types: string[], env: string) =>
    (text ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)
      .map((s) => {
        const [type, ...rest] = s.split(":");
        const name = rest.join(":").trim().toLowerCase();
        if (!type || !types.includes(type) || !name) throw new Error(`invalid ${env}: ${JSON.stringify(s)} (use ${types.map((t) => `${t}:<name>`).join(" or ")}, comma-separated)`);
        return { type, name };
      });
  return {
    locations: pairs(locations, ["location", "country", "continent"], "HANGAR_NODE_LOCATION") as PolicyLocation[],
    flavors: pairs(flavors, ["cpu", "gpu"], "HANGAR_NODE_FLAVORS") as PolicyFlavor[],
  };
}
