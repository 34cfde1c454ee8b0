// JSON schemas of the control-plane routes (TypeBox). They validate structure and generate
// /openapi.json; meaning (reserved ports, durations, names) is checked by the services.

import { type TSchema, Type } from "@sinclair/typebox";

const Labels = Type.Record(Type.String(), Type.String(), { description: "Key-value labels" });

export const Metadata = Type.Object(
  {
    name: Type.Optional(Type.String({ description: "Lowercase letters, digits and '-', at most 49; generated when absent" })),
    displayName: Type.Optional(Type.String()),
    labels: Type.Optional(Labels),
    externalId: Type.Optional(Type.String({ description: "Caller-owned id: at most 64 of [A-Za-z0-9-]" })),
    url: Type.Optional(Type.String({ readOnly: true })),
    workspace: Type.Optional(Type.String({ readOnly: true })),
    createdAt: Type.Optional(Type.String({ readOnly: true })),
    updatedAt: Type.Optional(Type.String({ readOnly: true })),
  },
  { additionalProperties: true },
);

export const Port = Type.Object({
  name: Type.Optional(Type.String()),
  target: Type.Integer({ minimum: 1, maximum: 65535 }),
  protocol: Type.Optional(Type.String({ description: "HTTP (default), TCP, UDP or TLS" })),
});

export const Env = Type.Object({
  name: Type.String(),
  value: Type.Optional(Type.String()),
  secret: Type.Optional(Type.Boolean({ description: "Write-only: encrypted at rest, never returned" })),
});

export const ExpirationPolicy = Type.Object({
  type: Type.Union([Type.Literal("ttl-idle"), Type.Literal("ttl-max-age"), Type.Literal("date")]),
  value: Type.String({ description: "Duration (30s, 5m, 1h, 2d, 1w) or an ISO-8601 date for type date" }),
  action: Type.Optional(Type.Literal("delete")),
});

export const SandboxRuntime = Type.Object(
  {
    image: Type.Optional(Type.String({ default: "blaxel/base-image:latest" })),
    memory: Type.Optional(Type.Integer({ description: "MB; CPU = memory / 2048 vCPU", default: 4096 })),
    ports: Type.Optional(Type.Union([Type.Array(Port), Type.Null()])),
    envs: Type.Optional(Type.Union([Type.Array(Env), Type.Null()])),
    ttl: Type.Optional(Type.Union([Type.String({ description: "Max age: s, m, h, d or w" }), Type.Null()])),
    expires: Type.Optional(Type.Union([Type.String({ description: "ISO-8601 date" }), Type.Null()])),
    runtimeClass: Type.Optional(Type.String({ description: "Hangar: default (crun) or gvisor (runsc: gVisor's own kernel as a second wall). Left out: the node's HANGAR_RUNTIME_CLASS, written back into the spec. Cannot change after create." })),
  },
  { additionalProperties: true },
);

export const SandboxSpec = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    region: Type.Optional(Type.String()),
    runtime: Type.Optional(SandboxRuntime),
    lifecycle: Type.Optional(
      Type.Union([
        Type.Object({ expirationPolicies: Type.Optional(Type.Array(ExpirationPolicy)), terminatedRetention: Type.Optional(Type.String()) }, { additionalProperties: true }),
        Type.Null(),
      ]),
    ),
    network: Type.Optional(Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()])),
    volumes: Type.Optional(Type.Union([Type.Array(Type.Unknown()), Type.Null()])),
  },
  { additionalProperties: true },
);

export const SandboxBody = Type.Object(
  { metadata: Type.Optional(Metadata), spec: Type.Optional(SandboxSpec) },
  { additionalProperties: true, description: "A sandbox; read-only fields sent back by clients are ignored" },
);

export const Sandbox = Type.Object(
  {
    metadata: Metadata,
    spec: SandboxSpec,
    status: Type.String({ description: "DEPLOYING, DEPLOYED, FAILED, DELETING, TERMINATED" }),
    state: Type.Optional(Type.String({ description: "RUNNING or STANDBY (deployed sandboxes only)" })),
    events: Type.Optional(Type.Array(Type.Object({}, { additionalProperties: true }))),
    expiresIn: Type.Optional(Type.Integer()),
    lastUsedAt: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

export const ListQuery = Type.Object({
  cursor: Type.Optional(Type.String()),
  limit: Type.Optional(Type.Integer({ minimum: 1, default: 50, description: "Clamped to 200" })),
  sort: Type.Optional(Type.Union([Type.Literal("createdAt:desc"), Type.Literal("createdAt:asc"), Type.Literal("name:asc"), Type.Literal("name:desc")])),
  q: Type.Optional(Type.String({ maxLength: 200 })),
  anchor: Type.Optional(Type.Literal("end")),
  status: Type.Optional(Type.String({ description: "Comma-separated statuses" })),
  externalId: Type.Optional(Type.String()),
  label: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: "key=value, repeatable or comma-separated" })),
  showTerminated: Type.Optional(Type.Boolean()),
  workspace: Type.Optional(Type.String()),
});

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.Integer(),
    error: Type.String(),
    message: Type.String(),
  },
  { additionalProperties: true, description: "RFC 9457 problem details" },
);

export const NameParam = Type.Object({ name: Type.String() });

export const WorkspaceBody = Type.Object({ name: Type.String(), displayName: Type.Optional(Type.String()), labels: Type.Optional(Labels) }, { additionalProperties: true });
export const Workspace = Type.Object({}, { additionalProperties: true });

export const ApiKeyBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  expires_in: Type.Optional(Type.String({ description: "e.g. 30d; absent = never" })),
  admin: Type.Optional(Type.Boolean()),
  workspaces: Type.Optional(Type.Array(Type.String(), { description: "Workspace names; default: the selected workspace" })),
});
export const ApiKey = Type.Object({}, { additionalProperties: true });

/** Standard error responses for a route, for the OpenAPI document. */
export function errors(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((s) => [s, Problem]));
}
