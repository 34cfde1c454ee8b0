// Volumes, volume templates and drives in the CLI: their kind names and `apply` (listings: listings.ts).

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
