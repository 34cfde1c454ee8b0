// /v0 routes of the sandbox hub: `GET /sandbox/hub` (SandboxDefinition[]) and `GET /templates`,
// `GET /templates/{name}` (Template), in the shapes of @blaxel/core 0.3.21; and Hangar's own
// `POST /sandbox/hub/{name}/build`, which builds an image ahead of its first use (progress as NDJSON).

import type {} from "@fastify/swagger";
import type { FastifyInstance } from "fastify";
import { HangarError } from "@hangar/common";
import type { RouteContext } from "@hangar/control-plane";
import { HUB, hubEntry, sandboxDefinition, templateView, type HubEntry } from "./catalog.js";

export interface HubRoutesOptions {
  /** The content hash an entry's image is built from (shown as the template's sha). */
  hashOf: (name: string) => Promise<string>;
  /** Makes an image ready (built, or found in the machine's cache), reporting progress lines. */
  ensure: (image: string, onProgress: (line: string) => void) => Promise<void>;
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
    app.post<{ Params: { name: string } }>("/sandbox/hub/:name/build", { schema: { summary: "Build a hub image ahead of its first use (NDJSON progress)", tags: ["hub"], response: { ...errors } } }, async (req, reply) => {
      await ctx.workspaceOf(req);
      const e = hubEntry(req.params.name);
      if (!e) throw new HangarError("not_found", `sandbox hub image '${req.params.name}' not found (see GET /v0/sandbox/hub)`);
      // one JSON object a line: {progress} while it builds, then {image, ms} or {error}
      reply.hijack();
      const out = reply.raw;
      out.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
      // a client that went away does not stop the build (others may wait for it): lines are dropped
      out.on("error", () => undefined);
      const line = (o: unknown) => out.writableEnded || out.destroyed || out.write(`${JSON.stringify(o)}\n`);
      const t0 = performance.now();
      const image = `blaxel/${e.name}:latest`;
      try {
        await opts.ensure(image, (progress) => line({ progress }));
        line({ image, ms: Math.round(performance.now() - t0) });
      } catch (err) {
        const h = err instanceof HangarError ? err : new HangarError("runtime_failed", err instanceof Error ? err.message : String(err));
        line({ error: { code: h.code, message: h.message } });
      }
      out.end();
    });
    app.get<{ Params: { name: string } }>("/templates/:name", { schema: { summary: "Get a template", tags: ["hub"], response: { 200: Obj, ...errors } } }, async (req) => {
      await ctx.workspaceOf(req);
      const e = hubEntry(req.params.name);
      if (!e) throw new HangarError("not_found", `template '${req.params.name}' not found`);
      return template(e);
    });
  };
}
