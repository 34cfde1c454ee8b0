import { describe, expect, it } from "vitest";
import { chunkFile, codeTokens } from "./code-index.js";

describe("code search tokens and chunks", () => {
  it("splits identifiers the way code is written", () => {
    const t = codeTokens("uploadPartWithRetry(max_parts, HTTPServer2)");
    expect(t).toEqual(expect.arrayContaining(["uploadpartwithretry", "upload", "part", "with", "retry", "max_parts", "max", "parts", "httpserver2", "http", "server"]));
  });
  it("cuts overlapping 40-line windows", () => {
    const content = Array.from({ length: 100 }, (_, i) => `line ${i + 1}`).join("\n");
    const chunks = chunkFile("a.ts", content);
    expect(chunks.map((c) => [c.startLine, c.endLine])).toEqual([
      [1, 40],
      [31, 70],
      [61, 100],
    ]);
  });
});
