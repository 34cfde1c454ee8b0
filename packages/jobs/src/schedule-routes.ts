// /v0 routes of sandbox schedules as the SDK's `sandbox.schedules` drives them, and the workspace's
// listings (`GET /schedules`, `GET /schedule-executions`).

import type {} from "@fastify/swagger";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { RouteContext } from "@hangar/control-plane";
import type { SandboxScheduleService } from "./sandbox-schedules.js";

const Obj = { type: "object", additionalProperties: true } as const;
const errors = { 400: Obj, 401: Obj, 403: Obj, 404: Obj, 409: Obj };
const tags = ["schedules"];
const LimitQuery = { type: "object", additionalProperties: true, properties: { limit: { type: "integer", minimum: 1 } } };

export function scheduleRoutes(schedules: SandboxScheduleService) {
  return async (app: FastifyInstance, ctx: RouteContext): Promise<void> => {
    const page = <T>(req: FastifyRequest, items: T[]) => (ctx.paginated(req) ? { data: items, meta: { hasMore: false, nextCursor: "", total: items.length } } : items);
    type S = { Params: { name: string } };
    type One = { Params: { name: string; id: string } };
    type Lim = { Querystring: { limit?: number } };

    app.get<S & Lim>("/sandboxes/:name/schedules", { schema: { summary: "Schedules of a sandbox", tags, querystring: LimitQuery, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return page(req, (await schedules.list(ws, req.params.name)).slice(0, req.query.limit ?? 1000).map((s) => schedules.view(s)));
    });
    app.post<S & { Body: unknown }>("/sandboxes/:name/schedules", { schema: { summary: "Schedule a process in a sandbox: {type: cron|at|sleep, value, input, maxExecutions?}", tags, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return schedules.view(await schedules.create(ws, req.params.name, req.body));
    });
    app.get<One>("/sandboxes/:name/schedules/:id", { schema: { summary: "A sandbox schedule", tags, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return schedules.view(await schedules.get(ws, req.params.name, req.params.id));
    });
    app.put<One & { Body: unknown }>("/sandboxes/:name/schedules/:id", { schema: { summary: "Update a sandbox schedule", tags, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return schedules.view(await schedules.update(ws, req.params.name, req.params.id, req.body));
    });
    app.delete<One>("/sandboxes/:name/schedules/:id", { schema: { summary: "Delete a sandbox schedule", tags, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return schedules.view(await schedules.delete(ws, req.params.name, req.params.id));
    });
    app.get<S & Lim>("/sandboxes/:name/schedule-executions", { schema: { summary: "Executions of a sandbox's schedules, newest first", tags, querystring: LimitQuery, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return page(req, (await schedules.executions(ws, req.params.name, req.query.limit)).map((e) => schedules.executionView(e)));
    });
    app.get<Lim>("/schedules", { schema: { summary: "Sandbox schedules of the workspace", tags, querystring: LimitQuery, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return page(req, (await schedules.list(ws)).slice(0, req.query.limit ?? 1000).map((s) => schedules.view(s)));
    });
    app.get<Lim>("/schedule-executions", { schema: { summary: "Sandbox schedule executions of the workspace, newest first", tags, querystring: LimitQuery, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return page(req, (await schedules.executions(ws, undefined, req.query.limit)).map((e) => schedules.executionView(e)));
    });
  };
}
