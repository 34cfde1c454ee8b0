import { describe, expect, it } from "vitest";
import type { PreviewRecord } from "@hangar/store";
import { EdgeUrls } from "./urls.js";

const preview = (over: Partial<PreviewRecord>): PreviewRecord => ({
  id: "pv_1",
  workspaceId: "ws1",
  sandboxId: "sb1",
  name: "web",
  label: "abc123",
  port: 3000,
  public: true,
  prefixUrl: null,
  customDomain: null,
  requestHeaders: {},
  responseHeaders: {},
  expiresAt: null,
  createdAt: "",
  updatedAt: "",
  hostPort: null,
  ...over,
});

describe("preview URLs", () => {
  const base = new URL("http://hangar.lan:8585/v0");

  it("port mode: the preview's host port on the server's host; sessions and previews without a port on a path", () => {
    const urls = new EdgeUrls({});
    expect(urls.previewUrl(base, preview({ hostPort: 20_001 }))).toBe("http://hangar.lan:20001");
    expect(urls.previewUrl(new URL("http://[::1]:8585"), preview({ hostPort: 20_001 }))).toBe("http://[::1]:20001");
    expect(urls.previewUrl(base, preview({ port: 443 }))).toBe("http://hangar.lan:8585/preview/abc123");
    expect(urls.previewUrl(base, preview({ hostPort: 20_001, customDomain: "app.example.com" }))).toBe("http://app.example.com:8585");
  });

  it("host-name mode: a host under the domain; sessions on a path under *.localhost", () => {
    const urls = new EdgeUrls({ previewDomain: "preview.localhost" });
    expect(urls.previewUrl(base, preview({ hostPort: 20_001 }))).toBe("http://abc123.preview.localhost:8585");
    expect(urls.previewUrl(base, preview({ port: 443 }))).toBe("http://hangar.lan:8585/preview/abc123");
    expect(new EdgeUrls({ previewDomain: "preview.example.com" }).previewUrl(base, preview({ port: 443 }))).toBe("http://abc123.preview.example.com:8585");
  });
});
