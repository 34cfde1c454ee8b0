// /v0 routes of the model gateway: integration connections (bare-array list, as the SDK expects),
// integrations, models (+ revisions, usage), policies (+ usages).

import type {} from "@fastify/swagger";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { HangarError } from "@hangar/common";
import type { ListQueryString, RouteContext } from "@hangar/control-plane";
import type { GatewayResourceRecord, WorkspaceRecord } from "@hangar/store";
import type { Accountant } from "./accountant.js";
import { type ConnectionSpec, type GatewayService, type ModelSpec, type ResourceInput, connectionBaseUrl } from "./gateway-service.js";
import { MCP_INTEGRATIONS } from "./integrations.js";
import { PROVIDERS } from "./providers/index.js";

export interface GatewayRoutesOptions {
  service: GatewayService;
  accountant: Accountant;
  /** The run-plane URL of a model (metadata.url). */
  modelUrl: (req: FastifyRequest, ws: WorkspaceRecord, name: string) => string;
  /** Asks a provider for its models (GET with the connection's key); null when it cannot. */
  listProviderModels?: (baseUrl: string, path: string, headers: Record<string, string>) => Promise<unknown | null>;
}

const Obj = { type: "object", additionalProperties: true } as const;
const errors = { 400: Obj, 401: Obj, 403: Obj, 404: Obj, 409: Obj };
const Named = { type: "object", properties: { name: { type: "string" } }, required: ["name"] } as const;

function metadata(rec: GatewayResourceRecord, ws: WorkspaceRecord, url?: string): Record<string, unknown> {
  return { name: rec.name, displayName: rec.displayName, labels: rec.labels, workspace: ws.name, createdAt: rec.createdAt, updatedAt: rec.updatedAt, ...(url ? { url } : {}) };
}

/** A connection as the API shows it: secret values are never returned (their names are, empty). */
export function connectionView(rec: GatewayResourceRecord, ws: WorkspaceRecord): Record<string, unknown> {
  const s = rec.spec as unknown as ConnectionSpec;
  return {
    metadata: metadata(rec, ws),
    spec: { integration: s.integration, config: s.config, secret: Object.fromEntries(Object.keys(s.secret ?? {}).map((k) => [k, ""])), ...(s.sandbox !== undefined ? { sandbox: s.sandbox } : {}) },
    status: rec.status,
  };
}

export function gatewayRoutes(opts: GatewayRoutesOptions) {
  return async (app: FastifyInstance, ctx: RouteContext): Promise<void> => {
    const { service } = opts;

    // ---- integration connections ----------------------------------------------------------
    const tags = ["integrations"];
    app.get("/integrations/connections", { schema: { summary: "List integration connections (a bare array)", tags, response: { 200: { type: "array", items: Obj }, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return (await service.listAll(ws, "connections")).map((r) => connectionView(r, ws));
    });
    app.post<{ Body: ResourceInput }>("/integrations/connections", { schema: { summary: "Create an integration connection", tags, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return connectionView(await service.applyConnection(ws, req.body, { mustCreate: true, admin: ctx.principal(req).admin }), ws);
    });
    app.get<{ Params: { name: string } }>("/integrations/connections/:name", { schema: { summary: "Get an integration connection (secrets are never returned)", tags, params: Named, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return connectionView(await service.get(ws, "connections", req.params.name), ws);
    });
    app.put<{ Params: { name: string }; Body: ResourceInput }>("/integrations/connections/:name", { schema: { summary: "Create or update an integration connection; secret values left out or empty keep the stored ones", tags, params: Named, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return connectionView(await service.applyConnection(ws, req.body, { name: req.params.name, admin: ctx.principal(req).admin }), ws);
    });
    app.delete<{ Params: { name: string } }>("/integrations/connections/:name", { schema: { summary: "Delete an integration connection (409 while a model uses it)", tags, params: Named, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return connectionView(await service.delete(ws, "connections", req.params.name), ws);
    });

    /** The models a connection reaches: the provider's own list when it answers, else the known catalog. */
    const connectionModels = async (ws: WorkspaceRecord, name: string): Promise<{ id: string; [k: string]: unknown }[]> => {
      const rec = await service.get(ws, "connections", name);
      const s = rec.spec as unknown as ConnectionSpec;
      const provider = PROVIDERS.get(s.integration);
      if (!provider) return [];
      if (provider.modelsPath && opts.listProviderModels) {
        const secrets = service.revealSecrets(rec);
        const key = provider.auth ? secrets[provider.auth.secret] : undefined;
        const headers: Record<string, string> = { ...(provider.defaultHeaders ?? {}), ...(provider.auth && key ? { [provider.auth.header]: provider.auth.prefix + key } : {}) };
        const listed = (await opts.listProviderModels(connectionBaseUrl(provider, s.config)!, provider.modelsPath, headers).catch(() => null)) as { data?: unknown; models?: unknown } | null;
        const items = Array.isArray(listed?.data) ? listed.data : Array.isArray(listed?.models) ? listed.models : null;
        if (items) {
          return items
            .map((m) => (m && typeof m === "object" ? (m as Record<string, unknown>) : {}))
            .map((m) => ({ ...m, id: String(m.id ?? m.name ?? "").replace(/^models\//, "") }))
            .filter((m) => m.id);
        }
      }
      return provider.catalog.map((id) => ({ id, object: "model", owned_by: provider.integration }));
    };
    app.get<{ Params: { name: string } }>("/integrations/connections/:name/models", { schema: { summary: "Models reachable through a connection", tags, params: Named, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return connectionModels(ws, req.params.name);
    });
    app.get<{ Params: { name: string; id: string } }>("/integrations/connections/:name/models/*", { schema: { summary: "One model reachable through a connection", tags, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      const id = decodeURIComponent((req.params as Record<string, string>)["*"] ?? "");
      const found = (await connectionModels(ws, req.params.name)).find((m) => m.id === id);
      if (!found) throw new HangarError("not_found", `model '${id}' not found through connection '${req.params.name}'`);
      return found;
    });
    app.get<{ Params: { name: string } }>("/integrations/connections/:name/endpointConfigurations", { schema: { summary: "The endpoints a connection's provider serves", tags, params: Named, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      const s = (await service.get(ws, "connections", req.params.name)).spec as unknown as ConnectionSpec;
      const provider = PROVIDERS.get(s.integration);
      if (!provider) return [];
      return Object.entries(provider.endpoints).map(([path, e]) => ({ path, method: e.method, ...(e.streamKey ? { streamKey: e.streamKey } : {}), baseUrl: connectionBaseUrl(provider, s.config) }));
    });
    app.get<{ Params: { integration: string } }>("/integrations/:integration", { schema: { summary: "An integration provider: its endpoints and headers", tags, response: { 200: Obj, ...errors } } }, async (req) => {
      await ctx.workspaceOf(req);
      const provider = PROVIDERS.get(req.params.integration);
      const mcp = MCP_INTEGRATIONS.get(req.params.integration);
      if (!provider && mcp) return { name: mcp.integration, additionalInfos: { displayName: mcp.displayName, type: "mcp", secrets: mcp.secretKeys.join(","), tokenUrl: mcp.tokenUrl, apiUrl: mcp.apiUrl } };
      if (!provider) throw new HangarError("not_found", `integration '${req.params.integration}' is not supported (known: ${[...PROVIDERS.keys()].join(", ")})`);
      return {
        name: provider.integration,
        additionalInfos: { displayName: provider.displayName, modelTypes: provider.modelTypes.join(","), ...(provider.baseUrl ? { baseUrl: provider.baseUrl } : {}), secrets: provider.secretKeys.join(",") },
        endpoints: Object.fromEntries(Object.entries(provider.endpoints).map(([path, e]) => [path, { method: e.method, ...(e.streamKey ? { streamKey: e.streamKey } : {}) }])),
        headers: { ...(provider.defaultHeaders ?? {}), ...(provider.auth ? { [provider.auth.header]: `${provider.auth.prefix}<${provider.auth.secret}>` } : {}) },
      };
    });

    // ---- models -----------------------------------------------------------------------------
    const modelView = async (req: FastifyRequest, rec: GatewayResourceRecord, ws: WorkspaceRecord, full: boolean): Promise<Record<string, unknown>> => {
      const spec = rec.spec as unknown as ModelSpec;
      const active = rec.revisions[0];
      const resolved = await service.resolveModel(ws.id, rec.name);
      const status = resolved?.unavailable ? (spec.enabled === false ? "DEACTIVATED" : "FAILED") : "DEPLOYED";
      const events = resolved?.unavailable ? [...rec.events, { type: "deployment", status, message: resolved.unavailable, time: rec.updatedAt }] : rec.events;
      const view: Record<string, unknown> = {
        metadata: metadata(rec, ws, opts.modelUrl(req, ws, rec.name)),
        spec: { ...spec, ...(active ? { revision: { active: active.id } } : {}) },
        status,
      };
      if (full) {
        view.events = events;
        view.metrics = await usageSummary(ws, rec.name);
      }
      return view;
    };
    const usageSummary = async (ws: WorkspaceRecord, name: string) => {
      await opts.accountant.flush();
      const out: Record<string, { requests: number; inputTokens: number; outputTokens: number; totalTokens: number }> = {};
      for (const [label, ms] of [["lastHour", 3_600_000], ["last24h", 86_400_000], ["last30d", 30 * 86_400_000]] as const) {
        const s = await opts.accountant.sums(ws.id, name, ms);
        out[label] = { requests: s.requests, inputTokens: s.input, outputTokens: s.output, totalTokens: s.total };
      }
      return { tokens: out };
    };

    const mtags = ["models"];
    app.get<{ Querystring: ListQueryString }>("/models", { schema: { summary: "List models", tags: mtags, querystring: { type: "object", additionalProperties: true, properties: { limit: { type: "integer", minimum: 1 } } }, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      const page = await service.list(ws, "models", ctx.listQuery(req));
      const data = await Promise.all(page.items.map((r) => modelView(req, r, ws, false)));
      return ctx.paginated(req) ? { data, meta: { hasMore: page.nextCursor !== null, nextCursor: page.nextCursor ?? "", total: page.total } } : data;
    });
    app.post<{ Body: ResourceInput }>("/models", { schema: { summary: "Create a model endpoint", tags: mtags, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return modelView(req, await service.applyModel(ws, req.body, { mustCreate: true }), ws, true);
    });
    app.get<{ Params: { name: string } }>("/models/:name", { schema: { summary: "Get a model, with its token usage (metrics.tokens)", tags: mtags, params: Named, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return modelView(req, await service.get(ws, "models", req.params.name), ws, true);
    });
    app.put<{ Params: { name: string }; Body: ResourceInput }>("/models/:name", { schema: { summary: "Create or update a model endpoint", tags: mtags, params: Named, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return modelView(req, await service.applyModel(ws, req.body, { name: req.params.name }), ws, true);
    });
    app.delete<{ Params: { name: string } }>("/models/:name", { schema: { summary: "Delete a model endpoint", tags: mtags, params: Named, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      const rec = await service.delete(ws, "models", req.params.name);
      return { metadata: metadata(rec, ws, opts.modelUrl(req, ws, rec.name)), spec: rec.spec, status: "DELETING" };
    });
    app.get<{ Params: { name: string } }>("/models/:name/revisions", { schema: { summary: "Revisions of a model (newest first)", tags: mtags, params: Named, response: { 200: { type: "array", items: Obj }, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      const rec = await service.get(ws, "models", req.params.name);
      return rec.revisions.map((r, i) => ({ id: r.id, createdAt: r.createdAt, status: r.status, active: i === 0, previousActive: i === 1, canary: false, trafficPercent: i === 0 ? 100 : 0 }));
    });
    app.get<{ Params: { name: string }; Querystring: { minutes?: number } }>(
      "/models/:name/usage",
      { schema: { summary: "Token usage of a model per minute (default: the last 60 minutes)", tags: mtags, params: Named, querystring: { type: "object", properties: { minutes: { type: "integer", minimum: 1, maximum: 43_200 } } }, response: { 200: Obj, ...errors } } },
      async (req) => {
        const ws = await ctx.workspaceOf(req);
        await service.get(ws, "models", req.params.name);
        await opts.accountant.flush();
        const minutes = req.query.minutes ?? 60;
        const from = new Date(Math.floor((Date.now() - (minutes - 1) * 60_000) / 60_000) * 60_000).toISOString();
        const rows = await opts.accountant.rows(ws.id, req.params.name, from);
        return { model: req.params.name, from, buckets: rows.map((r) => ({ time: r.bucket, requests: r.requests, inputTokens: r.inputTokens, outputTokens: r.outputTokens, totalTokens: r.totalTokens })) };
      },
    );

    // ---- policies ---------------------------------------------------------------------------
    const ptags = ["policies"];
    const policyView = (rec: GatewayResourceRecord, ws: WorkspaceRecord, usage?: Record<string, string[]>) => ({
      metadata: metadata(rec, ws),
      spec: rec.spec,
      ...(usage ? { usage: Object.fromEntries(Object.entries(usage).map(([k, v]) => [k, v.length])) } : {}),
    });
    app.get<{ Querystring: ListQueryString }>("/policies", { schema: { summary: "List policies", tags: ptags, querystring: { type: "object", additionalProperties: true, properties: { limit: { type: "integer", minimum: 1 } } }, response: { 200: {}, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      const page = await service.list(ws, "policies", ctx.listQuery(req));
      const data = await Promise.all(page.items.map(async (r) => policyView(r, ws, await service.policyUsages(ws, r.name))));
      return ctx.paginated(req) ? { data, meta: { hasMore: page.nextCursor !== null, nextCursor: page.nextCursor ?? "", total: page.total } } : data;
    });
    app.post<{ Body: ResourceInput }>("/policies", { schema: { summary: "Create a policy", tags: ptags, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return policyView(await service.applyPolicy(ws, req.body, { mustCreate: true }), ws);
    });
    app.get<{ Params: { name: string } }>("/policies/:name", { schema: { summary: "Get a policy", tags: ptags, params: Named, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return policyView(await service.get(ws, "policies", req.params.name), ws, await service.policyUsages(ws, req.params.name));
    });
    app.put<{ Params: { name: string }; Body: ResourceInput }>("/policies/:name", { schema: { summary: "Create or update a policy", tags: ptags, params: Named, body: Obj, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return policyView(await service.applyPolicy(ws, req.body, { name: req.params.name }), ws);
    });
    app.delete<{ Params: { name: string } }>("/policies/:name", { schema: { summary: "Delete a policy (409 while a model uses it)", tags: ptags, params: Named, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return policyView(await service.delete(ws, "policies", req.params.name), ws);
    });
    app.get<{ Params: { name: string } }>("/policies/:name/usages", { schema: { summary: "Resources whose spec.policies names this policy", tags: ptags, params: Named, response: { 200: Obj, ...errors } } }, async (req) => {
      const ws = await ctx.workspaceOf(req);
      return service.policyUsages(ws, req.params.name);
    });
  };
}
