// Volumes, volume templates and drives in the CLI: kinds, listings and apply.

import { CliError, type HangarClient } from "./client.js";

export const STORAGE_KINDS: Record<string, string> = {
  volume: "volumes",
  volumes: "volumes",
  vol: "volumes",
  "volume-template": "volume_templates",
  "volume-templates": "volume_templates",
  volumetemplate: "volume_templates",
  volumetemplates: "volume_templates",
  volume_templates: "volume_templates",
  drive: "drives",
  drives: "drives",
};

export const STORAGE_SINGULAR: Record<string, string> = { volumes: "volume", volume_templates: "volumetemplate", drives: "drive" };

/** `kind:` of a manifest → API plural. */
export const MANIFEST_STORAGE_KINDS: Record<string, string> = { volume: "volumes", volumetemplate: "volume_templates", drive: "drives" };

export type StorageJson = {
  metadata: { name: string; createdAt?: string; labels?: Record<string, string> };
  spec: { size?: number; region?: string; template?: string; defaultSize?: number };
  state?: { attachedTo?: string; latestVersion?: string; versionCount?: number };
  status?: string;
};

export function isStorageKind(kind: string): boolean {
  return kind === "volumes" || kind === "drives" || kind === "volume_templates";
}

/** Every item of a paginated listing. */
export async function listAll<T>(c: HangarClient, kind: string): Promise<T[]> {
  const items: T[] = [];
  let cursor = "";
  do {
    const page = await c.api<{ data: T[]; meta: { nextCursor?: string } } | T[]>("GET", `/${kind}?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (Array.isArray(page)) return page;
    items.push(...page.data);
    cursor = page.meta.nextCursor ?? "";
  } while (cursor);
  return items;
}

export function storageTable(kind: string, items: StorageJson[], age: (iso: string | undefined) => string): string[][] {
  if (kind === "volumes") {
    return [["NAME", "STATUS", "SIZE", "TEMPLATE", "ATTACHED TO", "AGE"], ...items.map((v) => [v.metadata.name, v.status ?? "", `${v.spec.size ?? ""}MB`, v.spec.template ?? "", v.state?.attachedTo ?? "", age(v.metadata.createdAt)])];
  }
  if (kind === "volume_templates") {
    return [["NAME", "LATEST", "VERSIONS", "DEFAULT SIZE", "AGE"], ...items.map((t) => [t.metadata.name, t.state?.latestVersion ?? "", String(t.state?.versionCount ?? 0), t.spec.defaultSize ? `${t.spec.defaultSize}MB` : "", age(t.metadata.createdAt)])];
  }
  return [["NAME", "STATUS", "REGION", "AGE"], ...items.map((d) => [d.metadata.name, d.status ?? "", d.spec.region ?? "", age(d.metadata.createdAt)])];
}

/** Creates or updates one Volume, VolumeTemplate or Drive (PUT creates a missing one); the line to print. */
export async function applyStorage(c: HangarClient, kind: string, name: string, body: { metadata: unknown; spec: unknown }): Promise<string> {
  let exists = true;
  try {
    await c.api("GET", `/${kind}/${encodeURIComponent(name)}`);
  } catch (e) {
    if (!(e instanceof CliError) || !e.message.startsWith("404")) throw e;
    exists = false;
  }
  await c.api("PUT", `/${kind}/${encodeURIComponent(name)}`, body);
  return `${STORAGE_SINGULAR[kind]}/${name} ${exists ? "configured" : "created"}`;
}
