// The Workload API beside the stable invoke URL (`/api/v2`): a workload by its id, with its
// endpoint, and its rolling replacements (DataRobot's Workload API shapes).

import type {} from "@fastify/swagger";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { HangarError } from "@hangar/common";
import type { AuthService } from "@hangar/control-plane";
import type { Store, WorkloadRecord } from "@hangar/store";
import { type ReplacementInput, type ReplacementService, replacementView } from "./replacements.js";

export interface InvokeRoutesOptions {
  store: Store;
  auth: AuthService;
  replacements: ReplacementService;
  /** The base URL requests were addressed to. */
  baseUrl: (req: FastifyRequest) => URL;
}

const Obj = { type: "object", additionalProperties: true } as const;
const errors = { 400: Obj, 401: Obj, 404: Obj, 422: Obj };

export function invokeRoutes(opts: InvokeRoutesOptions) {
  return async (app: FastifyInstance): Promise<void> => {
    const tags = ["workloads"];
    /** The workload, if the caller's key reaches its workspace; 404 alike otherwise. */
    const workload = async (req: FastifyRequest<{ Params: { id: string } }>): Promise<WorkloadRecord> => {
      const principal = await opts.auth.authenticate(req.headers["x-blaxel-authorization"]?.toString() ?? req.headers.authorization);
      const w = await opts.store.workloads.getById(req.params.id);
      if (!w || !principal.workspaceIds.has(w.workspaceId)) throw new HangarError("not_found", `no workload '${req.params.id}'`);
      return w;
    };
    const endpoint = (req: FastifyRequest, w: WorkloadRecord) => new URL(`/api/v2/endpoints/workloads/${w.id}/`, opts.baseUrl(req)).href;

    app.get<{ Params: { id: string } }>("/workloads/:id", { schema: { summary: "A workload by id, with its stable invoke URL", tags, response: { 200: Obj, ...errors } } }, async (req) => {
      const w = await workload(req);
      const ws = await opts.store.workspaces.getById(w.workspaceId);
      return { id: w.id, name: w.name, kind: w.kind, workspace: ws?.name, endpoint: endpoint(req, w), status: w.status, activeRevision: w.activeRevision, createdAt: w.createdAt, updatedAt: w.updatedAt };
    });
    app.post<{ Params: { id: string }; Body: ReplacementInput }>("/workloads/:id/replacement", { schema: { summary: "Start a rolling replacement", tags, body: Obj, response: { 202: Obj, ...errors } } }, async (req, reply) => {
      const w = await workload(req);
      return reply.code(202).send(replacementView(await opts.replacements.create(w, req.body ?? {})));
    });
    app.get<{ Params: { id: string } }>("/workloads/:id/replacement", { schema: { summary: "The latest replacement", tags, response: { 200: Obj, ...errors } } }, async (req) => replacementView(await opts.replacements.current(await workload(req))));
    app.delete<{ Params: { id: string } }>("/workloads/:id/replacement", { schema: { summary: "Cancel the replacement in progress (after the switch: roll back)", tags, response: { 202: Obj, ...errors } } }, async (req, reply) => {
      return reply.code(202).send(replacementView(await opts.replacements.cancel(await workload(req))));
    });
    app.get<{ Params: { id: string } }>("/workloads/:id/history", { schema: { summary: "Replacements, newest first", tags, response: { 200: { type: "array", items: Obj }, ...errors } } }, async (req) => (await opts.replacements.history(await workload(req))).map(replacementView));
  };
}
