// Write-only secrets inside a sandbox spec: env values marked secret and proxy routing secrets.
// Sealed (encrypted) before storage, revealed only for the runtime, redacted from every response.

import type { SecretBox } from "@hangar/store";
import type { SandboxSpecDoc } from "./sandbox-spec.js";

type Routing = { secrets?: Record<string, string> } & Record<string, unknown>;

function routingOf(spec: SandboxSpecDoc): Routing[] {
  const proxy = spec.network?.proxy as { routing?: unknown } | undefined;
  return Array.isArray(proxy?.routing) ? (proxy.routing as Routing[]).filter((r) => typeof r === "object" && r !== null) : [];
}

function mapSecrets(spec: SandboxSpecDoc, fn: (value: string) => string): SandboxSpecDoc {
  const out = structuredClone(spec);
  for (const e of out.runtime.envs ?? []) if (e.secret) e.value = fn(e.value);
  for (const r of routingOf(out)) {
    if (r.secrets && typeof r.secrets === "object") {
      for (const k of Object.keys(r.secrets)) r.secrets[k] = fn(String(r.secrets[k]));
    }
  }
  return out;
}

/**
 * Seals secrets for storage. A secret left empty in an update keeps its previous value, because
 * clients read-modify-write sandboxes and responses never carry secret values.
 */
export function sealSpec(box: SecretBox, spec: SandboxSpecDoc, previous?: SandboxSpecDoc): SandboxSpecDoc {
  const out = mapSecrets(spec, (v) => (v === "" ? v : box.seal(v)));
  if (previous) {
    const prevEnv = new Map((previous.runtime.envs ?? []).filter((e) => e.secret).map((e) => [e.name, e.value]));
    for (const e of out.runtime.envs ?? []) if (e.secret && e.value === "" && prevEnv.has(e.name)) e.value = prevEnv.get(e.name)!;
    const prevRouting = routingOf(previous);
    routingOf(out).forEach((r, i) => {
      for (const [k, v] of Object.entries(r.secrets ?? {})) if (v === "" && prevRouting[i]?.secrets?.[k]) r.secrets![k] = prevRouting[i]!.secrets![k]!;
    });
  }
  return out;
}

export function revealSpec(box: SecretBox, spec: SandboxSpecDoc): SandboxSpecDoc {
  return mapSecrets(spec, (v) => box.open(v));
}

/** The spec as responses show it: secret values removed. */
export function redactSpec(spec: SandboxSpecDoc): SandboxSpecDoc {
  return mapSecrets(spec, () => "");
}
