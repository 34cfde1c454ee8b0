// /v0 routes of volumes, volume templates and drives.

import type {} from "@fastify/swagger";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HangarError } from "@hangar/common";
import type { ListQueryString, RouteContext } from "@hangar/control-plane";
import type { StorageKind, StorageRecord, WorkspaceRecord } from "@hangar/store";
import type { StorageInput, StorageService } from "./storage-service.js";
import { driveView, templateView, volumeView } from "./views.js";

export interface StorageRoutesOptions {
  storage: StorageService;
  /** Largest template archive accepted, bytes. */
  uploadLimitBytes: number;
  /** The URL a volume template upload token is PUT to (`?upload=true`), e.g. <base>/upload/volume-templates/<token>. */
  uploadUrl?: (req: FastifyRequest, token: string) => string;
}

const Obj = { type: "object", additionalProperties: true } as const;
const errors = { 400: Obj, 401: Obj, 403: Obj, 404: Obj, 409: Obj, 413: Obj };
const ListQs = { type: "object", additionalProperties: true, properties: { limit: { type: "integer", minimum: 1 } } } as const;

export function storageRoutes(opts: StorageRoutesOptions) {
  return async (app: FastifyInstance, ctx: RouteContext): Promise<void> => {
    const { storage } = opts;
    const views: Record<StorageKind, (rec: StorageRecord, ws: WorkspaceRecord) => Promise<Record<string, unknown>>> = {
      volumes: async (rec, ws) => volumeView(rec, ws, await storage.attachedName(rec)),
      drives: async (rec, ws) => driveView(rec, ws),
      volume_templates: async (rec, ws) => templateView(rec, ws),
    };
    const ops = {
      volumes: { create: storage.createVolume.bind(storage), update: storage.updateVolume.bind(storage), delete: storage.deleteVolume.bind(storage) },
      drives: { create: storage.createDrive.bind(storage), update: storage.updateDrive.bind(storage), delete: storage.deleteDrive.bind(storage) },
      volume_templates: { create: storage.createTemplate.bind(storage), update: storage.updateTemplate.bind(storage), delete: storage.deleteTemplate.bind(storage) },
    };
    for (const kind of ["volumes", "drives", "volume_templates"] as const) {
      const tags = [kind];
      const view = views[kind];
      app.get<{ Querystring: ListQueryString }>(`/${kind}`, { schema: { summary: `List ${kind}`, tags, querystring: ListQs, response: { 200: {}, ...errors } } }, async (req) => {
        const ws = await ctx.workspaceOf(req);
        const q = ctx.listQuery(req);
        const page = await storage.list(ws, kind, { ...q, ...(req.query.externalId ? { externalId: req.query.externalId } : {}) });
        const data = await Promise.all(page.items.map((r) => view(r, ws)));
        return ctx.paginated(req) ? { data, meta: { hasMore: page.nextCursor !== null, nextCursor: page.nextCursor ?? "", total: page.total } } : data;
      });
      /** `?upload=true[&version=v]` on a volume template: X-Blaxel-Upload-Url takes the version's zip. */
      const upload = async (req: FastifyRequest<{ Querystring: { upload?: string | boolean; version?: string } }>, reply: FastifyReply, ws: WorkspaceRecord, rec: StorageRecord) => {
        if (kind !== "volume_templates" || !(req.query.upload === true || req.query.upload === "true")) return;
        if (!opts.uploadUrl) throw new HangarError("not_configured", "this server takes template uploads only as PUT /v0/volume_templates/{name}/versions/{version}");
        const { token } = await storage.createTemplateUpload(ws, rec.name, req.query.version);
        reply.header("x-blaxel-upload-url", opts.uploadUrl(req, token));
      };
      app.post<{ Body: StorageInput; Querystring: { upload?: string | boolean; version?: string } }>(`/${kind}`, { schema: { summary: `Create a ${kind}`, tags, body: Obj, response: { 200: Obj, ...errors } } }, async (req, reply) => {
        const ws = await ctx.workspaceOf(req);
        const rec = await ops[kind].create(ws, req.body ?? {});
        await upload(req, reply, ws, rec);
        return view(rec, ws);
      });
      app.get<{ Params: { name: string } }>(`/${kind}/:name`, { schema: { summary: `Get a ${kind}`, tags, response: { 200: Obj, ...errors } } }, async (req) => {
        const ws = await ctx.workspaceOf(req);
        return view(await storage.get(ws, kind, req.params.name), ws);
      });
      app.put<{ Params: { name: string }; Body: StorageInput; Querystring: { upload?: string | boolean; version?: string } }>(`/${kind}/:name`, { schema: { summary: `Create or update a ${kind}`, tags, body: Obj, response: { 200: Obj, ...errors } } }, async (req, reply) => {
        const ws = await ctx.workspaceOf(req);
        const rec = await ops[kind].update(ws, req.params.name, req.body ?? {});
        await upload(req, reply, ws, rec);
        return view(rec, ws);
      });
      app.delete<{ Params: { name: string } }>(`/${kind}/:name`, { schema: { summary: `Delete a ${kind}`, tags, response: { 200: Obj, ...errors } } }, async (req) => {
        const ws = await ctx.workspaceOf(req);
        return view(await ops[kind].delete(ws, req.params.name), ws);
      });
      if (kind !== "volume_templates") {
        app.get<{ Params: { externalId: string } }>(`/${kind}/by-external-id/:externalId`, { schema: { summary: `Get a ${kind} by external id`, tags, response: { 200: Obj, ...errors } } }, async (req) => {
          const ws = await ctx.workspaceOf(req);
          return view(await storage.byExternalId(ws, kind, req.params.externalId), ws);
        });
      }
    }

    // template versions: a zip of the files new volumes start from, uploaded directly
    await app.register(async (up) => {
      up.addContentTypeParser("*", (_req, payload, done) => done(null, payload));
      up.put<{ Params: { name: string; version: string } }>(
        "/volume_templates/:name/versions/:version",
        { schema: { summary: "Upload a version of a volume template (a zip)", tags: ["volume_templates"], response: { 200: Obj, ...errors } } },
        async (req: FastifyRequest<{ Params: { name: string; version: string } }>) => {
          const ws = await ctx.workspaceOf(req);
          const rec = await storage.uploadTemplateVersion(ws, req.params.name, req.params.version, req.body as import("node:stream").Readable, opts.uploadLimitBytes);
          return templateView(rec, ws);
        },
      );
    });
    app.delete<{ Params: { name: string; version: string } }>(
      "/volume_templates/:name/versions/:version",
      { schema: { summary: "Delete a version of a volume template", tags: ["volume_templates"], response: { 200: Obj, ...errors } } },
      async (req) => {
        const ws = await ctx.workspaceOf(req);
        return templateView(await storage.deleteTemplateVersion(ws, req.params.name, req.params.version), ws);
      },
    );
  };
}

/** The upload URL of `?upload=true` (no Blaxel auth: the single-use token is the credential). */
export function templateUploadRoute(storage: StorageService, uploadLimitBytes: number) {
  return async (app: FastifyInstance): Promise<void> => {
    app.addContentTypeParser("*", (_req, payload, done) => done(null, payload));
    app.put<{ Params: { token: string } }>("/upload/volume-templates/:token", { schema: { hide: true } }, async (req) => {
      const rec = await storage.receiveTemplateUpload(req.params.token, req.body as import("node:stream").Readable, uploadLimitBytes);
      const versions = (rec.spec.versions as Array<{ name: string }> | undefined) ?? [];
      return { message: "volume template version uploaded", version: versions[versions.length - 1]?.name };
    });
  };
}
