import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import { bodyKind, forwardableHeaders, injectHeaders, injectQuery, needsBodyRewrite, redactionNeedles, Redactor, rewriteBody } from "./inject.js";
import { EgressPolicy } from "./policy.js";
import { DOCS_EXAMPLE } from "./testing/fixtures.js";

const policy = EgressPolicy.from(DOCS_EXAMPLE)!;
const stripe = policy.decide("api.stripe.com").rules;
const openai = policy.decide("api.openai.com").rules;

describe("header injection", () => {
  it("adds the rule's headers with secrets resolved, keeping what the sandbox sent", () => {
    const h = forwardableHeaders({ "stripe-version": "mine", accept: "*/*", connection: "keep-alive, x-hop", "x-hop": "1", "proxy-authorization": "p", host: "h", ":path": "/" });
    expect(h).toEqual({ "stripe-version": "mine", accept: "*/*" });
    expect(injectHeaders(h, stripe)).toBe(true);
    expect(h).toEqual({ "stripe-version": "mine", accept: "*/*", authorization: "Bearer sk-live-abc123..." });
  });

  it("resolves placeholders the sandbox sent, from this destination's rules only", () => {
    const h = { "x-key": "{{SECRET:stripe-key}}", authorization: "Bearer {{SECRET:stripe-key}}" };
    injectHeaders(h, openai);
    expect(h).toMatchObject({ "x-key": "{{SECRET:stripe-key}}", authorization: "Bearer {{SECRET:stripe-key}}", "openai-organization": "org-abc123" });
    const h2 = { "x-key": "{{SECRET:stripe-key}}" };
    injectHeaders(h2, stripe);
    expect(h2["x-key"]).toBe("sk-live-abc123...");
  });
});

describe("query injection", () => {
  it("adds the rule's query parameters with secrets resolved, keeping what the sandbox sent", () => {
    const rules = EgressPolicy.from({ proxy: { routing: [{ destinations: ["api.x.com"], query: { api_key: "{{SECRET:k}}" }, secrets: { k: "s3cr3t&=" } }] } })!.decide("api.x.com").rules;
    expect(injectQuery("/pets", rules)).toBe("/pets?api_key=s3cr3t%26%3D");
    expect(injectQuery("/pets?limit=2", rules)).toBe("/pets?limit=2&api_key=s3cr3t%26%3D");
    expect(injectQuery("/pets?api_key=mine", rules)).toBe("/pets?api_key=mine");
    expect(injectQuery("/pets?limit=2", stripe)).toBe("/pets?limit=2");
  });
});

describe("body injection", () => {
  it("merges into JSON objects with the sandbox's fields winning", () => {
    expect(needsBodyRewrite("POST", stripe)).toBe(true);
    expect(needsBodyRewrite("GET", stripe)).toBe(false);
    const r = rewriteBody("json", Buffer.from(JSON.stringify({ amount: 100, nested: { k: "{{SECRET:stripe-key}}" } })), stripe)!;
    expect(JSON.parse(r.body.toString())).toEqual({ amount: 100, nested: { k: "sk-live-abc123..." }, api_key: "sk-live-abc123..." });
    const own = rewriteBody("json", Buffer.from(JSON.stringify({ api_key: "mine" })), stripe)!;
    expect(JSON.parse(own.body.toString())).toEqual({ api_key: "mine" });
  });

  it("adds fields to form bodies and creates a JSON body when there is none", () => {
    const f = rewriteBody("form", Buffer.from("amount=100&currency=usd"), stripe)!;
    expect(new URLSearchParams(f.body.toString()).get("api_key")).toBe("sk-live-abc123...");
    expect(new URLSearchParams(f.body.toString()).get("amount")).toBe("100");
    const e = rewriteBody("empty", Buffer.alloc(0), stripe)!;
    expect(e.contentType).toBe("application/json");
    expect(JSON.parse(e.body.toString())).toEqual({ api_key: "sk-live-abc123..." });
  });

  it("leaves bodies it cannot merge into alone", () => {
    expect(bodyKind({ "content-type": "application/json" }, true)).toBe("json");
    expect(bodyKind({ "content-type": "application/vnd.api+json; charset=utf-8" }, true)).toBe("json");
    expect(bodyKind({ "content-type": "text/plain" }, true)).toBeNull();
    expect(bodyKind({ "content-type": "application/json", "content-encoding": "gzip" }, true)).toBeNull();
    expect(bodyKind({}, false)).toBe("empty");
    expect(rewriteBody("json", Buffer.from("not json"), stripe)).toBeNull();
    expect(rewriteBody(null, Buffer.from("x"), stripe)).toBeNull();
  });
});

describe("redaction", () => {
  it("replaces secrets in a stream, across chunk boundaries, without holding ordinary bytes back", async () => {
    const needles = redactionNeedles(["sk-live-abc123...", "x"]);
    const input = ["Bearer sk-li", "ve-abc", "123... and sk-live-abc123...", " end"];
    const out = await text(Readable.from(input.map((s) => Buffer.from(s))).pipe(new Redactor(needles)));
    expect(out).toBe("Bearer [REDACTED] and [REDACTED] end");
    // bytes that cannot start a secret are passed on at once (event streams stay live)
    const r = new Redactor(needles);
    const got: string[] = [];
    r.on("data", (d: Buffer) => got.push(d.toString()));
    r.write(Buffer.from("data: 1\n\n"));
    await new Promise((res) => setImmediate(res));
    expect(got.join("")).toBe("data: 1\n\n");
  });

  it("also catches JSON-escaped secrets", () => {
    const needles = redactionNeedles(['a"b/c\\d-secret']);
    const json = JSON.stringify({ echo: 'a"b/c\\d-secret' });
    expect(needles.some((n) => json.includes(n.toString()))).toBe(true);
  });
});
