// The API shape of a sandbox, as Blaxel's SDK reads it.

import type { SandboxRecord } from "@hangar/store";
import type { NodeSandboxState } from "../node-port.js";
import { type EnvSpec, type SandboxSpecDoc, computeExpiry } from "./sandbox-spec.js";
import { redactSpec } from "./secrets.js";

export interface ViewContext {
  workspaceName: string;
  /** The data-plane URL of a sandbox (metadata.url). */
  url: (workspace: string, name: string) => string;
  state: NodeSandboxState;
  /** Listings use the lite shape without event history. */
  lite?: boolean;
  /** The environment in plain text, for an admin's show_secrets; otherwise env values are masked. */
  revealEnvs?: (spec: SandboxSpecDoc) => EnvSpec[];
}

export function sandboxView(rec: SandboxRecord, ctx: ViewContext): Record<string, unknown> {
  const stored = rec.spec as unknown as SandboxSpecDoc;
  // spec.region is echoed as Blaxel does; the SDK must run with BL_DISABLE_H2=true, or it would
  // try Blaxel's HTTP/2 edge for that region.
  const spec = redactSpec(stored, ctx.revealEnvs?.(stored));
  const expiry = rec.terminatedAt ? null : computeExpiry(stored, rec.createdAt, rec.lastUsedAt);
  const view: Record<string, unknown> = {
    metadata: {
      name: rec.name,
      displayName: rec.displayName,
      labels: rec.labels,
      ...(rec.externalId ? { externalId: rec.externalId } : {}),
      url: ctx.url(ctx.workspaceName, rec.name),
      workspace: ctx.workspaceName,
      createdAt: rec.createdAt,
      updatedAt: rec.updatedAt,
    },
    spec,
    status: rec.status,
    lastUsedAt: rec.lastUsedAt,
  };
  // running or parked: only a deployed sandbox has either
  if (rec.status === "DEPLOYED") view.state = ctx.state === "STANDBY" ? "STANDBY" : "RUNNING";
  if (!ctx.lite) view.events = rec.events;
  if (expiry) view.expiresIn = Math.max(0, Math.round((expiry.getTime() - Date.now()) / 1000));
  return view;
}
