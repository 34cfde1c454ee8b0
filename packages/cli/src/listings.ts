// What `hangar get KIND [NAME]` lists, per kind: where it lives in the API and the table's columns.

import type { HangarClient } from "./client.js";

// biome-ignore lint: listings read loosely typed API JSON
type Json = any;

export interface Listing {
  /** API path of the list (the item is `${path}/{name}`). */
  path: string;
  header: string[];
  row: (x: Json) => string[];
}

export function age(iso: string | undefined): string {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172_800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86_400)}d`;
}

const workload: Listing["row"] = (a) => [a.metadata.name, a.status ?? "", a.spec?.runtime?.image ?? "", `${a.spec?.runtime?.memory ?? ""}MB`, a.spec?.public ? "public" : "private", a.metadata.url ?? "", age(a.metadata.createdAt)];

export const LISTINGS: Record<string, Listing> = {
  sandboxes: {
    path: "/sandboxes",
    header: ["NAME", "STATUS", "STATE", "IMAGE", "MEMORY", "AGE"],
    row: (s) => [s.metadata.name, s.status ?? "", s.state ?? "", s.spec.runtime?.image ?? "", `${s.spec.runtime?.memory ?? ""}MB`, age(s.metadata.createdAt)],
  },
  snapshots: {
    path: "/snapshots",
    header: ["NAME", "ID", "SOURCE", "STATUS", "HOLDS", "SIZE", "AGE"],
    row: (s) => [s.name, s.id, `${s.source?.name ?? ""}${s.source?.deleted ? " (deleted)" : ""}`, s.status, s.processes ? "files+processes" : "files", s.sizeBytes !== undefined ? `${Math.round(s.sizeBytes / 1024)}KiB` : "", age(s.createdAt)],
  },
  agents: { path: "/agents", header: ["NAME", "STATUS", "IMAGE", "MEMORY", "ACCESS", "URL", "AGE"], row: workload },
  functions: { path: "/functions", header: ["NAME", "STATUS", "IMAGE", "MEMORY", "ACCESS", "URL", "AGE"], row: workload },
  models: {
    path: "/models",
    header: ["NAME", "STATUS", "TYPE", "MODEL", "CONNECTIONS", "URL", "AGE"],
    row: (m) => [m.metadata.name, m.status ?? "", m.spec?.runtime?.type ?? "", m.spec?.runtime?.model ?? "", (m.spec?.integrationConnections ?? []).join(","), m.metadata.url ?? "", age(m.metadata.createdAt)],
  },
  policies: {
    path: "/policies",
    header: ["NAME", "TYPE", "RULE", "AGE"],
    row: (p) => {
      const s = p.spec ?? {};
      const rule =
        s.type === "maxToken"
          ? `${["input", "output", "total"].filter((k) => s.maxTokens?.[k]).map((k) => `${k} ≤ ${s.maxTokens[k]}`).join(", ")} per ${s.maxTokens?.step ?? 1} ${s.maxTokens?.granularity ?? ""}`
          : [...(s.locations ?? []), ...(s.flavors ?? [])].map((x: Json) => `${x.type} ${x.name}`).join(" or ");
      return [p.metadata.name, s.type ?? "", rule, age(p.metadata.createdAt)];
    },
  },
  "integrations/connections": {
    path: "/integrations/connections",
    header: ["NAME", "INTEGRATION", "URL", "SECRETS", "AGE"],
    row: (c) => [c.metadata.name, c.spec?.integration ?? "", c.spec?.config?.url ?? c.spec?.config?.endpoint ?? "", Object.keys(c.spec?.secret ?? {}).join(","), age(c.metadata.createdAt)],
  },
  workspaces: { path: "/workspaces", header: ["NAME", "DISPLAY NAME", "AGE"], row: (w) => [w.name, w.displayName ?? "", age(w.createdAt)] },
  volumes: {
    path: "/volumes",
    header: ["NAME", "STATUS", "SIZE", "TEMPLATE", "ATTACHED TO", "AGE"],
    row: (v) => [v.metadata.name, v.status ?? "", `${v.spec?.size ?? ""}MB`, v.spec?.template ?? "", v.state?.attachedTo ?? "", age(v.metadata.createdAt)],
  },
  volume_templates: {
    path: "/volume_templates",
    header: ["NAME", "LATEST", "VERSIONS", "DEFAULT SIZE", "AGE"],
    row: (t) => [t.metadata.name, t.state?.latestVersion ?? "", String(t.state?.versionCount ?? 0), t.spec?.defaultSize ? `${t.spec.defaultSize}MB` : "", age(t.metadata.createdAt)],
  },
  drives: { path: "/drives", header: ["NAME", "STATUS", "REGION", "AGE"], row: (d) => [d.metadata.name, d.status ?? "", d.spec?.region ?? "", age(d.metadata.createdAt)] },
  "api-keys": { path: "/api-keys", header: ["ID", "NAME", "PREFIX", "ADMIN", "REVOKED", "AGE"], row: (k) => [k.id, k.name, k.prefix, String(k.admin), k.revokedAt ? "yes" : "", age(k.createdAt)] },
};

/** Every item of a list, following cursors when the API pages it (a bare array otherwise). */
export async function listAll(c: HangarClient, path: string): Promise<Json[]> {
  const items: Json[] = [];
  let cursor = "";
  do {
    const page = await c.api<Json>("GET", `${path}?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (Array.isArray(page)) return page;
    items.push(...page.data);
    cursor = page.meta?.nextCursor ?? "";
  } while (cursor);
  return items;
}
