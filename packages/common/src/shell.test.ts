import { describe, expect, it } from "vitest";
import { shellQuote } from "./shell.js";

describe("shellQuote", () => {
  it("leaves plain words and quotes the rest so /bin/sh reads them back", () => {
    expect(["npx", "expo", "--port=8081", "/a/b.js", "user@host:1"].map(shellQuote)).toEqual(["npx", "expo", "--port=8081", "/a/b.js", "user@host:1"]);
    expect(shellQuote("a b")).toBe("'a b'");
    expect(shellQuote("it's $HOME")).toBe(`'it'\\''s $HOME'`);
    expect(shellQuote("")).toBe("''");
  });
});
