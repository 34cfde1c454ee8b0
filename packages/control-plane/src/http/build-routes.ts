// /v0 routes of builds from source: `bl push` images and build logs as `bl` polls them. The
// upload itself (`PUT <X-Blaxel-Upload-Url>`) is served outside /v0: its URL is its credential.

import type { FastifyInstance, FastifyRequest } from "fastify";
import { HangarError, describeNameProblem } from "@hangar/common";
import type { WorkspaceRecord } from "@hangar/store";
import type { SourceBuildsPort, TaskLogsPort } from "../builds-port.js";
import * as S from "./schemas.js";

export interface BuildRoutesContext {
  builds: SourceBuildsPort;
  workspaceOf: (req: FastifyRequest) => Promise<WorkspaceRecord>;
  uploadUrl: (req: FastifyRequest, token: string) => string;
  /** Imports an image reference (bl push with image= in blaxel.toml). */
  ensureImage: (ref: string) => Promise<void>;
  /** Job task logs, for `executionId` (and `taskId`) filters. */
  taskLogs?: TaskLogsPort;
}

/** Resource kinds builds are for, as Blaxel's paths and `resourceType` name them. */
export const BUILD_RESOURCE_TYPES = new Set(["agents", "functions", "jobs", "sandboxes"]);
const Obj = { type: "object", additionalProperties: true } as const;

/** Build status as an image reads it. */
function imageStatus(status: string): string {
  return status === "BUILT" ? "BUILT" : status === "FAILED" || status === "CANCELLED" ? "FAILED" : "BUILDING";
}

/** The builds resource name of a pushed image. */
const SINGULAR: Record<string, string> = { agents: "agent", functions: "function", jobs: "job", sandboxes: "sandbox" };
const imageKey = (resourceType: string, name: string) => `${SINGULAR[resourceType]}-${name}`;

function checkName(name: unknown): string {
  const problem = typeof name === "string" ? describeNameProblem(name) : "name is required";
  if (problem) throw new HangarError("invalid_name", `name: ${problem}`);
  return name as string;
}

export async function registerBuildRoutes(app: FastifyInstance, ctx: BuildRoutesContext): Promise<void> {
  const tags = ["builds"];

  app.post<{ Body: { name?: unknown; resourceType?: unknown; image?: unknown }; Querystring: { upload?: boolean } }>(
    "/images",
    { schema: { summary: "Build an image from uploaded source (bl push), or import one", tags, body: Obj, querystring: { type: "object", properties: { upload: { type: "boolean" }, "skip-build": { type: "boolean" }, workspace: { type: "string" } } }, response: { 200: Obj, ...S.errors(400, 401, 403) } } },
    async (req, reply) => {
      const ws = await ctx.workspaceOf(req);
      const name = checkName(req.body?.name);
      const resourceType = typeof req.body?.resourceType === "string" ? req.body.resourceType : "";
      if (!BUILD_RESOURCE_TYPES.has(resourceType)) throw new HangarError("validation_failed", `resourceType: one of ${[...BUILD_RESOURCE_TYPES].join(", ")}`);
      if (req.query.upload) {
        const { token } = await ctx.builds.createUpload(ws, "images", imageKey(resourceType, name));
        reply.header("x-blaxel-upload-url", ctx.uploadUrl(req, token));
        return { message: "upload the source to the URL in X-Blaxel-Upload-Url", name, resourceType, build: true };
      }
      if (typeof req.body?.image !== "string" || !req.body.image) throw new HangarError("validation_failed", "image: required without ?upload=true");
      await ctx.ensureImage(req.body.image);
      return { message: "image imported", name, resourceType, image: req.body.image, build: false };
    },
  );

  app.get<{ Params: { resourceType: string; name: string } }>(
    "/images/:resourceType/:name",
    { schema: { summary: "The state of a pushed image's build", tags, response: { 200: Obj, ...S.errors(401, 403, 404) } } },
    async (req) => {
      const ws = await ctx.workspaceOf(req);
      const { resourceType, name } = req.params;
      const b = await ctx.builds.latest(ws.id, "images", imageKey(resourceType, name));
      if (!b) throw new HangarError("not_found", `no image ${resourceType}/${name}`);
      return {
        metadata: { name, resourceType, workspace: ws.name, createdAt: b.createdAt, updatedAt: b.updatedAt, status: imageStatus(b.status) },
        spec: { image: b.image ?? "" },
        status: imageStatus(b.status),
        ...(b.error ? { error: b.error } : {}),
      };
    },
  );

  // Build logs in the shape `bl` polls: {"<name>": {"logs": [...], "totalCount": N}}.
  app.get<{ Querystring: { resourceType?: string; workloadIds?: string; start?: string; limit?: number; offset?: number; executionId?: string; taskId?: string } }>(
    "/observability/logs",
    { schema: { summary: "Logs of workloads (build logs)", tags: ["observability"], querystring: { type: "object", additionalProperties: true, properties: { limit: { type: "integer" }, offset: { type: "integer" } } }, response: { 200: Obj, ...S.errors(400, 401, 403) } } },
    async (req) => {
      const ws = await ctx.workspaceOf(req);
      const q = req.query;
      const resourceType = q.resourceType ?? "";
      if (!BUILD_RESOURCE_TYPES.has(resourceType)) throw new HangarError("validation_failed", `resourceType: one of ${[...BUILD_RESOURCE_TYPES].join(", ")}`);
      const names = (q.workloadIds ?? "").split(",").map((s) => s.trim()).filter(Boolean);
      if (!names.length) throw new HangarError("validation_failed", "workloadIds: at least one name");
      // bl sends "2006-01-02T15:04:05" in UTC without a zone
      const since = q.start ? new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(q.start) ? q.start : `${q.start}Z`) : undefined;
      if (since && Number.isNaN(since.getTime())) throw new HangarError("validation_failed", "start: not a date");
      const offset = q.offset ?? 0;
      const limit = Math.min(q.limit ?? 1000, 10_000);
      const out: Record<string, { logs: Array<{ timestamp: string; message: string; severity: number; trace_id: string }>; totalCount: number }> = {};
      for (const name of names) {
        // a job execution's tasks (taskId: the task's index, or its name <execution>-<index>)
        const task = q.taskId ? Number(/(\d+)$/.exec(q.taskId)?.[1] ?? Number.NaN) : undefined;
        if (task !== undefined && Number.isNaN(task)) throw new HangarError("validation_failed", "taskId: a task index or name");
        const lines =
          resourceType === "jobs" && q.executionId && ctx.taskLogs
            ? (await ctx.taskLogs(ws.id, name, q.executionId, task)).filter((l) => !since || l.time >= since.toISOString())
            : await ctx.builds.logsOf(ws.id, resourceType, name, since?.toISOString());
        out[name] = {
          logs: lines.slice(offset, offset + limit).map((l) => ({ timestamp: l.time, message: l.message, severity: l.severity, trace_id: "" })),
          totalCount: lines.length,
        };
      }
      return out;
    },
  );
}
