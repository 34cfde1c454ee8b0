// Fastify setup shared by the planes that use it: validation, problem bodies, not-found.

import { Ajv, type ErrorObject } from "ajv";
import type { FastifyError, FastifyInstance } from "fastify";
import { HangarError, type Logger, PROBLEM_CONTENT_TYPE, toProblem } from "@hangar/common";

/** Bodies are validated strictly (no coercion); query strings and params are coerced from text. */
export function installValidation(app: FastifyInstance): void {
  const common = { allErrors: false, strict: false, useDefaults: true, removeAdditional: false } as const;
  const bodyAjv = new Ajv({ ...common, coerceTypes: false });
  const textAjv = new Ajv({ ...common, coerceTypes: "array" });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === "body" ? bodyAjv : textAjv).compile(schema));
  // a request with no body is one with no body, whatever Content-Type it names (curl -X DELETE -H …)
  app.addHook("onRequest", async (req) => {
    const len = req.headers["content-length"];
    if (req.headers["content-type"] && (len === "0" || (len === undefined && !req.headers["transfer-encoding"]))) delete req.headers["content-type"];
  });
}

function describeValidation(errors: ErrorObject[], context: string | undefined): string {
  const e = errors[0];
  if (!e) return "request failed validation";
  const where = `${context ?? "body"}${e.instancePath.replace(/\//g, ".")}`;
  if (e.keyword === "const") {
    // one of several constants (anyOf): name them all
    const allowed = errors.filter((x) => x.keyword === "const" && x.instancePath === e.instancePath).map((x) => JSON.stringify((x.params as { allowedValue: unknown }).allowedValue));
    return `${where}: must be ${allowed.length > 1 ? `one of ${allowed.join(", ")}` : allowed[0]}`;
  }
  if (e.keyword === "enum") return `${where}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(", ")}`;
  if (e.keyword === "additionalProperties") return `${where}: unknown field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`;
  if (e.keyword === "required") return `${where}: missing field ${JSON.stringify((e.params as { missingProperty: string }).missingProperty)}`;
  return `${where}: ${e.message ?? "is invalid"}`;
}

/** Maps anything a route throws to a HangarError. */
export function toHangarError(err: FastifyError | HangarError | Error): HangarError {
  if (err instanceof HangarError) return err;
  const fe = err as FastifyError & { validationContext?: string };
  if (fe.validation) return new HangarError("validation_failed", describeValidation(fe.validation as ErrorObject[], fe.validationContext));
  switch (fe.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new HangarError("invalid_json", `request body is not valid JSON: ${fe.message}`);
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new HangarError("payload_too_large", "request body is larger than this server accepts");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new HangarError("unsupported_media_type", `unsupported Content-Type ${JSON.stringify(fe.message)}; send application/json`);
  }
  if (err instanceof SyntaxError) return new HangarError("invalid_json", `request body is not valid JSON: ${err.message}`);
  if (fe.statusCode === 413) return new HangarError("payload_too_large", "request body is larger than this server accepts");
  if (fe.statusCode === 415) return new HangarError("unsupported_media_type", fe.message);
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return new HangarError("bad_request", fe.message);
  return new HangarError("internal", "internal server error", undefined, { cause: err });
}

/** Every error leaves as an RFC 9457 problem; unknown routes are problems too. */
export function installProblemHandling(app: FastifyInstance, log: Logger): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const he = toHangarError(err);
    if (he.status >= 500) log.error({ err: he.cause ?? err, url: req.url, method: req.method }, "request failed");
    void reply.status(he.status).type(PROBLEM_CONTENT_TYPE).send(toProblem(he));
  });
  app.setNotFoundHandler((req, reply) => {
    const he = new HangarError("route_not_found", `no route for ${req.method} ${req.url.split("?")[0]}`);
    void reply.status(404).type(PROBLEM_CONTENT_TYPE).send(toProblem(he));
  });
}
