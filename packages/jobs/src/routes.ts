// /v0 routes of batch jobs as the SDK (`createJob`, `blJob(...)`) and `bl` drive them: the job
// resource and its revisions, executions (create, get, list, tasks, cancel) and the tasks' logs.

import type {} from "@fastify/swagger";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HangarError } from "@hangar/common";
import type { ListQueryString, RouteContext } from "@hangar/control-plane";
import type { WorkspaceRecord } from "@hangar/store";
import type { ExecutionInput, JobService } from "./job-service.js";

export interface JobRoutesOptions {
  jobs: JobService;
  /** The run-plane URL of a job (metadata.url). */
  url: (req: FastifyRequest, ws: WorkspaceRecord, name: string) => string;
  /** `?upload=true` (bl deploy): a build of the job waiting for its source; returns the upload URL. */
  upload?: (req: FastifyRequest, ws: WorkspaceRecord, name: string) => Promise<string>;
}

const Obj = { type: "object", additionalProperties: true } as const;
const errors = { 400: Obj, 401: Obj, 403: Obj, 404: Obj, 409: Obj, 429: Obj };
const tags = ["jobs"];
type Named = { Params: { name: string } };
type Exec = { Params: { name: string; id: string } };

export function jobRoutes(opts: JobRoutesOptions) {
  return async (app: FastifyInstance, ctx: RouteContext): Promise<void> => {
    const { jobs } = opts;
    const page = <T>(req: FastifyRequest, items: T[], p: { nextCursor: string | null; total: number }) =>
      ctx.paginated(req) ? { data: items, meta: { hasMore: p.nextCursor !== null, nextCursor: p.nextCursor ?? "", total: p.total } } : items;

    app.get<{ Querystring: ListQueryString }>("/jobs", { schema: { summary: "List jobs", tags, querystring: { type: "object", additionalProperties: true, properties: { limit: { type: "integer", minimum: 1 } } }, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      const p = await jobs.list(ws, ctx.listQuery(req));
      return page(req, p.items.map((r) => jobs.view(r, { workspaceName: ws.name, url: opts.url(req, ws, r.name), lite: true })), p);
    });

    /** With ?upload=true the job runs what is built from the source PUT to X-Blaxel-Upload-Url. */
    const apply = async (req: FastifyRequest<{ Body: { metadata?: unknown; spec?: unknown }; Querystring: { upload?: boolean } }>, reply: FastifyReply, how: { name?: string; mustCreate?: boolean }) => {
      const ws = await ctx.workspaceOf(req);
      const upload = req.query.upload === true;
      if (upload && !opts.upload) throw new HangarError("not_configured", "this server does not build from source");
      const rec = await jobs.apply(ws, req.body ?? {}, { ...how, deferDeploy: upload });
      if (upload) reply.header("x-blaxel-upload-url", await opts.upload!(req, ws, rec.name));
      return jobs.view(rec, { workspaceName: ws.name, url: opts.url(req, ws, rec.name) });
    };
    const UploadQuery = { type: "object", additionalProperties: true, properties: { upload: { type: "boolean" } } };

    app.post<{ Body: { metadata?: unknown; spec?: unknown }; Querystring: { upload?: boolean } }>("/jobs", { schema: { summary: "Create a job", tags, body: Obj, querystring: UploadQuery, response: { 200: Obj, ...errors } } }, (req, reply) =>
      apply(req, reply, { mustCreate: true }),
    );

    app.get<Named & { Querystring: { show_secrets?: boolean } }>(
      "/jobs/:name",
      { schema: { summary: "Get a job", tags, querystring: { type: "object", additionalProperties: true, properties: { show_secrets: { type: "boolean" } } }, response: { 200: Obj, ...errors } } },
      async (req) => {
        const ws = await ctx.workspaceOf(req);
        const rec = await jobs.get(ws, req.params.name);
        if (req.query.show_secrets && !ctx.principal(req).admin) throw new HangarError("forbidden", "show_secrets needs an admin API key");
        return jobs.view(rec, { workspaceName: ws.name, url: opts.url(req, ws, rec.name), revealed: req.query.show_secrets === true });
      },
    );

    app.put<Named & { Body: { metadata?: unknown; spec?: unknown }; Querystring: { upload?: boolean } }>("/jobs/:name", { schema: { summary: "Create or update a job", tags, body: Obj, querystring: UploadQuery, response: { 200: Obj, ...errors } } }, (req, reply) =>
      apply(req, reply, { name: req.params.name }),
    );

    app.delete<Named>("/jobs/:name", { schema: { summary: "Delete a job (its running executions are cancelled)", tags, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      const rec = await jobs.delete(ws, req.params.name);
      return jobs.view(rec, { workspaceName: ws.name, url: opts.url(req, ws, rec.name) });
    });

    app.get<Named>("/jobs/:name/revisions", { schema: { summary: "Revisions of a job (newest first)", tags, response: { 200: { type: "array", items: Obj }, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return jobs.revisions(ws, req.params.name);
    });

    app.post<Named & { Body: ExecutionInput }>("/jobs/:name/executions", { schema: { summary: "Start an execution: {tasks, env?, memory?, executionId?, allowQueue?}", tags, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return jobs.createExecution(ws, req.params.name, req.body ?? {});
    });

    app.get<Named & { Querystring: ListQueryString & { offset?: number } }>(
      "/jobs/:name/executions",
      { schema: { summary: "Executions of a job (newest first)", tags, querystring: { type: "object", additionalProperties: true, properties: { limit: { type: "integer", minimum: 1 }, offset: { type: "integer", minimum: 0 } } }, response: { 200: {}, ...errors } } },
      async (req) => {
        const ws = await ctx.workspaceOf(req);
        const p = await jobs.listExecutions(ws, req.params.name, ctx.listQuery(req));
        return page(req, await Promise.all(p.items.map((e) => jobs.executionView(e, ws, false))), p);
      },
    );

    app.get<Exec>("/jobs/:name/executions/:id", { schema: { summary: "An execution with its tasks and stats", tags, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return jobs.executionView(await jobs.execution(ws, req.params.name, req.params.id), ws);
    });

    app.delete<Exec>("/jobs/:name/executions/:id", { schema: { summary: "Cancel an execution (running tasks get SIGTERM, then SIGKILL)", tags, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return jobs.executionView(await jobs.cancel(ws, req.params.name, req.params.id), ws);
    });

    app.get<Exec>("/jobs/:name/executions/:id/tasks", { schema: { summary: "Tasks of an execution", tags, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      const e = await jobs.execution(ws, req.params.name, req.params.id);
      const tasks = (await jobs.tasksOf(e)).map((t) => jobs.taskView(t, e));
      return page(req, tasks, { nextCursor: null, total: tasks.length });
    });

    app.get<Exec & { Querystring: { task?: number } }>(
      "/jobs/:name/executions/:id/logs",
      { schema: { summary: "Output of an execution's tasks (every run), or of one task", tags, querystring: { type: "object", additionalProperties: true, properties: { task: { type: "integer", minimum: 0 } } }, response: { 200: Obj, ...errors } } },
      async (req) => {
        const ws = await ctx.workspaceOf(req);
        return { logs: await jobs.logs(ws, req.params.name, req.params.id, req.query.task) };
      },
    );
  };
}
