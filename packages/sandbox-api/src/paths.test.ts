import { describe, expect, it } from "vitest";
import { HangarError } from "@hangar/common";
import { normalizeAbsolute, rawPathAfter, resolvePath, resolveRawPathParam } from "./paths.js";

const ctx = { workingDir: "/blaxel", home: "/root" };

describe("resolveRawPathParam (wire spec §5.2)", () => {
  const cases: Array<[string, string]> = [
    ["%2Ftmp%2Fa.txt", "/tmp/a.txt"], // SDK: encodeURIComponent("/tmp/a.txt")
    ["%2F", "/"],
    ["/tmp/b.bin", "/tmp/b.bin"], // writeBinary: /filesystem//tmp/b.bin
    ["//tmp//x", "/tmp/x"],
    ["", "/blaxel"], // /filesystem/ = working directory
    ["src", "/blaxel/src"],
    ["src/app.ts", "/blaxel/src/app.ts"], // raw slashes: relative
    ["src%2Fapp.ts", "/src/app.ts"], // encoded slash: absolute (Go semantics)
    ["~", "/root"],
    ["~%2F.bashrc", "/root/.bashrc"],
    ["~/x/y", "/root/x/y"],
    ["%7E%2Fa", "/root/a"],
    ["..%2F..%2Fetc%2Fpasswd", "/etc/passwd"],
    ["../../../etc", "/etc"],
    ["%2F..%2F..%2F", "/"],
    ["a/../../..", "/"],
    ["caf%C3%A9.txt", "/blaxel/café.txt"],
    ["%2Fdir%2F**", "/dir/**"],
    ["~user", "/blaxel/~user"],
    ["a%20b", "/blaxel/a b"],
  ];
  for (const [raw, want] of cases) {
    it(`${JSON.stringify(raw)} → ${want}`, () => expect(resolveRawPathParam(raw, ctx)).toBe(want));
  }

  it("rejects malformed encodings and NUL bytes with invalid_path", () => {
    for (const bad of ["%E0%A4%A", "%", "a%00b", "%2Ftmp%00%2F..%2Fetc"]) {
      expect(() => resolveRawPathParam(bad, ctx), bad).toThrow(HangarError);
      try {
        resolveRawPathParam(bad, ctx);
      } catch (e) {
        expect((e as HangarError).code).toBe("invalid_path");
      }
    }
  });

  it("never yields a path outside / and always an absolute, normalised one", () => {
    const parts = ["..", ".", "", "a", "~", "%2F", "%2E%2E", "/", "b c", "%2f"];
    for (let i = 0; i < 5000; i++) {
      let raw = "";
      const n = 1 + (i % 7);
      for (let j = 0; j < n; j++) raw += parts[(i * 31 + j * 17) % parts.length] + ((i + j) % 3 === 0 ? "/" : "%2F");
      const out = resolveRawPathParam(raw, ctx);
      expect(out.startsWith("/")).toBe(true);
      expect(out.split("/")).not.toContain("..");
      expect(out === "/" || !out.endsWith("/")).toBe(true);
    }
  });
});

describe("resolvePath (bodies, queries)", () => {
  it("resolves absolute, home and relative paths", () => {
    expect(resolvePath("/a/b/../c", ctx)).toBe("/a/c");
    expect(resolvePath("x/y", ctx)).toBe("/blaxel/x/y");
    expect(resolvePath(".", ctx)).toBe("/blaxel");
    expect(resolvePath("", ctx)).toBe("/blaxel");
    expect(resolvePath("~/p", ctx)).toBe("/root/p");
    expect(resolvePath("../../..", ctx)).toBe("/");
  });
  it("normalises", () => {
    expect(normalizeAbsolute("//a//b/")).toBe("/a/b");
    expect(normalizeAbsolute("/")).toBe("/");
  });
});

describe("rawPathAfter", () => {
  it("keeps the encoding and drops the query", () => {
    expect(rawPathAfter("/filesystem/%2Ftmp%2Fa?x=1", "/filesystem/")).toBe("%2Ftmp%2Fa");
    expect(rawPathAfter("/filesystem//tmp/b", "/filesystem/")).toBe("/tmp/b");
    expect(rawPathAfter("/other", "/filesystem/")).toBeUndefined();
  });
});
