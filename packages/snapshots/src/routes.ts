// /v0 routes of snapshots, forks and archives, with the shapes of @blaxel/core 0.3.21.

import type {} from "@fastify/swagger";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { type ListQueryString, type NodeSandboxState, type RouteContext, sandboxView } from "@hangar/control-plane";
import type { SandboxRecord, SnapshotRecord, WorkspaceRecord } from "@hangar/store";
import type { ForkInput, SnapshotInput, SnapshotService } from "./snapshot-service.js";
import { snapshotView } from "./snapshot-view.js";

export interface SnapshotRoutesOptions {
  snapshots: SnapshotService;
  /** The data-plane URL of a sandbox (metadata.url). */
  sandboxUrl: (req: FastifyRequest, ws: WorkspaceRecord, name: string) => string;
  /** Running or standby, for the sandbox view. */
  state: (id: string) => NodeSandboxState;
}

const Obj = { type: "object", additionalProperties: true } as const;
const errors = { 400: Obj, 401: Obj, 403: Obj, 404: Obj, 409: Obj, 503: Obj };
const tags = ["snapshots"];

export function snapshotRoutes(opts: SnapshotRoutesOptions) {
  return async (app: FastifyInstance, ctx: RouteContext): Promise<void> => {
    const { snapshots } = opts;
    const view = (ws: WorkspaceRecord) => async (rec: SnapshotRecord) => snapshotView(rec, { workspaceName: ws.name, sourceDeleted: await snapshots.sourceDeleted(rec) });
    const sandbox = (req: FastifyRequest, ws: WorkspaceRecord, rec: SandboxRecord) =>
      sandboxView(rec, { workspaceName: ws.name, url: (_w, n) => opts.sandboxUrl(req, ws, n), state: opts.state(rec.id) });

    app.get<{ Querystring: ListQueryString }>("/snapshots", { schema: { summary: "List the workspace's snapshots", tags, querystring: { type: "object", additionalProperties: true, properties: { limit: { type: "integer", minimum: 1 } } }, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      const page = await snapshots.list(ws, ctx.listQuery(req));
      const data = await Promise.all(page.items.map(view(ws)));
      return ctx.paginated(req) ? { data, meta: { hasMore: page.nextCursor !== null, nextCursor: page.nextCursor ?? "", total: page.total } } : data;
    });

    app.post<{ Body: SnapshotInput }>("/snapshots", { schema: { summary: "Capture a snapshot of a sandbox (files; processes and memory where CRIU works)", tags, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return view(ws)(await snapshots.create(ws, req.body ?? {}));
    });

    app.get<{ Params: { name: string } }>("/snapshots/:name", { schema: { summary: "Get a snapshot by id or name", tags, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return view(ws)(await snapshots.get(ws, req.params.name));
    });

    app.delete<{ Params: { name: string } }>("/snapshots/:name", { schema: { summary: "Delete a snapshot", tags, response: { 204: { type: "null" }, ...errors } } }, async (req, reply) => {
      const ws = await ctx.workspaceOf(req);
      await snapshots.delete(ws, req.params.name);
      return reply.code(204).send();
    });

    app.post<{ Params: { name: string }; Body: ForkInput }>("/snapshots/:name/fork", { schema: { summary: "Create a sandbox from a snapshot", tags, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return snapshots.fork(ws, { snapshot: req.params.name }, req.body ?? {});
    });

    app.get<{ Params: { name: string } }>("/sandboxes/:name/snapshots", { schema: { summary: "Snapshots captured from a sandbox", tags, response: { 200: { type: "array", items: Obj }, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return Promise.all((await snapshots.listForSandbox(ws, req.params.name)).map(view(ws)));
    });

    app.post<{ Params: { name: string }; Body: SnapshotInput }>("/sandboxes/:name/snapshots", { schema: { summary: "Capture a snapshot of this sandbox", tags, body: { ...Obj, nullable: true }, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return view(ws)(await snapshots.create(ws, req.body ?? {}, req.params.name));
    });

    app.delete<{ Params: { name: string; snapshotId: string } }>("/sandboxes/:name/snapshots/:snapshotId", { schema: { summary: "Delete a snapshot of this sandbox", tags, response: { 204: { type: "null" }, ...errors } } }, async (req, reply) => {
      const ws = await ctx.workspaceOf(req);
      await snapshots.delete(ws, req.params.snapshotId, req.params.name);
      return reply.code(204).send();
    });

    app.post<{ Params: { name: string; snapshotId: string } }>("/sandboxes/:name/snapshots/:snapshotId/restore", { schema: { summary: "Restore this sandbox to one of its snapshots", tags, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return snapshots.restore(ws, req.params.name, req.params.snapshotId);
    });

    app.post<{ Params: { name: string }; Body: ForkInput }>("/sandboxes/:name/fork", { schema: { summary: "Fork this sandbox (or one of its snapshots) into a new sandbox", tags, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return snapshots.fork(ws, { sandbox: req.params.name }, req.body ?? {});
    });

    app.post<{ Params: { name: string } }>("/sandboxes/:name/archive", { schema: { summary: "Archive a sandbox: files to disk, everything else freed", tags, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return sandbox(req, ws, await snapshots.archive(ws, req.params.name));
    });

    app.post<{ Params: { name: string } }>("/sandboxes/:name/unarchive", { schema: { summary: "Start an archived sandbox again on its files", tags, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return sandbox(req, ws, await snapshots.unarchive(ws, req.params.name));
    });
  };
}
