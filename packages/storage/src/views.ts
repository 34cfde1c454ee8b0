// Blaxel's shapes of volumes, volume templates and drives.

import type { StorageRecord, WorkspaceRecord } from "@hangar/store";
import type { TemplateVersion } from "./storage-service.js";

function metadata(rec: StorageRecord, ws: WorkspaceRecord): Record<string, unknown> {
  return {
    name: rec.name,
    displayName: rec.displayName,
    labels: rec.labels,
    ...(rec.externalId ? { externalId: rec.externalId } : {}),
    workspace: ws.name,
    createdAt: rec.createdAt,
    updatedAt: rec.updatedAt,
  };
}

export function volumeView(rec: StorageRecord, ws: WorkspaceRecord, attachedTo?: string): Record<string, unknown> {
  return {
    metadata: metadata(rec, ws),
    spec: { size: rec.spec.size, region: rec.spec.region, ...(rec.spec.template ? { template: rec.spec.template } : {}) },
    state: attachedTo ? { attachedTo } : {},
    status: rec.status,
    events: [],
  };
}

export function driveView(rec: StorageRecord, ws: WorkspaceRecord): Record<string, unknown> {
  return {
    metadata: metadata(rec, ws),
    spec: { region: rec.spec.region, ...(rec.spec.permissions ? { permissions: rec.spec.permissions } : {}) },
    state: {},
    status: rec.status,
    events: [],
  };
}

export function templateView(rec: StorageRecord, ws: WorkspaceRecord): Record<string, unknown> {
  const versions = (rec.spec.versions as TemplateVersion[] | undefined) ?? [];
  const last = versions[versions.length - 1];
  return {
    metadata: metadata(rec, ws),
    spec: { ...(rec.spec.defaultSize !== undefined ? { defaultSize: rec.spec.defaultSize } : {}), ...(rec.spec.description ? { description: rec.spec.description } : {}) },
    state: {
      status: versions.length ? "ready" : "created",
      versionCount: versions.length,
      ...(last ? { latestVersion: last.name, lastVersionUploadedAt: last.createdAt } : {}),
    },
    versions: versions.map((v) => ({ name: v.name, templateName: rec.name, contentSize: v.contentSize, status: "READY", workspace: ws.name })),
  };
}
