// API shapes of previews, preview tokens and custom domains, as Blaxel's SDK reads them.

import type { CustomDomainRecord, PreviewRecord, PreviewTokenRecord } from "@hangar/store";

export function previewView(p: PreviewRecord, ctx: { sandboxName: string; workspace: string; url: string }): Record<string, unknown> {
  return {
    metadata: { name: p.name, displayName: p.name, resourceName: ctx.sandboxName, resourceType: "sandbox", workspace: ctx.workspace, createdAt: p.createdAt, updatedAt: p.updatedAt },
    spec: {
      port: p.port,
      public: p.public,
      url: ctx.url,
      ...(p.prefixUrl ? { prefixUrl: p.prefixUrl } : {}),
      ...(p.customDomain ? { customDomain: p.customDomain } : {}),
      ...(p.expiresAt ? { expires: p.expiresAt } : {}),
      requestHeaders: p.requestHeaders,
      responseHeaders: p.responseHeaders,
    },
    status: "DEPLOYED",
  };
}

export function tokenView(t: PreviewTokenRecord, token: string, ctx: { previewName: string; sandboxName: string; workspace: string }): Record<string, unknown> {
  return {
    metadata: { name: t.name, previewName: ctx.previewName, resourceName: ctx.sandboxName, resourceType: "sandbox", workspace: ctx.workspace, createdAt: t.createdAt },
    spec: { token, expiresAt: t.expiresAt, expired: Date.parse(t.expiresAt) <= Date.now() },
  };
}

export function customDomainView(d: CustomDomainRecord, workspace: string): Record<string, unknown> {
  return {
    metadata: { name: d.name, workspace, createdAt: d.createdAt, updatedAt: d.updatedAt },
    spec: { verificationRecord: { type: "TXT", name: `_hangar-challenge.${d.name}`, value: d.verificationToken } },
    status: d.status,
    ...(d.verifiedAt ? { verifiedAt: d.verifiedAt } : {}),
  };
}
