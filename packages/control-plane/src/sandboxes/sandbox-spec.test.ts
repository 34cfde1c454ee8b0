import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HangarError } from "@hangar/common";
import { SecretBox } from "@hangar/store";
import { describe, expect, it } from "vitest";
import { computeExpiry, normalizeSpec } from "./sandbox-spec.js";
import { ENV_MASK, envsDiffer, redactSpec, revealEnvs, revealSpec, sealSpec } from "./secrets.js";

const bad = (spec: unknown) => {
  try {
    normalizeSpec(spec);
  } catch (e) {
    expect(e).toBeInstanceOf(HangarError);
    return (e as HangarError).message;
  }
  throw new Error("expected a validation error");
};

describe("sandbox spec", () => {
  it("fills Blaxel's defaults", () => {
    expect(normalizeSpec(undefined)).toEqual({ enabled: true, runtime: { image: "blaxel/base-image:latest", memory: 4096 } });
  });

  it("normalises ports and refuses reserved, duplicate and unknown-protocol ports", () => {
    expect(normalizeSpec({ runtime: { ports: [{ target: 3000 }, { target: 5000, protocol: "tcp", name: "db" }] } }).runtime.ports).toEqual([
      { target: 3000, protocol: "HTTP" },
      { target: 5000, protocol: "TCP", name: "db" },
    ]);
    for (const p of [80, 443]) expect(bad({ runtime: { ports: [{ target: p }] } })).toMatch(/reserved/);
    // 8080 is the user's when declared (the in-sandbox API relay steps aside)
    expect(normalizeSpec({ runtime: { ports: [{ target: 8080 }] } }).runtime.ports).toEqual([expect.objectContaining({ target: 8080 })]);
    expect(bad({ runtime: { ports: [{ target: 3000 }, { target: 3000 }] } })).toMatch(/twice/);
    expect(bad({ runtime: { ports: [{ target: 3000, protocol: "FTP" }] } })).toMatch(/HTTP, TCP, UDP, TLS/);
    expect(bad({ runtime: { ports: [{ target: 70000 }] } })).toMatch(/between 1 and 65535/);
  });

  it("bounds memory and checks durations and dates", () => {
    expect(bad({ runtime: { memory: 64 } })).toMatch(/memory/);
    expect(bad({ runtime: { memory: 1.5e9 } })).toMatch(/memory/);
    expect(bad({ runtime: { ttl: "forever" } })).toMatch(/ttl/);
    expect(bad({ runtime: { expires: "tomorrow" } })).toMatch(/expires/);
    expect(bad({ lifecycle: { expirationPolicies: [{ type: "ttl-idle", value: "1x", action: "delete" }] } })).toMatch(/value/);
    expect(bad({ lifecycle: { expirationPolicies: [{ type: "sometime", value: "1h" }] } })).toMatch(/ttl-idle/);
    expect(bad({ runtime: { envs: [{ name: "1BAD", value: "x" }] } })).toMatch(/variable name/);
  });

  it("expires at the first policy met", () => {
    const spec = normalizeSpec({
      runtime: { ttl: "2h" },
      lifecycle: { expirationPolicies: [{ type: "ttl-idle", value: "30m", action: "delete" }, { type: "date", value: "2030-01-01T00:00:00Z", action: "delete" }] },
    });
    const created = "2026-01-01T00:00:00.000Z";
    expect(computeExpiry(spec, created, "2026-01-01T01:00:00.000Z")?.toISOString()).toBe("2026-01-01T01:30:00.000Z");
    expect(computeExpiry(spec, created, "2026-01-01T01:45:00.000Z")?.toISOString()).toBe("2026-01-01T02:00:00.000Z");
    expect(computeExpiry(normalizeSpec({}), created, created)).toBeNull();
  });
});

describe("secrets in a spec", () => {
  it("seals secret envs and proxy secrets, redacts them and keeps them across read-modify-write", () => {
    const dir = mkdtempSync(join(tmpdir(), "hangar-secrets-"));
    try {
      const box = SecretBox.open(dir);
      const spec = normalizeSpec({
        runtime: { envs: [{ name: "TOKEN", value: "tok-123", secret: true }, { name: "PLAIN", value: "p" }] },
        network: { proxy: { routing: [{ destinations: ["api.x.com"], secrets: { KEY: "sk-999" } }] } },
      });
      const sealed = sealSpec(box, spec);
      expect(JSON.stringify(sealed)).not.toContain("tok-123");
      expect(JSON.stringify(sealed)).not.toContain("sk-999");
      const shown = redactSpec(sealed);
      expect(JSON.stringify(shown)).not.toMatch(/tok-123|sk-999|enc:v1/);
      // every env value is masked, names and flags kept
      expect(shown.runtime.envs).toEqual([
        { name: "TOKEN", value: ENV_MASK, secret: true },
        { name: "PLAIN", value: ENV_MASK },
      ]);
      // an admin's show_secrets: the environment in plain text, routing secrets still removed
      const admin = redactSpec(sealed, revealEnvs(box, sealed));
      expect(admin.runtime.envs).toEqual([
        { name: "TOKEN", value: "tok-123", secret: true },
        { name: "PLAIN", value: "p" },
      ]);
      expect(JSON.stringify(admin.network)).not.toContain("sk-999");
      // A client PUTs back what it read: masked values and empty secrets keep their stored values.
      const resealed = sealSpec(box, normalizeSpec(shown), sealed);
      const revealed = revealSpec(box, resealed);
      expect(revealed.runtime.envs).toEqual([
        { name: "TOKEN", value: "tok-123", secret: true },
        { name: "PLAIN", value: "p" },
      ]);
      expect(JSON.stringify(revealed.network)).toContain("sk-999");
      expect(envsDiffer(box, resealed, sealed)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("changes only the env values sent in the clear; the mask keeps a value even when the secret flag flips", () => {
    const dir = mkdtempSync(join(tmpdir(), "hangar-secrets-"));
    try {
      const box = SecretBox.open(dir);
      const stored = sealSpec(box, normalizeSpec({ runtime: { envs: [{ name: "A", value: "a" }, { name: "B", value: "b", secret: true }, { name: "C", value: "c" }] } }));
      const put = normalizeSpec({
        runtime: {
          envs: [
            { name: "A", value: ENV_MASK, secret: true }, // now secret, value kept
            { name: "B", value: ENV_MASK }, // no longer secret, value kept
            { name: "C", value: "c2" }, // changed
            { name: "D", value: ENV_MASK }, // new: the mask is its value
          ],
        },
      });
      const next = sealSpec(box, put, stored);
      expect(next.runtime.envs?.[0]?.value).toMatch(/^enc:v1:/);
      expect(next.runtime.envs?.[1]?.value).toBe("b");
      expect(revealEnvs(box, next).map((e) => [e.name, e.value])).toEqual([
        ["A", "a"],
        ["B", "b"],
        ["C", "c2"],
        ["D", ENV_MASK],
      ]);
      expect(envsDiffer(box, next, stored)).toBe(true);
      // order and sealing do not count as a change, values do
      const reordered = sealSpec(box, normalizeSpec({ runtime: { envs: [{ name: "C", value: "c" }, { name: "B", value: "b", secret: true }, { name: "A", value: "a" }] } }));
      expect(envsDiffer(box, reordered, stored)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("network spec", () => {
  const docs = {
    allowedDomains: ["api.stripe.com", "api.openai.com", "httpbin.org", "*.s3.amazonaws.com"],
    proxy: {
      routing: [
        {
          destinations: ["api.stripe.com"],
          headers: { Authorization: "Bearer {{SECRET:stripe-key}}", "Stripe-Version": "2024-12-18.acacia" },
          body: { api_key: "{{SECRET:stripe-key}}" },
          secrets: { "stripe-key": "sk-live-abc123..." },
        },
      ],
      bypass: ["*.s3.amazonaws.com"],
    },
  };

  it("accepts the docs' example and keeps what it does not interpret", () => {
    const net = { ...docs, subnet: "default", firewall: { rulesets: ["proxy"] } };
    expect(normalizeSpec({ network: net }).network).toEqual(net);
    expect(normalizeSpec({ network: { allowedDomains: [], proxy: { routing: [] } } }).network).toEqual({ allowedDomains: [], proxy: { routing: [] } });
  });

  it("refuses bad shapes with the field and the reason", () => {
    expect(bad({ network: "open" })).toMatch(/spec.network: must be an object/);
    expect(bad({ network: { allowedDomains: "x.com" } })).toMatch(/allowedDomains: must be an array/);
    expect(bad({ network: { allowedDomains: ["https://x.com"] } })).toMatch(/allowedDomains\[0\]: "https:\/\/x.com" must be a domain name/);
    expect(bad({ network: { forbiddenDomains: ["a.*.com"] } })).toMatch(/forbiddenDomains\[0\].*leading/);
    expect(bad({ network: { proxy: { bypass: [3] } } })).toMatch(/bypass\[0\]: 3 must be a string/);
    expect(bad({ network: { proxy: { routing: {} } } })).toMatch(/routing: must be an array/);
    expect(bad({ network: { proxy: { routing: [{ headers: { A: "b" } }] } } })).toMatch(/routing\[0\].destinations: must list at least one domain/);
    expect(bad({ network: { proxy: { routing: [{ destinations: ["x.com"], headers: { "Bad Header": "b" } }] } } })).toMatch(/not a valid header name/);
    expect(bad({ network: { proxy: { routing: [{ destinations: ["x.com"], headers: { Host: "y.com" } }] } } })).toMatch(/headers.Host: cannot be injected/);
    expect(bad({ network: { proxy: { routing: [{ destinations: ["x.com"], headers: { A: "a\r\nB: b" } }] } } })).toMatch(/without line breaks/);
    expect(bad({ network: { proxy: { routing: [{ destinations: ["x.com"], secrets: { k: 1 } }] } } })).toMatch(/secrets.k: must be a string/);
    expect(bad({ network: { proxy: { routing: [{ destinations: ["x.com"], body: ["a"] }] } } })).toMatch(/body: must be an object/);
    expect(bad({ network: { proxy: { routing: [{ destinations: ["x.com"], query: "k=v" }] } } })).toMatch(/query: must be an object/);
    expect(bad({ network: { proxy: { routing: [{ destinations: ["x.com"], query: { k: "{{SECRET:missing}}" } }] } } })).toMatch(/query.k/);
    expect(normalizeSpec({ network: { proxy: { routing: [{ destinations: ["x.com"], query: { api_key: "{{SECRET:k}}" }, secrets: { k: "v" } }] } } }).network).toBeTruthy();
    expect(bad({ network: { proxy: { routing: [{ destinations: ["x.com"], secrets: { k: "a\0b" } }] } } })).toMatch(/secrets.k: must not contain NUL/);
    expect(bad({ network: { proxy: { routing: [{ destinations: ["x.com"], headers: { A: "Bearer {{SECRET:k}}" }, secrets: { k: "a\nX-Evil: 1" } }] } } })).toMatch(/secrets.k: is injected into header A/);
    // a multi-line secret is fine in a JSON body
    expect(() => normalizeSpec({ network: { proxy: { routing: [{ destinations: ["x.com"], body: { k: "{{SECRET:k}}" }, secrets: { k: "line1\nline2" } }] } } })).not.toThrow();
  });

  it("refuses a placeholder its rule has no secret for", () => {
    const other = { destinations: ["api.openai.com"], headers: { Authorization: "Bearer {{SECRET:stripe-key}}" }, secrets: { "openai-key": "x" } };
    expect(bad({ network: { proxy: { routing: [docs.proxy.routing[0], other] } } })).toMatch(
      /routing\[1\].headers.Authorization: uses \{\{SECRET:stripe-key\}\}, which this rule's secrets do not define/,
    );
    expect(bad({ network: { proxy: { routing: [{ destinations: ["x.com"], body: { nested: { k: "{{SECRET:nope}}" } } }] } } })).toMatch(/body.nested.k: uses/);
  });
});
