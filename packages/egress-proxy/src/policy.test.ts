import { describe, expect, it } from "vitest";
import { compilePattern, EgressPolicy, hasPolicy, patternError, resolveFromRules, resolveSecrets } from "./policy.js";
import { DOCS_EXAMPLE } from "./testing/fixtures.js";


describe("domain patterns", () => {
  it("matches names exactly, wildcards on subdomains only, IPs and CIDRs", () => {
    const w = compilePattern("*.x.com");
    expect(w("a.x.com")).toBe(true);
    expect(w("a.b.x.com")).toBe(true);
    expect(w("x.com")).toBe(false);
    expect(w("evilx.com")).toBe(false);
    expect(compilePattern("X.com.")("x.com")).toBe(true);
    expect(compilePattern("x.com")("a.x.com")).toBe(false);
    expect(compilePattern("*")("anything.org")).toBe(true);
    expect(compilePattern("10.1.0.0/16")("10.1.2.3")).toBe(true);
    expect(compilePattern("10.1.0.0/16")("10.2.0.1")).toBe(false);
    expect(compilePattern("1.2.3.4")("1.2.3.4")).toBe(true);
  });

  it("says what is wrong with a malformed pattern", () => {
    expect(patternError("api.stripe.com")).toBeNull();
    expect(patternError("*.s3.amazonaws.com")).toBeNull();
    expect(patternError("*")).toBeNull();
    expect(patternError("10.0.0.0/8")).toBeNull();
    expect(patternError("https://x.com")).toMatch(/without scheme/);
    expect(patternError("x.com:443")).toMatch(/without scheme, port/);
    expect(patternError("x.com/path")).toMatch(/path/);
    expect(patternError("a.*.com")).toMatch(/leading/);
    expect(patternError("*x.com")).toMatch(/leading/);
    expect(patternError("")).toMatch(/empty/);
    expect(patternError("bad_label-.com")).toMatch(/not a valid domain/);
  });
});

describe("egress policy", () => {
  it("is only there when the network asks for it", () => {
    expect(hasPolicy(undefined)).toBe(false);
    expect(hasPolicy({})).toBe(false);
    expect(hasPolicy({ allowedDomains: [], forbiddenDomains: [], subnet: "default" })).toBe(false);
    expect(hasPolicy({ allowedDomains: ["x.com"] })).toBe(true);
    expect(hasPolicy({ proxy: { routing: [] } })).toBe(true);
    expect(EgressPolicy.from({})).toBeNull();
  });

  it("follows the docs' full example", () => {
    const p = EgressPolicy.from(DOCS_EXAMPLE)!;
    const stripe = p.decide("api.stripe.com");
    expect(stripe).toMatchObject({ allowed: true, intercept: true, bypass: false });
    expect(stripe.rules.map((r) => r.index)).toEqual([0]);
    expect(p.decide("API.OPENAI.COM.").rules.map((r) => r.index)).toEqual([1]);
    expect(p.decide("httpbin.org")).toMatchObject({ allowed: true, intercept: false, rules: [] });
    expect(p.decide("evil.com")).toMatchObject({ allowed: false, deniedBy: "allowedDomains" });
    expect(p.decide("bucket.s3.amazonaws.com")).toMatchObject({ allowed: true, bypass: true, intercept: false });
    expect(p.decide("s3.amazonaws.com").allowed).toBe(false);
    expect(p.secretValues.sort()).toEqual(["sk-live-abc123...", "sk-proj-xyz789..."]);
  });

  it("lets forbiddenDomains win over allowedDomains, in both places Blaxel accepts them", () => {
    const p = EgressPolicy.from({ allowedDomains: ["*.corp.com"], proxy: { forbiddenDomains: ["secret.corp.com"] } })!;
    expect(p.decide("a.corp.com").allowed).toBe(true);
    expect(p.decide("secret.corp.com")).toMatchObject({ allowed: false, deniedBy: "forbiddenDomains" });
    const deny = EgressPolicy.from({ forbiddenDomains: ["*.malware.com", "evil.example.org"] })!;
    expect(deny.decide("x.malware.com").allowed).toBe(false);
    expect(deny.decide("malware.com").allowed).toBe(true);
    expect(deny.decide("anything.else").allowed).toBe(true);
  });

  it("counts bypass entries as allowed but never intercepts them", () => {
    const p = EgressPolicy.from({ allowedDomains: ["a.com"], forbiddenDomains: ["bad.b.com"], proxy: { bypass: ["*.b.com"], routing: [{ destinations: ["*"], headers: { X: "y" } }] } })!;
    expect(p.decide("x.b.com")).toMatchObject({ allowed: true, bypass: true, intercept: false, rules: [] });
    expect(p.decide("bad.b.com").allowed).toBe(false);
    expect(p.decide("a.com")).toMatchObject({ allowed: true, intercept: true });
  });

  it("applies every matching rule in order, a catch-all included", () => {
    const p = EgressPolicy.from({ proxy: { routing: [{ destinations: ["api.x.com"], headers: { A: "1" } }, { destinations: ["*"], headers: { B: "2" } }] } })!;
    expect(p.decide("api.x.com").rules.map((r) => r.index)).toEqual([0, 1]);
    expect(p.decide("other.com").rules.map((r) => r.index)).toEqual([1]);
  });
});

describe("secret placeholders", () => {
  it("resolves several per value from the rule's own secrets and leaves unknown ones", () => {
    const s = new Map([
      ["part-a", "ALPHA"],
      ["part-b", "BETA"],
    ]);
    expect(resolveSecrets("{{SECRET:part-a}}-{{SECRET:part-b}}", s)).toBe("ALPHA-BETA");
    expect(resolveSecrets("no-secret-here", s)).toBe("no-secret-here");
    expect(resolveSecrets("{{SECRET:other}}", s)).toBe("{{SECRET:other}}");
  });

  it("resolves what the sandbox sent only from the rules that match its destination", () => {
    const p = EgressPolicy.from(DOCS_EXAMPLE)!;
    const stripe = p.decide("api.stripe.com").rules;
    expect(resolveFromRules("k={{SECRET:stripe-key}}", stripe)).toBe("k=sk-live-abc123...");
    expect(resolveFromRules("k={{SECRET:openai-key}}", stripe)).toBe("k={{SECRET:openai-key}}");
    expect(resolveFromRules("k={{SECRET:stripe-key}}", p.decide("httpbin.org").rules)).toBe("k={{SECRET:stripe-key}}");
  });
});
