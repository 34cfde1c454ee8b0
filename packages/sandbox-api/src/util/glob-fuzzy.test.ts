import { describe, expect, it } from "vitest";
import { fuzzyMatch } from "./fuzzy.js";
import { globMatch, splitList } from "./glob.js";

describe("glob (Go filepath.Match)", () => {
  it("matches base names", () => {
    expect(globMatch("*.ts", "a.ts")).toBe(true);
    expect(globMatch("*.ts", "a.tsx")).toBe(false);
    expect(globMatch("file?.go", "file1.go")).toBe(true);
    expect(globMatch("[a-c]*", "beta")).toBe(true);
    expect(globMatch("[^a-c]*", "beta")).toBe(false);
    expect(globMatch("*", "a/b")).toBe(false);
    expect(globMatch("\\*", "*")).toBe(true);
    expect(globMatch("[", "[")).toBe(false); // bad pattern: no match
  });
  it("splits comma lists", () => {
    expect(splitList(" *.go, *.js ,,")).toEqual(["*.go", "*.js"]);
    expect(splitList(undefined)).toEqual([]);
  });
});

describe("fuzzy (fzf scoring)", () => {
  it("matches characters in order, case-insensitively", () => {
    expect(fuzzyMatch("src/user/controller.ts", "usrctl")).not.toBeNull();
    expect(fuzzyMatch("src/user/controller.ts", "xyz")).toBeNull();
    expect(fuzzyMatch("README.md", "readme")).not.toBeNull();
  });
  it("prefers boundaries and consecutive characters", () => {
    const a = fuzzyMatch("src/main.go", "main")!.score;
    const b = fuzzyMatch("src/domain_info.go", "main")!.score;
    expect(a).toBeGreaterThan(b);
    const c = fuzzyMatch("app.ts", "app")!.score;
    const d = fuzzyMatch("a_p_p.ts", "app")!.score;
    expect(c).toBeGreaterThan(d);
  });
  it("gives fzf's score for a simple exact prefix", () => {
    // fzf: 3 matches * 16 + first char bonus (white boundary 10 * 2) + 2 consecutive bonuses (10 each).
    expect(fuzzyMatch("abc", "abc")!.score).toBe(48 + 20 + 20);
  });
});
