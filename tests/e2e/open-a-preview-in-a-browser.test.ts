// A person opens a sandbox's preview URL in a real browser (Debian's Chromium, headless) and sees
// the page the sandbox serves, scripts and all.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebApp } from "./fixtures.js";
import { type RunningHangar, startHangar, useSdkAgainst } from "./harness.js";

let h: RunningHangar;
let browser: BrowserContext;
let profile: string;

beforeAll(async () => {
  h = await startHangar();
  useSdkAgainst(h);
  profile = mkdtempSync(join(tmpdir(), "hangar-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

afterAll(async () => {
  await browser?.close();
  await h?.dispose();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

describe("a preview in a browser", () => {
  it("renders the sandbox's page at <label>.preview.localhost, and a private one with a token", async () => {
    const { SandboxInstance } = await import("@blaxel/core");
    const sandbox = await SandboxInstance.create({ name: "browsed", memory: 512, ports: [{ target: 3000 }] });
    await startWebApp(sandbox, 3000);
    const pub = await sandbox.previews.create({ metadata: { name: "public" }, spec: { port: 3000, public: true } });
    const page = await browser.newPage();
    await page.goto(`${pub.spec.url}/`);
    expect(await page.title()).toBe("sandbox app");
    const h1 = page.locator("#msg");
    expect(await h1.textContent()).toBe("Hello from the sandbox on port 3000");
    expect(await h1.getAttribute("data-js")).toBe("ran");

    const priv = await sandbox.previews.create({ metadata: { name: "private" }, spec: { port: 3000, public: false } });
    const denied = await page.goto(`${priv.spec.url}/`);
    expect(denied?.status()).toBe(401);
    const token = await priv.tokens.create(new Date(Date.now() + 600_000));
    await page.goto(`${priv.spec.url}/?bl_preview_token=${encodeURIComponent(token.value)}`);
    expect(await page.locator("#msg").textContent()).toBe("Hello from the sandbox on port 3000");
    await page.close();
  });
});
