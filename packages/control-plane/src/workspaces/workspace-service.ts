// Workspaces: the tenants. Every resource belongs to exactly one.

import { HangarError, describeNameProblem, randomId } from "@hangar/common";
import type { Store, WorkspaceRecord } from "@hangar/store";
import { StoreConflictError } from "@hangar/store";
import type { Principal } from "../auth/auth-service.js";

export interface WorkspaceInput {
  name: string;
  displayName?: string | undefined;
  labels?: Record<string, string> | undefined;
}

export class WorkspaceService {
  /** `onChange` runs after workspaces or grants change (e.g. to drop cached keys). */
  constructor(
    private readonly store: Store,
    private readonly onChange: () => void = () => {},
  ) {}

  async create(input: WorkspaceInput): Promise<WorkspaceRecord> {
    const problem = describeNameProblem(input.name);
    if (problem) throw new HangarError("invalid_name", problem);
    const now = new Date().toISOString();
    try {
      const created = await this.store.workspaces.create({
        id: `ws_${randomId(16)}`,
        name: input.name,
        displayName: input.displayName ?? input.name,
        labels: input.labels ?? {},
        createdAt: now,
        updatedAt: now,
      });
      this.onChange();
      return created;
    } catch (e) {
      if (e instanceof StoreConflictError) throw new HangarError("already_exists", `workspace '${input.name}' already exists`);
      throw e;
    }
  }

  /** Creates a workspace for an admin key and grants that key access to it. */
  async createFor(principal: Principal, input: WorkspaceInput): Promise<WorkspaceRecord> {
    if (!principal.admin) throw new HangarError("forbidden", "only an admin key can create workspaces");
    const ws = await this.create(input);
    await this.store.apiKeys.grant(principal.keyId, ws.id);
    this.onChange();
    return ws;
  }

  async listFor(principal: Principal): Promise<WorkspaceRecord[]> {
    return this.store.workspaces.list([...principal.workspaceIds]);
  }

  async update(ws: WorkspaceRecord, input: Partial<WorkspaceInput>): Promise<WorkspaceRecord> {
    return (await this.store.workspaces.update(ws.id, { displayName: input.displayName, labels: input.labels, updatedAt: new Date().toISOString() }))!;
  }

  /** Deletes an empty workspace (admin only). */
  async delete(principal: Principal, ws: WorkspaceRecord): Promise<WorkspaceRecord> {
    if (!principal.admin) throw new HangarError("forbidden", "only an admin key can delete workspaces");
    const page = await this.store.sandboxes.list(ws.id, { sort: "createdAt:desc", limit: 1, showTerminated: true });
    if (page.items.length) throw new HangarError("conflict", `workspace '${ws.name}' still has sandboxes; delete them first`);
    await this.store.workspaces.delete(ws.id);
    this.onChange();
    return ws;
  }
}

export function workspaceView(ws: WorkspaceRecord): Record<string, unknown> {
  return { id: ws.id, name: ws.name, displayName: ws.displayName, labels: ws.labels, status: "ready", createdAt: ws.createdAt, updatedAt: ws.updatedAt };
}
