// How sandboxes and previews are addressed: path-based under the server's own URL by default,
// host-based under configured domains (and *.localhost, which browsers resolve without DNS).

import type { PreviewRecord } from "@hangar/store";

export interface EdgeUrlConfig {
  /** Domain previews are served under as <label>.<previewDomain> (default "preview.localhost"). */
  previewDomain: string;
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
   * spec.url of a preview. Sessions (API ports) are path-based, so any HTTP client reaches them;
   * app previews are host-based, so a browser sees the app at the root of its own origin.
   */
  previewUrl(base: URL, p: PreviewRecord): string {
    if (p.customDomain) return `${base.protocol}//${p.customDomain}${portSuffix(base)}`;
    if (API_PORTS.has(p.port) && this.config.previewDomain.endsWith("localhost")) return `${base.origin}${previewPathPrefix(p.label)}`;
    return this.previewHostUrl(base, p.label);
  }

  previewHostUrl(base: URL, label: string): string {
    return `${base.protocol}//${label}.${this.config.previewDomain}${portSuffix(base)}`;
  }
}

function portSuffix(base: URL): string {
  return base.port ? `:${base.port}` : "";
}
