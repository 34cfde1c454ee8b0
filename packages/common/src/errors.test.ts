import { describe, expect, it } from "vitest";
import { ERRORS, HangarError, asHangarError, toProblem } from "./errors.js";
import { parseDuration } from "./duration.js";
import { randomId } from "./ids.js";

describe("error registry", () => {
  it("builds an RFC 9457 problem that also carries the SDK's fields", () => {
    const p = toProblem(new HangarError("sandbox_not_found", "sandbox 'x' does not exist", { sandbox_name: "x" }));
    expect(p).toMatchObject({ type: "urn:hangar:problem:sandbox_not_found", title: "Sandbox not found", status: 404, code: 404, error: "sandbox 'x' does not exist", detail: "sandbox 'x' does not exist", sandbox_name: "x" });
  });

  it("wraps unknown errors as internal without leaking their message", () => {
    const e = asHangarError(new Error("secret db path /var/x"));
    expect(e.code).toBe("internal");
    expect(toProblem(e).detail).not.toContain("/var/x");
  });

  it("maps every code to a 4xx or 5xx status", () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      expect(spec.status, code).toBeGreaterThanOrEqual(400);
      expect(spec.status, code).toBeLessThan(600);
    }
  });
});

describe("durations", () => {
  it("parses each unit", () => {
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("2h")).toBe(7_200_000);
    expect(parseDuration("1d")).toBe(86_400_000);
    expect(parseDuration("1w")).toBe(604_800_000);
  });
  it("rejects garbage with a validation error", () => {
    for (const bad of ["", "10", "1y", "-1h", "h", "0s", "1.5h"]) {
      expect(() => parseDuration(bad), bad).toThrow(HangarError);
    }
  });
});

describe("ids", () => {
  it("draws from [a-z0-9]", () => {
    const id = randomId(64);
    expect(id).toMatch(/^[a-z0-9]{64}$/);
  });
});
