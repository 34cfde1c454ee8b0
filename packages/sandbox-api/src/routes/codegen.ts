// Codegen routes (wire spec §5.6): fast apply through Morph/Relace, local reranking.

import type { FastifyInstance } from "fastify";
import { pathParam, queryInt, queryNumber, svc } from "../http.js";
import { applyEditSchema, rerankQuery } from "../schemas.js";

export async function codegenRoutes(app: FastifyInstance): Promise<void> {
  app.put<{ Body: { codeEdit: string; model?: string } }>("/codegen/fastapply/*", { schema: { body: applyEditSchema } }, async (req) => {
    const path = pathParam(req, "/codegen/fastapply/");
    return svc(req).codegen.fastApply(path, req.body.codeEdit, { model: req.body.model });
  });

  app.get<{ Querystring: { query: string; scoreThreshold?: number; tokenLimit?: number; filePattern?: string } }>(
    "/codegen/reranking/*",
    { schema: { querystring: rerankQuery } },
    async (req) => {
      const root = pathParam(req, "/codegen/reranking/");
      const files = await svc(req).codegen.rerank(root, req.query.query, {
        scoreThreshold: queryNumber(req.query.scoreThreshold, 0.5),
        tokenLimit: queryInt(req.query.tokenLimit, 30_000),
        filePattern: req.query.filePattern || undefined,
      });
      return { success: true, message: `Found ${files.length} relevant files`, files };
    },
  );
}
