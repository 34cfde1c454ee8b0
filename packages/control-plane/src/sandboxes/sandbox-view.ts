// The API shape of a sandbox, as Blaxel's SDK reads it.

import type { SandboxRecord } from "@hangar/store";
import type { NodeSandboxState } from "../node-port.js";
import { type SandboxSpecDoc, computeExpiry } from "./sandbox-spec.js";
import { redactSpec } from "./secrets.js";

export interface ViewContext {
  workspaceName: string;
  /** The data-plane URL of a sandbox (metadata.url). */
  url: (workspace: string, name: string) => string;
  state: NodeSandboxState;
  /** Listings use the lite shape without event history. */
  lite?: boolean;
}

export function sandboxView(rec: SandboxRecord, ctx: ViewContext): Record<string, unknown> {
  const spec = redactSpec(rec.spec as unknown as SandboxSpecDoc);
  // spec.region is not echoed: with a region, the SDK would try Blaxel's HTTP/2 edge for it.
  delete spec.region;
  const expiry = rec.terminatedAt ? null : computeExpiry(rec.spec as unknown as SandboxSpecDoc, rec.createdAt, rec.lastUsedAt);
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
