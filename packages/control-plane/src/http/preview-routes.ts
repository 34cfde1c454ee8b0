// /v0 routes of previews, preview tokens and custom domains.

import type { FastifyInstance, FastifyRequest } from "fastify";
import { HangarError } from "@hangar/common";
import type { PreviewRecord, SandboxRecord, WorkspaceRecord } from "@hangar/store";
import type { Principal } from "../auth/auth-service.js";
import type { PreviewInput, PreviewService, TokenInput } from "../previews/preview-service.js";
import { customDomainView, previewView, tokenView } from "../previews/preview-view.js";
import type { SandboxService } from "../sandboxes/sandbox-service.js";
import * as S from "./schemas.js";

export interface PreviewRoutesContext {
  previews: PreviewService;
  sandboxes: SandboxService;
  workspaceOf: (req: FastifyRequest) => Promise<WorkspaceRecord>;
  principal: (req: FastifyRequest) => Principal;
  previewUrl: (req: FastifyRequest, preview: PreviewRecord, workspace: string) => string;
  lookupTxt: (host: string) => Promise<string[][]>;
}

type SbxParams = { name: string };
type PreviewParams = { name: string; preview: string };

const Obj = { type: "object", additionalProperties: true } as const;

export async function registerPreviewRoutes(app: FastifyInstance, ctx: PreviewRoutesContext): Promise<void> {
  const { previews } = ctx;
  const target = async (req: FastifyRequest<{ Params: SbxParams }>): Promise<{ ws: WorkspaceRecord; sbx: SandboxRecord }> => {
    const ws = await ctx.workspaceOf(req);
    const sbx = await ctx.sandboxes.get(ws, req.params.name);
    if (sbx.terminatedAt) throw new HangarError("sandbox_not_found", `sandbox '${req.params.name}' not found`);
    return { ws, sbx };
  };
  const view = (req: FastifyRequest, ws: WorkspaceRecord, sbx: SandboxRecord) => (p: PreviewRecord) =>
    previewView(p, { sandboxName: sbx.name, workspace: ws.name, url: ctx.previewUrl(req, p, ws.name) });
  const tags = ["previews"];

  app.get<{ Params: SbxParams }>("/sandboxes/:name/previews", { schema: { summary: "List a sandbox's previews", tags, response: { 200: { type: "array", items: Obj }, ...S.errors(401, 403, 404) } } }, async (req) => {
    const { ws, sbx } = await target(req);
    return (await previews.list(sbx)).map(view(req, ws, sbx));
  });

  app.post<{ Params: SbxParams; Body: PreviewInput; Querystring: { force?: boolean } }>(
    "/sandboxes/:name/previews",
    { schema: { summary: "Publish a port of a sandbox (port 443: the sandbox API, for sessions)", tags, body: Obj, querystring: { type: "object", properties: { force: { type: "boolean" }, workspace: { type: "string" } } }, response: { 200: Obj, ...S.errors(400, 401, 403, 404, 409) } } },
    async (req) => {
      const { ws, sbx } = await target(req);
      return view(req, ws, sbx)(await previews.create(ws, sbx, req.body ?? {}, { force: req.query.force === true }));
    },
  );

  app.get<{ Params: PreviewParams }>("/sandboxes/:name/previews/:preview", { schema: { summary: "Get a preview", tags, response: { 200: Obj, ...S.errors(401, 403, 404) } } }, async (req) => {
    const { ws, sbx } = await target(req);
    return view(req, ws, sbx)(await previews.get(sbx, req.params.preview));
  });

  app.put<{ Params: PreviewParams; Body: PreviewInput }>("/sandboxes/:name/previews/:preview", { schema: { summary: "Update a preview", tags, body: Obj, response: { 200: Obj, ...S.errors(400, 401, 403, 404, 409) } } }, async (req) => {
    const { ws, sbx } = await target(req);
    return view(req, ws, sbx)(await previews.update(ws, sbx, req.params.preview, req.body ?? {}));
  });

  app.delete<{ Params: PreviewParams }>("/sandboxes/:name/previews/:preview", { schema: { summary: "Delete a preview and its tokens", tags, response: { 200: Obj, ...S.errors(401, 403, 404) } } }, async (req) => {
    const { ws, sbx } = await target(req);
    return view(req, ws, sbx)(await previews.delete(sbx, req.params.preview));
  });

  app.get<{ Params: PreviewParams }>("/sandboxes/:name/previews/:preview/tokens", { schema: { summary: "List a preview's tokens", tags, response: { 200: { type: "array", items: Obj }, ...S.errors(401, 403, 404) } } }, async (req) => {
    const { ws, sbx } = await target(req);
    const p = await previews.get(sbx, req.params.preview);
    return (await previews.listTokens(p)).map((t) => tokenView(t, previews.revealToken(t), { previewName: p.name, sandboxName: sbx.name, workspace: ws.name }));
  });

  app.post<{ Params: PreviewParams; Body: TokenInput }>("/sandboxes/:name/previews/:preview/tokens", { schema: { summary: "Create a token for a private preview", tags, body: Obj, response: { 200: Obj, ...S.errors(400, 401, 403, 404, 409) } } }, async (req, reply) => {
    const { ws, sbx } = await target(req);
    const p = await previews.get(sbx, req.params.preview);
    const { record, token } = await previews.createToken(p, req.body ?? {});
    reply.header("cache-control", "no-store");
    return tokenView(record, token, { previewName: p.name, sandboxName: sbx.name, workspace: ws.name });
  });

  app.delete<{ Params: PreviewParams & { token: string } }>("/sandboxes/:name/previews/:preview/tokens/:token", { schema: { summary: "Delete a preview token", tags, response: { 200: Obj, ...S.errors(401, 403, 404) } } }, async (req) => {
    const { sbx } = await target(req);
    const p = await previews.get(sbx, req.params.preview);
    await previews.deleteToken(p, req.params.token);
    return { message: "token deleted", name: req.params.token };
  });

  // ---- custom domains ---------------------------------------------------------------------------
  const dtags = ["customdomains"];
  app.get("/customdomains", { schema: { summary: "List custom domains", tags: dtags, response: { 200: { type: "array", items: Obj } } } }, async (req) => {
    const ws = await ctx.workspaceOf(req);
    return (await ctx.previews.listDomains(ws)).map((d) => customDomainView(d, ws.name));
  });
  app.post<{ Body: { metadata?: { name?: unknown } } }>("/customdomains", { schema: { summary: "Register a custom domain (then verify it)", tags: dtags, body: Obj, response: { 200: Obj, ...S.errors(400, 401, 403, 409) } } }, async (req) => {
    const ws = await ctx.workspaceOf(req);
    return customDomainView(await previews.createDomain(ws, req.body?.metadata?.name), ws.name);
  });
  app.get<{ Params: { domain: string } }>("/customdomains/:domain", { schema: { summary: "Get a custom domain", tags: dtags, response: { 200: Obj, ...S.errors(401, 403, 404) } } }, async (req) => {
    const ws = await ctx.workspaceOf(req);
    return customDomainView(await previews.getDomain(ws, req.params.domain), ws.name);
  });
  app.post<{ Params: { domain: string }; Querystring: { force?: boolean } }>(
    "/customdomains/:domain/verify",
    { schema: { summary: "Verify a custom domain by its TXT record (admins may attest with force=true)", tags: dtags, querystring: { type: "object", properties: { force: { type: "boolean" }, workspace: { type: "string" } } }, response: { 200: Obj, ...S.errors(401, 403, 404, 422) } } },
    async (req) => {
      const ws = await ctx.workspaceOf(req);
      const force = req.query.force === true;
      if (force && !ctx.principal(req).admin) throw new HangarError("forbidden", "only an admin key can attest a domain without DNS verification");
      return customDomainView(await previews.verifyDomain(ws, req.params.domain, ctx.lookupTxt, force), ws.name);
    },
  );
  app.delete<{ Params: { domain: string } }>("/customdomains/:domain", { schema: { summary: "Delete a custom domain", tags: dtags, response: { 200: Obj, ...S.errors(401, 403, 404) } } }, async (req) => {
    const ws = await ctx.workspaceOf(req);
    return customDomainView(await previews.deleteDomain(ws, req.params.domain), ws.name);
  });
}
