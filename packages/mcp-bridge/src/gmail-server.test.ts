import { describe, expect, it } from "vitest";
import { rfc2822 } from "./gmail-server.js";

describe("built-in Gmail MCP server", () => {
  it("builds the base64url RFC 2822 message messages.send takes, UTF-8 subjects encoded, no header injection", () => {
    const text = Buffer.from(rfc2822("a@example.com", "Café ☕", "Bonjour\nà tous"), "base64url").toString("utf8");
    const [head, body] = text.split("\r\n\r\n");
    expect(head).toContain("To: a@example.com\r\n");
    expect(head).toContain(`Subject: =?UTF-8?B?${Buffer.from("Café ☕").toString("base64")}?=\r\n`);
    expect(head).toContain('Content-Type: text/plain; charset="UTF-8"');
    expect(Buffer.from(body!, "base64").toString("utf8")).toBe("Bonjour\nà tous");
    expect(() => rfc2822("a@example.com", "Hi\r\nBcc: evil@example.com", "x")).toThrow(/line breaks/);
  });
});
