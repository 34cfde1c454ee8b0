// A user deploys code, not images: source uploaded the way `bl deploy` and the SDK's
// ImageInstance.build() send it, built by Hangar behind the sandbox wall, run as a sandbox.

import { createServer, type Server } from "node:net";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IMAGE_DIR, type RunningHangar, api, startHangar, useSdkAgainst } from "./harness.js";
import { zipFiles, zipOf } from "./harness.js";

let h: RunningHangar;

beforeAll(async () => {
  h = await startHangar();
  useSdkAgainst(h);
});

/** Workspaces whose built images this file made (seen in sandbox specs). */
const builtWorkspaces = new Set<string>();

afterAll(async () => {
  await h?.dispose();
  // uninstalling the server removed the images its builds made, even from the shared image cache
  const { readdirSync, readFileSync } = await import("node:fs");
  const refs = readdirSync(`${IMAGE_DIR}/refs`).map((f) => (JSON.parse(readFileSync(`${IMAGE_DIR}/refs/${f}`, "utf8")) as { ref: string }).ref);
  expect(builtWorkspaces.size).toBeGreaterThan(0);
  expect(refs.filter((r) => [...builtWorkspaces].some((w) => r.startsWith(`built:${w}/`)))).toEqual([]);
});

const AUTO = { "x-blaxel-auto-generated": "true" };

/** PUT …?upload=true as bl sends it; returns the upload URL. */
async function askUpload(name: string, memory = 1024): Promise<string> {
  const res = await api(h, "PUT", `/v0/sandboxes/${name}?upload=true`, { metadata: { name, labels: AUTO }, spec: { runtime: { memory } } });
  expect(res.status).toBe(200);
  const url = res.headers.get("x-blaxel-upload-url");
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/upload\//);
  return url!;
}

/** PUT of a zip to an upload URL, with no Blaxel headers (the URL is the credential). */
function upload(url: string, zip: Buffer): Promise<Response> {
  return fetch(url, { method: "PUT", headers: { "content-type": "application/zip" }, body: zip });
}

/** Polls the sandbox until it reads `want` (or FAILED); returns every status seen, in order. */
async function waitFor(name: string, want: string, timeoutMs = 240_000): Promise<{ seen: string[]; sandbox: { status: string; events: { status: string; message: string }[]; spec: { runtime: { image: string } } } }> {
  const seen: string[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const sandbox = (await (await api(h, "GET", `/v0/sandboxes/${name}`)).json()) as Awaited<ReturnType<typeof waitFor>>["sandbox"];
    const built = /^built:([^/]+)\//.exec(sandbox.spec?.runtime?.image ?? "")?.[1];
    if (built) builtWorkspaces.add(built);
    if (seen.at(-1) !== sandbox.status) seen.push(sandbox.status);
    if (sandbox.status === want || (sandbox.status === "FAILED" && want !== "FAILED")) return { seen, sandbox };
    if (Date.now() > deadline) throw new Error(`${name} never reached ${want}; saw ${seen.join(" → ")}\n${h.output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function exec(name: string, command: string): Promise<{ stdout: string; exitCode: number }> {
  const res = await api(h, "POST", `/run/default/sandboxes/${name}/process`, { command, waitForCompletion: true });
  expect(res.status).toBe(200);
  return (await res.json()) as { stdout: string; exitCode: number };
}

const NODE_APP = {
  "Dockerfile": [
    "FROM hangar/base",
    "WORKDIR /srv",
    "COPY package.json ./",
    "RUN npm install --no-audit --no-fund && echo deps-installed > /srv/deps.txt",
    // every RUN step trusts the node's CAs: curl, as npm and pip do
    "RUN curl -fsS -o /dev/null https://registry.npmjs.org/ && echo tls-ok > /srv/tls.txt",
    "COPY . .",
    "ENV PORT=3000",
    "EXPOSE 3000",
    'CMD ["node", "server.js"]',
    "",
  ].join("\n"),
  "package.json": JSON.stringify({ name: "node-app", version: "1.0.0", private: true, scripts: { start: "node server.js" } }),
  "server.js": "require('http').createServer((q, s) => s.end('hello from node ' + process.env.PORT)).listen(Number(process.env.PORT), '0.0.0.0');\n",
  ".dockerignore": "secret.txt\n",
  "secret.txt": "not for the image",
};

describe("deploying a sandbox from source", () => {
  it("deploys a Node app with a Dockerfile: UPLOADING → BUILDING → DEPLOYED, the app runs, build logs are readable", async () => {
    const url = await askUpload("node-app");
    expect((await (await api(h, "GET", "/v0/sandboxes/node-app")).json()).status).toBe("UPLOADING");
    const res = await upload(url, zipFiles(NODE_APP));
    expect(res.status).toBe(200);
    // single use
    expect((await upload(url, zipFiles(NODE_APP))).status).toBe(404);
    const { seen, sandbox } = await waitFor("node-app", "DEPLOYED");
    expect(seen).toContain("BUILDING");
    expect(seen.at(-1)).toBe("DEPLOYED");
    expect(sandbox.spec.runtime.image).toMatch(/^built:/);
    const r = await exec("node-app", "cat /srv/deps.txt /srv/tls.txt; test -e /srv/secret.txt && echo leaked || echo ignored; for i in $(seq 50); do curl -s localhost:3000 && break; sleep 0.1; done");
    expect(r.stdout).toBe("deps-installed\ntls-ok\nignored\nhello from node 3000");
    const logs = (await (await api(h, "GET", `/v0/observability/logs?start=2000-01-01T00:00:00&resourceType=sandboxes&workloadIds=node-app&type=all&limit=1000&offset=0&workspace=default`)).json()) as Record<string, { logs: { message: string; timestamp: string }[]; totalCount: number }>;
    expect(logs["node-app"]!.totalCount).toBeGreaterThan(3);
    const text = logs["node-app"]!.logs.map((l) => l.message).join("\n");
    expect(text).toContain("STEP");
    expect(text).toMatch(/built built:/);
  });

  it("rebuilds unchanged source from the cache, quickly", async () => {
    const t0 = Date.now();
    await upload(await askUpload("node-app"), zipFiles(NODE_APP));
    const { seen } = await waitFor("node-app", "DEPLOYED");
    expect(seen).toContain("BUILDING");
    const logs = (await (await api(h, "GET", `/v0/observability/logs?resourceType=sandboxes&workloadIds=node-app&start=${new Date(t0 - 1000).toISOString().slice(0, 19)}`)).json()) as Record<string, { logs: { message: string }[] }>;
    const text = logs["node-app"]!.logs.map((l) => l.message).join("\n");
    expect(text).toContain("Using cache");
    expect(text).toContain("unchanged; reusing it");
    console.log(`[deploy] unchanged rebuild → DEPLOYED in ${Date.now() - t0} ms (BUILDING held until read)`);
  });

  it("deploys a Python app without a Dockerfile (detected), listening on PORT", async () => {
    await upload(
      await askUpload("py-app"),
      zipFiles({
        "requirements.txt": "",
        "main.py": "import os, http.server\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(b'hello from python')\nhttp.server.HTTPServer(('0.0.0.0', int(os.environ.get('PORT', '80'))), H).serve_forever()\n",
      }),
    );
    const { sandbox } = await waitFor("py-app", "DEPLOYED");
    expect(sandbox.status).toBe("DEPLOYED");
    const r = await exec("py-app", "for i in $(seq 50); do curl -s localhost:80 && break; sleep 0.1; done");
    expect(r.stdout).toBe("hello from python");
    // once the sandbox is gone, the next build's garbage collection removes its image
    const image = sandbox.spec.runtime.image;
    expect((await api(h, "DELETE", "/v0/sandboxes/py-app")).status).toBe(200);
    for (let i = 0; i < 100 && (await api(h, "GET", "/v0/sandboxes/py-app")).status !== 404; i++) await new Promise((r) => setTimeout(r, 100));
    await upload(await askUpload("gc-trigger"), zipFiles({ Dockerfile: "FROM hangar/base\nRUN echo gc > /gc\n" }));
    await waitFor("gc-trigger", "DEPLOYED");
    const res = await api(h, "POST", "/v0/sandboxes", { metadata: { name: "py-again" }, spec: { runtime: { image } } });
    expect(res.status).toBe(400);
  });

  it("a failing build marks the sandbox FAILED with a readable event, and what it ran before keeps serving", async () => {
    await upload(await askUpload("node-app"), zipFiles({ ...NODE_APP, Dockerfile: "FROM hangar/base\nRUN echo about to fail && exit 3\n" }));
    const { sandbox } = await waitFor("node-app", "FAILED");
    expect(sandbox.events.at(-1)!.message).toMatch(/build failed/);
    const r = await exec("node-app", "curl -s localhost:3000");
    expect(r.stdout).toBe("hello from node 3000");
  });

  it("names a base image that cannot be had, and how to provide it", async () => {
    await upload(await askUpload("no-base"), zipFiles({ Dockerfile: "FROM registry.invalid.example/nothing:1\nRUN true\n" }));
    const { sandbox } = await waitFor("no-base", "FAILED");
    expect(sandbox.events.at(-1)!.message).toContain("registry.invalid.example/nothing:1");
    expect(sandbox.events.at(-1)!.message).toContain("HANGAR_IMPORT_DIRS");
  });

  it("resumes a build after the server is killed in the middle of it", async () => {
    await upload(await askUpload("slow-build"), zipFiles({ Dockerfile: "FROM hangar/base\nRUN sleep 4 && echo slow > /slow.txt\n" }));
    await waitFor("slow-build", "BUILDING");
    await new Promise((r) => setTimeout(r, 1500));
    await h.kill9();
    h = await h.restart();
    await waitFor("slow-build", "DEPLOYED");
    expect((await exec("slow-build", "cat /slow.txt")).stdout).toBe("slow\n");
    expect(h.output()).toContain("resuming builds");
  });

  it("builds a custom sandbox image with the SDK's ImageInstance and runs commands in it", async () => {
    const { ImageInstance, SandboxInstance } = await import("@blaxel/core");
    const statuses: string[] = [];
    const image = ImageInstance.fromRegistry("blaxel/base-image:latest").workdir("/app").runCommands("echo made-by-run > /app/greeting").env({ FROM_IMAGE: "yes" });
    await image.build({ name: "sdk-image", memory: 1024, onStatusChange: (s: string) => statuses.push(s) });
    expect(statuses).toContain("BUILDING");
    expect(statuses.at(-1)).toBe("DEPLOYED");
    const sb = await SandboxInstance.get("sdk-image");
    const r = await sb.process.exec({ command: "cat /app/greeting; echo $FROM_IMAGE; pwd", waitForCompletion: true });
    expect(r.stdout).toBe("made-by-run\nyes\n/app\n");
  });
});

describe("building from images the machine does not ship", () => {
  it("builds from an image in a local registry, with the SDK's ImageInstance and in a multi-stage Dockerfile", async () => {
    const { buildTestImage, startRegistry, REGISTRY_BINARY, TEST_IMAGE_BINARIES } = await import("@hangar/runtime/testing");
    if (!existsSync(REGISTRY_BINARY)) throw new Error("docker-registry is not installed (scripts/ensure.sh test installs it)");
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { execFileSync } = await import("node:child_process");
    const work = mkdtempSync(join(tmpdir(), "hangar-registry-"));
    // a stand-in registry on loopback holding a small image made of host binaries
    const registry = await startRegistry(join(work, "registry"));
    try {
      const img = await buildTestImage({ dir: join(work, "img"), binaries: TEST_IMAGE_BINARIES, files: { "/etc/motd": "from the local registry\n" }, user: "0" });
      execFileSync("skopeo", ["--insecure-policy", "copy", "-q", "--dest-tls-verify=false", img.layoutRef, `docker://${registry.host}/tools/small:1`]);
      const { ImageInstance, SandboxInstance } = await import("@blaxel/core");
      // the SDK's image builder, starting from the registry's image
      await ImageInstance.fromRegistry(`${registry.host}/tools/small:1`).runCommands("cat /etc/motd > /made-by-run").build({ name: "from-registry", memory: 512 });
      const sb = await SandboxInstance.get("from-registry");
      expect((await sb.process.exec({ command: "cat /made-by-run", waitForCompletion: true })).stdout).toBe("from the local registry\n");
      // a multi-stage Dockerfile: the first stage from the registry, the result from the base image
      const dockerfile = [`FROM ${registry.host}/tools/small:1 AS one`, "RUN cat /etc/motd > /stage-one", "FROM hangar/base", "COPY --from=one /stage-one /from-stage-one", ""].join("\n");
      await upload(await askUpload("multi-stage"), zipFiles({ Dockerfile: dockerfile }));
      await waitFor("multi-stage", "DEPLOYED");
      expect((await exec("multi-stage", "cat /from-stage-one; node --version | cut -c1")).stdout).toBe("from the local registry\nv\n");
    } finally {
      await registry.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe("builds are hostile input", () => {
  let probe: Server;
  let probePort = 0;
  beforeAll(async () => {
    // a service on the host's loopback that a build must not reach
    probe = createServer((s) => s.end("host service\n"));
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    probePort = (probe.address() as { port: number }).port;
  });
  afterAll(() => probe?.close());

  it("a build cannot read the host's files or reach the host's loopback or the API; it runs as an unprivileged root", async () => {
    const api4 = new URL(h.url);
    const dockerfile = [
      "FROM hangar/base",
      "RUN (md5sum /etc/shadow | cut -c1-32; " +
        `curl -s -m 3 http://127.0.0.1:${probePort}/ && echo host-loopback-reached || echo host-loopback-blocked; ` +
        `gw=$(ip -4 route | awk '/default/ {print $3}'); curl -s -m 3 http://$gw:${api4.port}/health && echo api-reached || echo api-blocked; ` +
        "head -1 /proc/self/uid_map | awk '{print $2}'; " +
        "mount -t tmpfs x /mnt 2>/dev/null && echo mounted || echo mount-denied) > /probe.txt",
      "",
    ].join("\n");
    await upload(await askUpload("escape"), zipFiles({ Dockerfile: dockerfile }));
    await waitFor("escape", "DEPLOYED");
    const lines = (await exec("escape", "cat /probe.txt")).stdout.split("\n");
    const { createHash } = await import("node:crypto");
    const { readFileSync } = await import("node:fs");
    expect(lines[0]).not.toBe(createHash("md5").update(readFileSync("/etc/shadow")).digest("hex"));
    expect(lines[1]).toBe("host-loopback-blocked");
    expect(lines[2]).toBe("api-blocked");
    expect(Number(lines[3])).toBeGreaterThan(0); // root inside maps to an unprivileged host uid
    expect(lines[4]).toBe("mount-denied");
  });

  it("refuses archives with path traversal, absolute paths, symlinks or bombs with a 4xx, writing nothing outside", async () => {
    const marker = `/tmp/hangar-zip-escape-${Date.now()}`;
    const cases: Array<[string, Buffer, number, string]> = [
      ["traversal", zipOf([{ name: `../../../../../../..${marker}`, data: "x" }]), 400, "invalid_archive"],
      ["absolute", zipOf([{ name: marker, data: "x" }]), 400, "invalid_archive"],
      ["symlink", zipOf([{ name: "link", data: "/etc", mode: 0o120777 }, { name: "link/passwd-copy", data: "x" }]), 400, "invalid_archive"],
      ["bomb", zipOf([{ name: "zeros", data: Buffer.alloc(300 * 1024 * 1024), deflate: true }]), 413, "archive_too_large"],
      ["not a zip", Buffer.from("this is not a zip file at all"), 400, "invalid_archive"],
    ];
    for (const [what, zip, status, code] of cases) {
      const res = await upload(await askUpload("hostile"), zip);
      expect(res.status, what).toBe(status);
      expect(((await res.json()) as { type: string }).type, what).toBe(`urn:hangar:problem:${code}`);
    }
    expect(existsSync(marker)).toBe(false);
    const { sandbox } = await waitFor("hostile", "FAILED");
    expect(sandbox.events.at(-1)!.message).toMatch(/upload refused/);
  });

  it("refuses an unknown upload token and a built image of another workspace", async () => {
    expect((await upload(`${h.url}/upload/not-a-token`, zipFiles({ a: "b" }))).status).toBe(404);
    const res = await api(h, "POST", "/v0/sandboxes", { metadata: { name: "steal" }, spec: { runtime: { image: "built:otherws/sandboxes/x:abc" } } });
    expect(res.status).toBe(400);
  });
});
