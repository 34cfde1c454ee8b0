// How sandboxes and previews are addressed: sandboxes path-based under the server's own URL by
// default, host-based under a configured domain. Previews of app ports: by default a port of their
// own on the host of the server's URL (any client reaches it, no DNS needed, the app at the root of
// its origin); host names under HANGAR_PREVIEW_DOMAIN when it is set. Sessions are path-based.

import type { PreviewRecord } from "@hangar/store";

export interface EdgeUrlConfig {
  /** Host-name mode: previews are served as <label>.<previewDomain>. Unset: port mode. */
  previewDomain?: string | undefined;
  /** When set, sandboxes are also served as sbx-<name>-<workspace code>.<sandboxDomain>. */
  sandboxDomain?: string | undefined;
}

/** Ports whose previews serve the sandbox API (sessions). */
export const API_PORTS = new Set([443, 8080]);

/** Path prefix of a sandbox's data-plane URL on this server. */
export function sandboxPathPrefix(workspace: string, name: string): string {
  return `/run/${encodeURIComponent(workspace)}/sandboxes/${encodeURIComponent(name)}`;
}

export function previewPathPrefix(label: string): string {
  return `/preview/${label}`;
}

/** A DNS-safe code for a workspace id (its last 8 characters). */
export function workspaceCode(workspaceId: string): string {
  return workspaceId.slice(-8).toLowerCase();
}

export class EdgeUrls {
  constructor(readonly config: EdgeUrlConfig) {}

  /** metadata.url of a sandbox: host-based when a sandbox domain is set, else path-based. */
  sandboxUrl(base: URL, workspace: { name: string; id: string }, name: string): string {
    if (this.config.sandboxDomain) return `${base.protocol}//sbx-${name}-${workspaceCode(workspace.id)}.${this.config.sandboxDomain}${portSuffix(base)}`;
    return `${base.origin}${sandboxPathPrefix(workspace.name, name)}`;
  }

  /**
   * spec.url of a preview. App previews get an origin of their own, so the app is at its root:
   * its host port on the server's host (port mode), or its host name under the preview domain.
   * Sessions (443) are path-based, so any HTTP client reaches them.
   */
  previewUrl(base: URL, p: PreviewRecord): string {
    if (p.customDomain) return `${base.protocol}//${p.customDomain}${portSuffix(base)}`;
    const domain = this.config.previewDomain;
    if (!domain) return p.hostPort ? `${base.protocol}//${base.hostname}:${p.hostPort}` : `${base.origin}${previewPathPrefix(p.label)}`;
    if (API_PORTS.has(p.port) && domain.endsWith("localhost")) return `${base.origin}${previewPathPrefix(p.label)}`;
    return this.previewHostUrl(base, p.label);
  }

  /** Host-name mode only. */
  previewHostUrl(base: URL, label: string): string {
    return `${base.protocol}//${label}.${this.config.previewDomain}${portSuffix(base)}`;
  }
}

function portSuffix(base: URL): string {
  return base.port ? `:${base.port}` : "";
}
