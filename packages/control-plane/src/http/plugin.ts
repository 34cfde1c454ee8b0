// The control plane's HTTP transport: /v0 routes that parse requests and call the services.

import type {} from "@fastify/swagger";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HangarError } from "@hangar/common";
import type { ListQuery, PreviewRecord, Store, WorkspaceRecord } from "@hangar/store";
import { type ApiKeyService, apiKeyView } from "../auth/api-key-service.js";
import type { AuthService, Principal } from "../auth/auth-service.js";
import type { SandboxNodePort } from "../node-port.js";
import type { PreviewService } from "../previews/preview-service.js";
import type { SandboxInput, SandboxService } from "../sandboxes/sandbox-service.js";
import { sandboxView } from "../sandboxes/sandbox-view.js";
import { type WorkspaceService, workspaceView } from "../workspaces/workspace-service.js";
import type { SourceBuildsPort, TaskLogsPort } from "../builds-port.js";
import { registerBuildRoutes } from "./build-routes.js";
import { registerPreviewRoutes } from "./preview-routes.js";
import * as S from "./schemas.js";

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
    apiVersion?: string;
  }
}

/** Blaxel-Version values this server speaks; lists are paginated from 2026-04-28 on. */
export const API_VERSIONS = ["2026-04-16", "2026-04-28"] as const;
const PAGINATED_FROM = "2026-04-28";
const MAX_LIMIT = 200;

export interface ControlPlaneOptions {
  store: Store;
  auth: AuthService;
  apiKeys: ApiKeyService;
  workspaces: WorkspaceService;
  sandboxes: SandboxService;
  previews: PreviewService;
  node: SandboxNodePort;
  /** metadata.url of a sandbox, given the request it is computed for. */
  sandboxUrl: (req: FastifyRequest, workspace: WorkspaceRecord, name: string) => string;
  /** spec.url of a preview, given the request it is computed for. */
  previewUrl: (req: FastifyRequest, preview: PreviewRecord, workspace: string) => string;
  /** DNS TXT lookup used to verify custom domains. */
  lookupTxt: (host: string) => Promise<string[][]>;
  /** Builds from source (`?upload=true`, images, build logs), when this server runs them. */
  builds?: { port: SourceBuildsPort; uploadUrl: (req: FastifyRequest, token: string) => string; taskLogs?: TaskLogsPort };
  /** Routes of other planes (agents, functions…) registered behind the same /v0 authentication. */
  extraRoutes?: Array<(app: FastifyInstance, ctx: RouteContext) => Promise<void>>;
  /**
   * How long a named create may take before it answers 504 creation_in_progress and goes on (an
   * image building on first use): @blaxel/core then polls the sandbox until DEPLOYED, where its
   * fetch would give up at 300 s. Default 240 s.
   */
  createAnswerMs?: number;
}

/** What route modules of other planes get from the control plane's /v0 context. */
export interface RouteContext {
  workspaceOf: (req: FastifyRequest) => Promise<WorkspaceRecord>;
  principal: (req: FastifyRequest) => Principal;
  /** Lists as {data, meta} pages (Blaxel-Version ≥ 2026-04-28) rather than bare arrays. */
  paginated: (req: FastifyRequest) => boolean;
  /** The list query of the common list parameters (cursor, limit, sort, q, anchor, status, label). */
  listQuery: (req: FastifyRequest<{ Querystring: ListQueryString }>) => ListQuery;
}

export type ListQueryString = {
  cursor?: string;
  limit?: number;
  sort?: "createdAt:desc" | "createdAt:asc" | "name:asc" | "name:desc";
  q?: string;
  anchor?: "end";
  status?: string;
  externalId?: string;
  label?: string | string[];
  showTerminated?: boolean;
};

/** Blaxel's LocationResponse: a region this server deploys to. */
const Location = Type.Object({
  region: Type.String({ description: "Region name, as in spec.region" }),
  location: Type.String(),
  continent: Type.String(),
  country: Type.String(),
  status: Type.String({ description: "healthy" }),
  flavors: Type.Array(Type.Object({ name: Type.String(), type: Type.String({ description: "cpu or gpu" }) })),
});

const SANDBOX_STATUSES = new Set(["DELETING", "TERMINATED", "FAILED", "DEACTIVATED", "DEACTIVATING", "UPLOADING", "BUILDING", "DEPLOYING", "DEPLOYED", "BUILT"]);

function parseLabels(label: string | string[] | undefined): Record<string, string> | undefined {
  if (!label) return undefined;
  const out: Record<string, string> = {};
  for (const part of (Array.isArray(label) ? label : [label]).flatMap((l) => l.split(","))) {
    const i = part.indexOf("=");
    if (i <= 0) throw new HangarError("validation_failed", `label: expected key=value, got ${JSON.stringify(part)}`);
    out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

export async function controlPlanePlugin(app: FastifyInstance, opts: ControlPlaneOptions): Promise<void> {
  const { auth } = opts;

  // Every /v0 call: a known API version and a valid key.
  app.addHook("onRequest", async (req) => {
    const v = req.headers["blaxel-version"];
    const version = Array.isArray(v) ? v[0] : v;
    if (version !== undefined && !(API_VERSIONS as readonly string[]).includes(version)) {
      throw new HangarError("invalid_api_version", `unknown Blaxel-Version ${JSON.stringify(version)}; supported: ${API_VERSIONS.join(", ")}`, { error: "invalid_api_version" });
    }
    req.apiVersion = version ?? API_VERSIONS[0];
    const h = req.headers["x-blaxel-authorization"] ?? req.headers.authorization;
    req.principal = await auth.authenticate(Array.isArray(h) ? h[0] : h);
  });

  const principal = (req: FastifyRequest): Principal => req.principal!;
  const workspaceOf = async (req: FastifyRequest): Promise<WorkspaceRecord> => {
    const h = req.headers["x-blaxel-workspace"];
    const q = (req.query as { workspace?: string } | undefined)?.workspace;
    return auth.resolveWorkspace(principal(req), (Array.isArray(h) ? h[0] : h) || q || undefined);
  };
  const paginated = (req: FastifyRequest) => (req.apiVersion ?? "") >= PAGINATED_FROM;
  /** The list query of the common list parameters, in the page mode of the request's API version. */
  const listQuery = (req: FastifyRequest<{ Querystring: ListQueryString }>): ListQuery => {
    const q = req.query;
    const pageMode = paginated(req);
    if (q.anchor === "end" && q.sort?.startsWith("name:")) throw new HangarError("validation_failed", "anchor=end: only with a createdAt sort (the newest or oldest page)");
    const term = q.q?.trim().toLowerCase();
    return {
      sort: pageMode ? (q.sort ?? "createdAt:desc") : "createdAt:desc",
      limit: pageMode ? Math.min(q.limit ?? 50, MAX_LIMIT) : 100_000,
      cursor: pageMode ? q.cursor : undefined,
      anchorEnd: q.anchor === "end",
      q: pageMode && term && term.length >= 2 ? term : undefined,
      statuses: q.status ? q.status.split(",").map((s) => s.trim().toUpperCase()).filter(Boolean) : undefined,
      labels: parseLabels(q.label),
    };
  };
  const view =
    (req: FastifyRequest, ws: WorkspaceRecord, lite = false, showSecrets = false) =>
    (rec: Parameters<typeof sandboxView>[0]) =>
      sandboxView(rec, {
        workspaceName: ws.name,
        url: (_w, n) => opts.sandboxUrl(req, ws, n),
        state: opts.node.state(rec.id),
        lite,
        ...(showSecrets ? { revealEnvs: (spec) => opts.sandboxes.revealEnvs(spec) } : {}),
      });

  // ---- locations --------------------------------------------------------------------------
  app.get(
    "/locations",
    { schema: { summary: "List the regions this server deploys to (HANGAR_REGIONS)", tags: ["locations"], response: { 200: Type.Array(Location), ...S.errors(401) } } },
    async () =>
      opts.sandboxes.regions.map((region) => ({ region, location: region, continent: "", country: "", status: "healthy", flavors: [{ name: "cpu", type: "cpu" }] })),
  );

  // ---- sandboxes --------------------------------------------------------------------------
  app.get<{ Querystring: ListQueryString }>(
    "/sandboxes",
    { schema: { summary: "List sandboxes", tags: ["sandboxes"], querystring: S.ListQuery, response: { 200: { anyOf: [{ type: "array", items: S.Sandbox }, { type: "object", additionalProperties: true }] }, ...S.errors(400, 401, 403) } } },
    async (req) => {
      const ws = await workspaceOf(req);
      const q = req.query;
      const query = { ...listQuery(req), externalId: q.externalId, showTerminated: q.showTerminated ?? false };
      for (const s of query.statuses ?? []) if (!SANDBOX_STATUSES.has(s)) throw new HangarError("validation_failed", `status: unknown value ${JSON.stringify(s)}`);
      const page = await opts.sandboxes.list(ws, query);
      const data = page.items.map(view(req, ws, true));
      if (!paginated(req)) return data;
      return { data, meta: { hasMore: page.nextCursor !== null, nextCursor: page.nextCursor ?? "", total: page.total } };
    },
  );

  /** `?upload=true`: the sandbox runs an image built from the source PUT to X-Blaxel-Upload-Url. */
  const prepareUpload = async (req: FastifyRequest, reply: FastifyReply, ws: WorkspaceRecord, body: SandboxInput, name?: string) => {
    if (!opts.builds) throw new HangarError("not_configured", "this server does not build from source");
    const rec = await opts.sandboxes.prepareUpload(ws, body, name);
    const { token } = await opts.builds.port.createUpload(ws, "sandboxes", rec.name);
    reply.header("x-blaxel-upload-url", opts.builds.uploadUrl(req, token));
    return view(req, ws)(rec);
  };

  app.post<{ Body: SandboxInput; Querystring: { createIfNotExist?: boolean; upload?: boolean } }>(
    "/sandboxes",
    {
      schema: {
        summary: "Create a sandbox (with ?upload=true: from source built by Hangar)",
        tags: ["sandboxes"],
        body: S.SandboxBody,
        querystring: { type: "object", properties: { createIfNotExist: { type: "boolean" }, upload: { type: "boolean" }, workspace: { type: "string" } } },
        response: { 200: S.Sandbox, ...S.errors(400, 401, 403, 409, 500) },
      },
    },
    async (req, reply) => {
      const ws = await workspaceOf(req);
      if (req.query.upload) return prepareUpload(req, reply, ws, req.body ?? {});
      const creating = opts.sandboxes.create(ws, req.body ?? {}, { createIfNotExist: req.query.createIfNotExist === true });
      const name = (req.body as { metadata?: { name?: unknown } } | undefined)?.metadata?.name;
      if (typeof name !== "string") return view(req, ws)(await creating);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<null>((r) => (timer = setTimeout(() => r(null), opts.createAnswerMs ?? 240_000)));
      const rec = await Promise.race([creating, late]).finally(() => clearTimeout(timer));
      if (rec) return view(req, ws)(rec);
      creating.catch((e: unknown) => req.log.warn({ err: e, sandbox: name }, "a create that answered 504 failed later"));
      throw new HangarError("creation_in_progress", `sandbox '${name}' is still being created (its image is building on first use); it reads DEPLOYED when ready`, { sandbox_name: name });
    },
  );

  app.get<{ Params: { externalId: string } }>(
    "/sandboxes/by-external-id/:externalId",
    { schema: { summary: "Get the most recent live sandbox with an external id", tags: ["sandboxes"], response: { 200: S.Sandbox, ...S.errors(401, 403, 404) } } },
    async (req) => {
      const ws = await workspaceOf(req);
      return view(req, ws)(await opts.sandboxes.getByExternalId(ws, req.params.externalId));
    },
  );

  app.get<{ Params: { name: string }; Querystring: { show_secrets?: boolean } }>(
    "/sandboxes/:name",
    {
      schema: {
        summary: "Get a sandbox (env values masked; shown with show_secrets=true to an admin key)",
        tags: ["sandboxes"],
        params: S.NameParam,
        querystring: { type: "object", properties: { show_secrets: { type: "boolean" }, workspace: { type: "string" } } },
        response: { 200: S.Sandbox, ...S.errors(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const showSecrets = req.query.show_secrets === true;
      if (showSecrets && !principal(req).admin) throw new HangarError("forbidden", "show_secrets: only an admin API key may see env values", { field: "show_secrets" });
      const ws = await workspaceOf(req);
      const rec = await opts.sandboxes.get(ws, req.params.name);
      if (rec.status === "BUILDING") await opts.builds?.port.observe(ws.id, "sandboxes", rec.name);
      return view(req, ws, false, showSecrets)(rec);
    },
  );

  app.put<{ Params: { name: string }; Body: SandboxInput; Querystring: { upload?: boolean } }>(
    "/sandboxes/:name",
    {
      schema: {
        summary: "Update a sandbox (full object; with ?upload=true: rebuild from source)",
        tags: ["sandboxes"],
        params: S.NameParam,
        body: S.SandboxBody,
        querystring: { type: "object", properties: { upload: { type: "boolean" }, workspace: { type: "string" } } },
        response: { 200: S.Sandbox, ...S.errors(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      const ws = await workspaceOf(req);
      if (req.query.upload) return prepareUpload(req, reply, ws, req.body ?? {}, req.params.name);
      return view(req, ws)(await opts.sandboxes.update(ws, req.params.name, req.body ?? {}));
    },
  );

  app.delete<{ Params: { name: string } }>(
    "/sandboxes/:name",
    { schema: { summary: "Delete a sandbox", tags: ["sandboxes"], params: S.NameParam, response: { 200: S.Sandbox, ...S.errors(401, 403, 404) } } },
    async (req) => {
      const ws = await workspaceOf(req);
      return view(req, ws)(await opts.sandboxes.delete(ws, req.params.name));
    },
  );

  app.post<{ Params: { name: string } }>(
    "/sandboxes/:name/standby",
    { schema: { summary: "Park a sandbox in standby now (Hangar); the next request wakes it", tags: ["sandboxes"], params: S.NameParam, response: { 200: S.Sandbox, ...S.errors(401, 403, 404, 409) } } },
    async (req) => {
      const ws = await workspaceOf(req);
      const rec = await opts.sandboxes.get(ws, req.params.name);
      if (rec.status !== "DEPLOYED") throw new HangarError("conflict", `sandbox '${rec.name}' is ${rec.status}`);
      await opts.node.standby(rec.id);
      return view(req, ws)(rec);
    },
  );

  if (opts.builds) {
    await registerBuildRoutes(app, { builds: opts.builds.port, workspaceOf, uploadUrl: opts.builds.uploadUrl, ensureImage: (ref) => opts.node.ensureImage(ref), ...(opts.builds.taskLogs ? { taskLogs: opts.builds.taskLogs } : {}) });
  }

  for (const register of opts.extraRoutes ?? []) await register(app, { workspaceOf, principal, paginated, listQuery });

  await registerPreviewRoutes(app, {
    previews: opts.previews,
    sandboxes: opts.sandboxes,
    workspaceOf,
    principal,
    previewUrl: opts.previewUrl,
    lookupTxt: opts.lookupTxt,
  });

  // ---- workspaces -------------------------------------------------------------------------
  app.get("/workspaces", { schema: { summary: "List the workspaces this key reaches", tags: ["workspaces"], response: { 200: { type: "array", items: S.Workspace } } } }, async (req) =>
    (await opts.workspaces.listFor(principal(req))).map(workspaceView),
  );

  app.post<{ Body: { name: string; displayName?: string; labels?: Record<string, string> } }>(
    "/workspaces",
    { schema: { summary: "Create a workspace (admin keys)", tags: ["workspaces"], body: S.WorkspaceBody, response: { 200: S.Workspace, ...S.errors(400, 401, 403, 409) } } },
    async (req) => workspaceView(await opts.workspaces.createFor(principal(req), req.body)),
  );

  const namedWorkspace = async (req: FastifyRequest<{ Params: { name: string } }>) => auth.resolveWorkspace(principal(req), req.params.name);

  app.get<{ Params: { name: string } }>("/workspaces/:name", { schema: { summary: "Get a workspace", tags: ["workspaces"], params: S.NameParam, response: { 200: S.Workspace, ...S.errors(401, 403) } } }, async (req) =>
    workspaceView(await namedWorkspace(req)),
  );

  app.put<{ Params: { name: string }; Body: { displayName?: string; labels?: Record<string, string> } }>(
    "/workspaces/:name",
    { schema: { summary: "Update a workspace", tags: ["workspaces"], params: S.NameParam, body: { type: "object", additionalProperties: true }, response: { 200: S.Workspace, ...S.errors(400, 401, 403) } } },
    async (req) => workspaceView(await opts.workspaces.update(await namedWorkspace(req), req.body ?? {})),
  );

  app.delete<{ Params: { name: string } }>(
    "/workspaces/:name",
    { schema: { summary: "Delete an empty workspace (admin keys)", tags: ["workspaces"], params: S.NameParam, response: { 200: S.Workspace, ...S.errors(401, 403, 409) } } },
    async (req) => workspaceView(await opts.workspaces.delete(principal(req), await namedWorkspace(req))),
  );

  // ---- API keys ---------------------------------------------------------------------------
  const names = async () => new Map((await opts.store.workspaces.list()).map((w) => [w.id, w.name]));

  app.get("/api-keys", { schema: { summary: "List the API keys of the selected workspace", tags: ["api-keys"], response: { 200: { type: "array", items: S.ApiKey }, ...S.errors(401, 403) } } }, async (req) => {
    const ws = await workspaceOf(req);
    const n = await names();
    const p = principal(req);
    return (await opts.apiKeys.list(ws.id)).map((k) => apiKeyView(k, n, undefined, (w) => p.admin || p.workspaceIds.has(w)));
  });

  app.post<{ Body: { name: string; expires_in?: string; admin?: boolean; workspaces?: string[] } }>(
    "/api-keys",
    { schema: { summary: "Create an API key (its secret is returned once)", tags: ["api-keys"], body: S.ApiKeyBody, response: { 200: S.ApiKey, ...S.errors(400, 401, 403) } } },
    async (req, reply: FastifyReply) => {
      const p = principal(req);
      const wsIds = req.body.workspaces?.length
        ? await Promise.all(req.body.workspaces.map(async (n) => (await auth.resolveWorkspace(p, n)).id))
        : [(await workspaceOf(req)).id];
      const created = await opts.apiKeys.createFor(p, { name: req.body.name, workspaceIds: wsIds, admin: req.body.admin ?? false, expiresIn: req.body.expires_in });
      reply.header("cache-control", "no-store");
      return apiKeyView(created.record, await names(), created.key);
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/api-keys/:id",
    { schema: { summary: "Revoke an API key", tags: ["api-keys"], response: { 200: S.ApiKey, ...S.errors(401, 404) } } },
    async (req) => apiKeyView(await opts.apiKeys.revoke(principal(req), req.params.id), await names()),
  );
}
