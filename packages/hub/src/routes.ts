// /v0 routes of the sandbox hub: `GET /sandbox/hub` (SandboxDefinition[]) and `GET /templates`,
// `GET /templates/{name}` (Template), in the shapes of @blaxel/core 0.3.21.

import type {} from "@fastify/swagger";
import type { FastifyInstance } from "fastify";
import { HangarError } from "@hangar/common";
import type { RouteContext } from "@hangar/control-plane";
import { HUB, hubEntry, sandboxDefinition, templateView, type HubEntry } from "./catalog.js";

export interface HubRoutesOptions {
  /** The content hash an entry's image is built from (shown as the template's sha). */
  hashOf: (name: string) => Promise<string>;
}

const Obj = { type: "object", additionalProperties: true } as const;
const errors = { 401: Obj, 403: Obj, 404: Obj };

export function hubRoutes(opts: HubRoutesOptions) {
  return async (app: FastifyInstance, ctx: RouteContext): Promise<void> => {
    const template = async (e: HubEntry) => templateView(e, e.dockerfile ? await opts.hashOf(e.name) : "");
    app.get("/sandbox/hub", { schema: { summary: "List the sandbox hub's images", tags: ["hub"], response: { 200: {}, ...errors } } }, async (req) => {
      await ctx.workspaceOf(req);
      return HUB.map(sandboxDefinition);
    });
    app.get("/templates", { schema: { summary: "List templates (the sandbox hub's images)", tags: ["hub"], response: { 200: {}, ...errors } } }, async (req) => {
      await ctx.workspaceOf(req);
      return Promise.all(HUB.map(template));
    });
    app.get<{ Params: { name: string } }>("/templates/:name", { schema: { summary: "Get a template", tags: ["hub"], response: { 200: Obj, ...errors } } }, async (req) => {
      await ctx.workspaceOf(req);
      const e = hubEntry(req.params.name);
      if (!e) throw new HangarError("not_found", `template '${req.params.name}' not found`);
      return template(e);
    });
  };
}
