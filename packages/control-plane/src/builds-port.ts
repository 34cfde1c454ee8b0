// What the control plane needs from the builds plane (wired by the server).

import type { BuildRecord, WorkspaceRecord } from "@hangar/store";

export interface BuildLogEntry {
  time: string;
  severity: number;
  message: string;
}

export interface SourceBuildsPort {
  /** A build of the resource that waits for its source; the token is the upload URL's credential. */
  createUpload(ws: WorkspaceRecord, resourceType: string, resourceName: string): Promise<{ build: BuildRecord; token: string }>;
  /** A client read the resource while it was BUILDING (`bl` must see that status once). */
  observe(workspaceId: string, resourceType: string, resourceName: string): Promise<void>;
  latest(workspaceId: string, resourceType: string, resourceName: string): Promise<BuildRecord | null>;
  /** Log lines of the resource's recent builds since `since` (ISO), oldest first. */
  logsOf(workspaceId: string, resourceType: string, resourceName: string, since?: string): Promise<BuildLogEntry[]>;
}

/** Logs of a job execution's tasks (`/observability/logs?executionId=`): lines of every run, or of one task. */
export type TaskLogsPort = (workspaceId: string, job: string, executionId: string, taskIndex?: number) => Promise<BuildLogEntry[]>;
