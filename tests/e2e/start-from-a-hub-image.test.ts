// A user starts sandboxes from the sandbox hub's images (`blaxel/node`, `blaxel/py-app`, …) with the
// unmodified SDK, as on Blaxel. Hangar builds each image from its own Dockerfile the first time a
// machine needs it (30 s to a few minutes, once) and serves it from the machine-wide image cache afterwards; the
// hub is listed by `GET /v0/sandbox/hub` and `GET /v0/templates`, and an unknown `blaxel/<x>` is a 400.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, type RunningHangar, startHangar, useSdkAgainst } from "./harness.js";

let h: RunningHangar;
let sdk: typeof import("@blaxel/core");
const BUILD_MS = 15 * 60_000;

beforeAll(async () => {
  h = await startHangar();
  useSdkAgainst(h);
  sdk = await import("@blaxel/core");
});

afterAll(async () => {
  await h?.dispose();
});

/** Seconds each create took (the first one on a machine includes the image's build). */
const timings: Record<string, number> = {};
async function create(name: string, image: string, extra: Record<string, unknown> = {}) {
  const t0 = performance.now();
  const sb = await sdk.SandboxInstance.create({ name, image, memory: 1024, ...extra });
  timings[name] = Math.round(performance.now() - t0) / 1000;
  return sb;
}

describe("the sandbox hub", () => {
  it("lists its images and templates in the SDK's shapes", async () => {
    const { data: hub } = await sdk.listSandboxHubDefinitions({ throwOnError: true });
    const names = hub!.map((d) => d.name);
    for (const n of ["base-image", "node", "py-app", "nextjs", "vite", "expo", "jupyter-server"]) expect(names).toContain(n);
    const next = hub!.find((d) => d.name === "nextjs")!;
    expect(next.image).toBe("blaxel/nextjs:latest");
    expect(next.ports).toEqual([{ name: "preview", target: 3000, protocol: "HTTP" }]);
    expect(hub!.find((d) => d.name === "jupyter-server")!.ports![0]!.target).toBe(8888);
    const { data: templates } = await sdk.listTemplates({ throwOnError: true });
    const node = templates!.find((t) => t.name === "node")!;
    expect(node.sha).toMatch(/^[0-9a-f]{32}$/);
    expect(node.topics).toContain("sandbox");
    const { data: one } = await sdk.getTemplate({ path: { templateName: "vite" }, throwOnError: true });
    expect(one!.name).toBe("vite");
  });

  it("refuses an unknown blaxel/ image with a 400 that names the hub", async () => {
    const t0 = Date.now();
    const err = await sdk.SandboxInstance.create({ name: "nope", image: "blaxel/no-such-image:latest", memory: 512 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).not.toBeNull();
    expect(JSON.stringify(err)).toMatch(/not in this server's sandbox hub/);
    // no registry is asked: the answer is immediate
    expect(Date.now() - t0).toBeLessThan(5_000);
    const res = await fetch(`${h.url}/v0/sandboxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${h.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ metadata: { name: "nope2" }, spec: { runtime: { image: "blaxel/node:v9" } } }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code?: string; detail?: string }).detail).toMatch(/blaxel\/node:latest/);
  });

  it("starts blaxel/node (built on first use) with node, npm, TypeScript and tsx", { timeout: BUILD_MS }, async () => {
    const sb = await create("hub-node", "blaxel/node:latest");
    const r = await sb.process.exec({ command: "node --version && npm --version && tsc --version && echo 'console.log(1 + 1 as number)' > /tmp/a.ts && tsx /tmp/a.ts", waitForCompletion: true });
    expect(r.exitCode).toBe(0);
    expect(r.logs).toMatch(/^v\d+\./m);
    expect(r.logs).toMatch(/Version 5\./);
    expect(r.logs).toMatch(/^2$/m);
    // cached now: a second sandbox of the same image starts without building
    const t0 = performance.now();
    await sdk.SandboxInstance.create({ name: "hub-node-2", image: "blaxel/node", memory: 512 });
    expect(performance.now() - t0).toBeLessThan(20_000);
  });

  it("`hangar hub build` builds images ahead of first use (here: found in the machine's cache) and `hangar hub list` lists them", { timeout: BUILD_MS }, async () => {
    const hangar = (...args: string[]) =>
      promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, HANGAR_URL: h.url, HANGAR_API_KEY: h.apiKey, HANGAR_CONFIG: "/nonexistent/hangar.json" }, timeout: BUILD_MS }).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
      );
    const list = await hangar("hub", "list");
    expect(list.stdout).toMatch(/^expo\s+blaxel\/expo:latest\s+8081$/m);
    const built = await hangar("hub", "build", "node");
    expect(built.code, built.stderr).toBe(0);
    expect(built.stdout).toMatch(/^blaxel\/node:latest ready in [\d.]+ s$/m);
    const bad = await hangar("hub", "build", "no-such-image");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/404: sandbox hub image 'no-such-image' not found/);
    // the route: NDJSON, a workspace's key needed
    expect((await fetch(`${h.url}/v0/sandbox/hub/node/build`, { method: "POST" })).status).toBe(401);
    const res = await fetch(`${h.url}/v0/sandbox/hub/node/build`, { method: "POST", headers: { authorization: `Bearer ${h.apiKey}` } });
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const last = JSON.parse((await res.text()).trim().split("\n").at(-1)!) as { image: string; ms: number };
    expect(last.image).toBe("blaxel/node:latest");
  });

  it("starts blaxel/py-app, whose app on port 8000 is reachable", { timeout: BUILD_MS }, async () => {
    const sb = await create("hub-py", "blaxel/py-app:latest", { ports: [{ target: 8000, protocol: "HTTP" }] });
    const r = await sb.process.exec({ command: "python3 -c 'import requests, yaml, venv; print(\"ok\")' && pip --version", waitForCompletion: true });
    expect(r.exitCode).toBe(0);
    expect(r.logs).toContain("ok");
    await sb.fs.write("/blaxel/index.html", "hello from py-app");
    await sb.process.exec({ name: "web", command: "python3 -m http.server 8000 --bind 0.0.0.0", workingDir: "/blaxel", waitForPorts: [8000] });
    const page = await sb.fetch(8000, "/index.html");
    expect(page.status).toBe(200);
    expect(await page.text()).toBe("hello from py-app");
  });

  it("starts blaxel/nextjs and blaxel/vite with their dev servers on 3000 and 5173, listed as dev-server", { timeout: BUILD_MS }, async () => {
    const [next, vite] = await Promise.all([
      create("hub-next", "blaxel/nextjs:latest", { ports: [{ target: 3000, protocol: "HTTP" }] }),
      create("hub-vite", "blaxel/vite:latest", { ports: [{ target: 5173, protocol: "HTTP" }] }),
    ]);
    for (const [sb, port, marker] of [[next, 3000, "Next.js sandbox"], [vite, 5173, "/@vite/client"]] as const) {
      expect((await sb.process.list()).find((p) => p.name === "dev-server")?.status).toBe("running");
      const page = await sb.fetch(port, "/");
      expect(page.status).toBe(200);
      expect(await page.text()).toContain(marker);
    }
    // hot reload: the app in /blaxel/app is the user's to edit
    await vite.fs.write("/blaxel/app/src/App.jsx", "export default function App() { return <h1>edited</h1>; }\n");
    expect(await (await vite.fetch(5173, "/src/App.jsx")).text()).toContain("edited");
  });

  it("starts blaxel/expo, whose Metro dev server on 8081 serves the web app and reloads edits", { timeout: BUILD_MS }, async () => {
    // the largest hub image (React Native, ~900 packages): its first build can outlast the create
    // call's wait, which then answers 504 creation_in_progress while the build goes on
    const sb = await create("hub-expo", "blaxel/expo:latest", { memory: 2048, ports: [{ target: 8081, protocol: "HTTP" }] }).catch(async (e: unknown) => {
      expect(JSON.stringify(e)).toMatch(/still being created/);
      for (let t0 = Date.now(); Date.now() - t0 < BUILD_MS; await new Promise((r) => setTimeout(r, 2_000))) {
        const sb = await sdk.SandboxInstance.get("hub-expo");
        if (sb.status === "DEPLOYED") return sb;
      }
      throw new Error("blaxel/expo never deployed");
    });
    expect((await sb.process.list()).find((p) => p.name === "dev-server")?.status).toBe("running");
    let page: Response | undefined;
    for (let t0 = Date.now(); Date.now() - t0 < 120_000; await new Promise((r) => setTimeout(r, 1_000))) {
      page = await sb.fetch(8081, "/");
      if (page.status === 200) break;
    }
    expect(page?.status).toBe(200);
    const html = await page!.text();
    const script = /<script src="(\/[^"]+\.bundle[^"]*)"/.exec(html)?.[1];
    expect(script, html.slice(0, 2_000)).toBeDefined();
    const bundle = async () => {
      const res = await sb.fetch(8081, script!);
      expect(res.status).toBe(200);
      return res.text();
    };
    expect(await bundle()).toContain("Expo sandbox: edit /blaxel/app/App.js");
    const app = await sb.fs.read("/blaxel/app/App.js");
    await sb.fs.write("/blaxel/app/App.js", app.replace("Expo sandbox: edit /blaxel/app/App.js", "edited in the sandbox"));
    let text = "";
    for (let t0 = Date.now(); Date.now() - t0 < 30_000 && !text.includes("edited in the sandbox"); await new Promise((r) => setTimeout(r, 500))) text = await bundle();
    expect(text).toContain("edited in the sandbox");
  });

  it("starts blaxel/jupyter-server with its service on 8888 as a listed process; concurrent creates share one image", { timeout: BUILD_MS }, async () => {
    const [a, b] = await Promise.all([create("hub-jup-a", "blaxel/jupyter-server:latest"), create("hub-jup-b", "blaxel/jupyter-server:latest")]);
    for (const sb of [a, b]) {
      const procs = await sb.process.list();
      const svc = procs.find((p) => p.name === "jupyter-server");
      expect(svc?.status).toBe("running");
      const health = await sb.fetch(8888, "/health");
      expect(health.status).toBe(200);
    }
    // one build at most in this server's log, whatever the cache held before
    expect(h.output().match(/building hub image blaxel\/jupyter-server/g)?.length ?? 0).toBeLessThanOrEqual(1);
    console.log(`hub create timings (s): ${JSON.stringify(timings)}`);
  });
});
