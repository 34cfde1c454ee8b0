import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { TOOLS } from "./tools.js";

const REQUIRED = [
  "processExecute", "processGet", "processGetLogs", "processesList", "processStop", "processKill",
  "fsGetWorkingDirectory", "fsListDirectory", "fsReadFile", "fsWriteFile", "fsEditFile", "fsDeleteFileOrDirectory",
  "codegenFileSearch", "codegenGrepSearch", "codegenListDir", "codegenReadFileRange", "codegenCodebaseSearch", "codegenRerank",
  "codegenEditFile", "codegenReapply", "codegenParallelApply",
];

describe("MCP tool definitions", () => {
  it("offers every Blaxel sandbox tool exactly once", () => {
    const names = TOOLS.map((t) => t.name);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual([...REQUIRED].sort());
  });
  it("has compilable object schemas whose properties are all described", () => {
    const ajv = new Ajv({ strict: false });
    for (const t of TOOLS) {
      expect(t.inputSchema.type, t.name).toBe("object");
      ajv.compile(t.inputSchema);
      expect(t.description.length, t.name).toBeGreaterThan(60);
      for (const [k, v] of Object.entries(t.inputSchema.properties)) {
        const d = (v as { description?: string; items?: unknown }).description;
        if (t.name !== "codegenParallelApply" || k !== "editRegions") expect(d, `${t.name}.${k}`).toBeTruthy();
      }
      for (const r of t.inputSchema.required ?? []) expect(t.inputSchema.properties, t.name).toHaveProperty(r);
    }
  });
});
