// Secrets inside a sandbox spec. Env values marked secret and proxy routing secrets are sealed
// (encrypted) before storage and revealed only for the runtime. In responses every env value is
// masked (names kept) unless an admin asks for show_secrets; routing secrets are never returned.

import type { SecretBox } from "@hangar/store";
import type { EnvSpec, SandboxSpecDoc } from "./sandbox-spec.js";

/** What responses show instead of an env value (Blaxel masks values with "***"). */
export const ENV_MASK = "***";

type Routing = { secrets?: Record<string, string> } & Record<string, unknown>;

function routingOf(spec: SandboxSpecDoc): Routing[] {
  const proxy = spec.network?.proxy as { routing?: unknown } | undefined;
  return Array.isArray(proxy?.routing) ? (proxy.routing as Routing[]).filter((r) => typeof r === "object" && r !== null) : [];
}

function mapRoutingSecrets(spec: SandboxSpecDoc, fn: (value: string) => string): void {
  for (const r of routingOf(spec)) {
    if (r.secrets && typeof r.secrets === "object") {
      for (const k of Object.keys(r.secrets)) r.secrets[k] = fn(String(r.secrets[k]));
    }
  }
}

/**
 * Seals secrets for storage. Clients read-modify-write sandboxes and responses carry masked env
 * values, so with `previous` an env sent back as the mask (or a secret one sent empty) keeps its
 * stored value, and so does an empty routing secret.
 */
export function sealSpec(box: SecretBox, spec: SandboxSpecDoc, previous?: SandboxSpecDoc): SandboxSpecDoc {
  const out = structuredClone(spec);
  const prevEnv = new Map((previous?.runtime.envs ?? []).map((e) => [e.name, e]));
  for (const e of out.runtime.envs ?? []) {
    const prev = prevEnv.get(e.name);
    if (prev && (e.value === ENV_MASK || (e.secret && e.value === ""))) {
      if (!!prev.secret === !!e.secret) e.value = prev.value;
      else {
        const plain = prev.secret ? box.open(prev.value) : prev.value;
        e.value = e.secret ? box.seal(plain) : plain;
      }
    } else if (e.secret && e.value !== "") e.value = box.seal(e.value);
  }
  mapRoutingSecrets(out, (v) => (v === "" ? v : box.seal(v)));
  if (previous) {
    const prevRouting = routingOf(previous);
    routingOf(out).forEach((r, i) => {
      for (const [k, v] of Object.entries(r.secrets ?? {})) if (v === "" && prevRouting[i]?.secrets?.[k]) r.secrets![k] = prevRouting[i]!.secrets![k]!;
    });
  }
  return out;
}

/** The stored spec with every secret in plain text: for the runtime only. */
export function revealSpec(box: SecretBox, spec: SandboxSpecDoc): SandboxSpecDoc {
  const out = structuredClone(spec);
  for (const e of out.runtime.envs ?? []) if (e.secret && e.value !== "") e.value = box.open(e.value);
  mapRoutingSecrets(out, (v) => (v === "" ? v : box.open(v)));
  return out;
}

/** The environment of a stored spec in plain text (secret values opened). */
export function revealEnvs(box: SecretBox, spec: SandboxSpecDoc): EnvSpec[] {
  return (spec.runtime.envs ?? []).map((e) => ({ ...e, value: e.secret && e.value !== "" ? box.open(e.value) : e.value }));
}

/** Whether two stored specs give a sandbox different environments (names and plain values). */
export function envsDiffer(box: SecretBox, a: SandboxSpecDoc, b: SandboxSpecDoc): boolean {
  const flat = (s: SandboxSpecDoc) =>
    JSON.stringify(
      revealEnvs(box, s)
        .map((e) => [e.name, e.value])
        .sort(([x], [y]) => (x! < y! ? -1 : x! > y! ? 1 : 0)),
    );
  return flat(a) !== flat(b);
}

/**
 * The spec as responses show it: env values masked, routing secrets removed. `envs`, when given,
 * replaces the masked environment (an admin's show_secrets).
 */
export function redactSpec(spec: SandboxSpecDoc, envs?: EnvSpec[]): SandboxSpecDoc {
  const out = structuredClone(spec);
  if (out.runtime.envs) out.runtime.envs = envs ? structuredClone(envs) : out.runtime.envs.map((e) => ({ ...e, value: ENV_MASK }));
  mapRoutingSecrets(out, () => "");
  return out;
}
