// A person opens a sandbox's preview URL in a real browser (Debian's Chromium, headless) and sees
// the page the sandbox serves, scripts and all (one loaded by an absolute path).

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
  it("renders the sandbox's page at its preview URL, and private ones with their tokens", async () => {
    const { SandboxInstance } = await import("@blaxel/core");
    const sandbox = await SandboxInstance.create({ name: "browsed", memory: 512, ports: [{ target: 3000 }, { target: 4000 }] });
    await startWebApp(sandbox, 3000);
    await startWebApp(sandbox, 4000);
    const pub = await sandbox.previews.create({ metadata: { name: "public" }, spec: { port: 3000, public: true } });
    const page = await browser.newPage();
    await page.goto(`${pub.spec.url}/`);
    expect(await page.title()).toBe("sandbox app");
    const h1 = page.locator("#msg");
    expect(await h1.textContent()).toBe("Hello from the sandbox on port 3000");
    expect(await h1.getAttribute("data-js")).toBe("ran");
    // its script at /static/app.js: the app is at the root of the preview's origin
    await page.waitForFunction(() => document.getElementById("msg")?.dataset.abs === "ran");

    const priv = await sandbox.previews.create({ metadata: { name: "private" }, spec: { port: 3000, public: false } });
    const denied = await page.goto(`${priv.spec.url}/`);
    expect(denied?.status()).toBe(401);
    const token = await priv.tokens.create(new Date(Date.now() + 600_000));
    await page.goto(`${priv.spec.url}/?bl_preview_token=${encodeURIComponent(token.value)}`);
    expect(await page.locator("#msg").textContent()).toBe("Hello from the sandbox on port 3000");
    await page.waitForFunction(() => document.getElementById("msg")?.dataset.abs === "ran");

    // a second private preview opened in the same browser leaves the first one's cookie alone
    const other = await sandbox.previews.create({ metadata: { name: "private-2" }, spec: { port: 4000, public: false } });
    const otherToken = await other.tokens.create(new Date(Date.now() + 600_000));
    await page.goto(`${other.spec.url}/?bl_preview_token=${encodeURIComponent(otherToken.value)}`);
    expect(await page.locator("#msg").textContent()).toBe("Hello from the sandbox on port 4000");
    await page.waitForFunction(() => document.getElementById("msg")?.dataset.abs === "ran");
    const again = await page.goto(`${priv.spec.url}/count`);
    expect(again?.status()).toBe(200);
    await page.close();
  });
});
