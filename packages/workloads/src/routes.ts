// /v0 routes of agents (and functions): create-or-update as the SDK and `bl` drive them, revisions.

import type {} from "@fastify/swagger";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HangarError } from "@hangar/common";
import type { ListQueryString, RouteContext } from "@hangar/control-plane";
import type { WorkspaceRecord } from "@hangar/store";
import type { WorkloadSpecDoc } from "./workload-spec.js";
import { type WorkloadInput, type WorkloadService } from "./workload-service.js";
import { workloadView } from "./workload-view.js";

export interface WorkloadRoutesOptions {
  workloads: WorkloadService;
  /** Kinds served: "agents" (and later "functions"). */
  kinds: string[];
  /** The run-plane URL of a workload (metadata.url). */
  url: (req: FastifyRequest, ws: WorkspaceRecord, kind: string, name: string) => string;
  /** `?upload=true` (bl deploy): a build of the workload waiting for its source; returns the upload URL. */
  upload?: (req: FastifyRequest, ws: WorkspaceRecord, kind: string, name: string) => Promise<string>;
}

const Obj = { type: "object", additionalProperties: true } as const;
const errors = { 400: Obj, 401: Obj, 403: Obj, 404: Obj, 409: Obj };

export function workloadRoutes(opts: WorkloadRoutesOptions) {
  return async (app: FastifyInstance, ctx: RouteContext): Promise<void> => {
    const { workloads } = opts;
    for (const kind of opts.kinds) {
      const tags = [kind];
      const view = (req: FastifyRequest, ws: WorkspaceRecord, lite = false, revealed?: WorkloadSpecDoc) => (rec: Parameters<typeof workloadView>[0]) =>
        workloadView(rec, { workspaceName: ws.name, url: opts.url(req, ws, kind, rec.name), lite, ...(revealed ? { revealed } : {}) });

      app.get<{ Querystring: ListQueryString }>(`/${kind}`, { schema: { summary: `List ${kind}`, tags, querystring: { type: "object", additionalProperties: true, properties: { limit: { type: "integer", minimum: 1 } } }, response: { 200: {}, ...errors } } }, async (req) => {
        const ws = await ctx.workspaceOf(req);
        const page = await workloads.list(ws, kind, ctx.listQuery(req));
        const data = page.items.map(view(req, ws, true));
        return ctx.paginated(req) ? { data, meta: { hasMore: page.nextCursor !== null, nextCursor: page.nextCursor ?? "", total: page.total } } : data;
      });

      /** With ?upload=true the workload runs what is built from the source PUT to X-Blaxel-Upload-Url. */
      const apply = async (req: FastifyRequest<{ Body: WorkloadInput; Querystring: { upload?: boolean } }>, reply: FastifyReply, how: { name?: string; mustCreate?: boolean }) => {
        const ws = await ctx.workspaceOf(req);
        const upload = req.query.upload === true;
        if (upload && !opts.upload) throw new HangarError("not_configured", "this server does not build from source");
        const rec = await workloads.apply(ws, kind, req.body ?? {}, { ...how, deferDeploy: upload });
        if (upload) reply.header("x-blaxel-upload-url", await opts.upload!(req, ws, kind, rec.name));
        return workloadView(rec, { workspaceName: ws.name, url: opts.url(req, ws, kind, rec.name), ...(rec.newCallbackSecrets ? { newCallbackSecrets: rec.newCallbackSecrets } : {}) });
      };
      const UploadQuery = { type: "object", additionalProperties: true, properties: { upload: { type: "boolean" } } };

      app.post<{ Body: WorkloadInput; Querystring: { upload?: boolean } }>(`/${kind}`, { schema: { summary: `Create an ${kind.slice(0, -1)}`, tags, body: Obj, querystring: UploadQuery, response: { 200: Obj, ...errors } } }, (req, reply) =>
        apply(req, reply, { mustCreate: true }),
      );

      app.get<{ Params: { name: string }; Querystring: { show_secrets?: boolean } }>(
        `/${kind}/:name`,
        { schema: { summary: `Get an ${kind.slice(0, -1)}`, tags, querystring: { type: "object", additionalProperties: true, properties: { show_secrets: { type: "boolean" } } }, response: { 200: Obj, ...errors } } },
        async (req) => {
          const ws = await ctx.workspaceOf(req);
          const rec = await workloads.get(ws, kind, req.params.name);
          if (req.query.show_secrets && !ctx.principal(req).admin) throw new HangarError("forbidden", "show_secrets needs an admin API key");
          const revealed = req.query.show_secrets ? workloads.reveal(rec.spec as unknown as WorkloadSpecDoc) : undefined;
          return view(req, ws, false, revealed)(rec);
        },
      );

      app.put<{ Params: { name: string }; Body: WorkloadInput; Querystring: { upload?: boolean } }>(
        `/${kind}/:name`,
        { schema: { summary: `Create or update an ${kind.slice(0, -1)}`, tags, body: Obj, querystring: UploadQuery, response: { 200: Obj, ...errors } } },
        (req, reply) => apply(req, reply, { name: req.params.name }),
      );

      app.delete<{ Params: { name: string } }>(`/${kind}/:name`, { schema: { summary: `Delete an ${kind.slice(0, -1)}`, tags, response: { 200: Obj, ...errors } } }, async (req) => {
        const ws = await ctx.workspaceOf(req);
        return view(req, ws)(await workloads.delete(ws, kind, req.params.name));
      });

      /** The app's output per replica; with ?follow=true a text stream of lines "<revision>/<replica> <stream>: <line>" until the client leaves. */
      app.get<{ Params: { name: string }; Querystring: { follow?: string } }>(`/${kind}/:name/logs`, { schema: { summary: `The app output of an ${kind.slice(0, -1)}'s replicas`, tags, querystring: { type: "object", properties: { follow: { type: "string" } } }, response: { 200: {}, ...errors } } }, async (req, reply) => {
        const ws = await ctx.workspaceOf(req);
        const replicas = await workloads.appLogs(ws, kind, req.params.name);
        if (req.query.follow !== "true") return { replicas: replicas.map((r) => ({ replica: r.replica, revision: r.revision, status: r.status, ...r.logs.tail() })) };
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
        const handles = replicas.map((r) => {
          let partial = "";
          return r.logs.follow(
            (c) => {
              const lines = (partial + c.data.toString("utf8")).split("\n");
              partial = lines.pop() ?? "";
              for (const line of lines) res.write(`${r.revision}/${r.replica} ${c.stream === 2 ? "stderr" : "stdout"}: ${line}\n`);
            },
            () => undefined,
          );
        });
        const keepalive = setInterval(() => res.write(""), 15_000);
        res.on("close", () => {
          clearInterval(keepalive);
          for (const h of handles) h.close();
        });
      });

      app.get<{ Params: { name: string } }>(`/${kind}/:name/revisions`, { schema: { summary: `Revisions of an ${kind.slice(0, -1)} (newest first)`, tags, response: { 200: { type: "array", items: Obj }, ...errors } } }, async (req) => {
        const ws = await ctx.workspaceOf(req);
        return workloads.revisions(ws, kind, req.params.name);
      });
    }
  };
}
