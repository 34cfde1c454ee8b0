// A developer deploys a project directory with `hangar deploy`, the way `bl deploy` does it: the
// CLI zips the directory (leaving out what .blaxelignore's defaults say), uploads it, and follows
// the build on the server until the sandbox runs.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, type RunningHangar, api, startHangar } from "./harness.js";

let h: RunningHangar;
let home: string;

/** Runs the CLI against the test server without blocking the test's event loop. */
function hangar(args: string[], timeoutMs = 170_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, HANGAR_CONFIG: join(home, "config.json"), HANGAR_URL: h.url, HANGAR_API_KEY: h.apiKey, HANGAR_WORKSPACE: "default" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

function writeTree(dir: string, files: Record<string, string>): string {
  for (const [name, data] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), data);
  }
  return dir;
}

async function exec(name: string, command: string): Promise<{ stdout: string; exitCode: number }> {
  const res = await api(h, "POST", `/run/default/sandboxes/${name}/process`, { command, waitForCompletion: true });
  expect(res.status).toBe(200);
  return (await res.json()) as { stdout: string; exitCode: number };
}

let app: string;

beforeAll(async () => {
  h = await startHangar();
  home = mkdtempSync(join(tmpdir(), "hangar-deploy-cli-"));
  // no .blaxelignore: the defaults leave out node_modules, .git and .env
  app = writeTree(join(home, "node-app"), {
    Dockerfile: ["FROM hangar/base", "WORKDIR /srv", "ARG NOTE_FROM_TOML", "ARG NOTE_FROM_FILE", "COPY . .", 'RUN echo "$NOTE_FROM_TOML $NOTE_FROM_FILE" > /srv/note.txt', 'CMD ["node", "server.js"]', ""].join("\n"),
    "server.js": "require('http').createServer((q, s) => s.end('hello ' + process.env.GREETING)).listen(3000, '0.0.0.0');\n",
    "package.json": JSON.stringify({ name: "node-app", version: "1.0.0", private: true }),
    "blaxel.toml": 'type = "sandbox"\n[build.args]\nNOTE_FROM_TOML = "toml-arg"\n',
    ".env.build": "NOTE_FROM_FILE=file-arg\n",
    ".env": "GREETING=from-dotenv\n",
    "node_modules/junk/index.js": "module.exports = 'junk';\n",
    ".git/HEAD": "ref: refs/heads/main\n",
  });
});

afterAll(async () => {
  await h?.dispose();
  rmSync(home, { recursive: true, force: true });
});

describe("deploying a directory with the hangar CLI", () => {
  it("deploys a Node app: statuses and build logs stream, the URL is printed, ignored paths stay home, the app answers", { timeout: 180_000 }, async () => {
    const r = await hangar(["deploy", "-d", app, "-n", "cli-app"]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain("sandbox/cli-app: UPLOADING");
    expect(r.err).toContain("sandbox/cli-app: BUILDING");
    expect(r.err).toContain("sandbox/cli-app: DEPLOYED");
    expect(r.err).toContain("STEP");
    expect(r.out.trim()).toMatch(/^https?:\/\/\S*cli-app/);

    const ls = await exec("cli-app", "ls -A /srv; cat /srv/note.txt");
    const listed = ls.stdout.split("\n");
    expect(listed).toContain("server.js");
    expect(listed).toContain("blaxel.toml");
    expect(listed).not.toContain("node_modules");
    expect(listed).not.toContain(".git");
    expect(listed).not.toContain(".env");
    expect(ls.stdout).toContain("toml-arg file-arg");
    const curl = await exec("cli-app", "for i in $(seq 50); do curl -s localhost:3000 && break; sleep 0.2; done");
    expect(curl.stdout).toBe("hello from-dotenv");
  });

  it("deploys a Node app and a Python app that have no Dockerfile: the language is detected, the app listens on PORT", { timeout: 240_000 }, async () => {
    const node = writeTree(join(home, "node-nodocker"), {
      "package.json": JSON.stringify({ name: "detected-node", version: "1.0.0", private: true, scripts: { start: "node index.js" }, dependencies: { ms: "2.1.3" } }),
      "index.js": "const ms = require('ms'); require('http').createServer((q, s) => s.end('node ' + ms(60000))).listen(Number(process.env.PORT), process.env.HOST);\n",
    });
    const py = writeTree(join(home, "py-nodocker"), {
      "requirements.txt": "",
      "main.py": "import os, http.server\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(b'python ok')\nhttp.server.HTTPServer((os.environ['HOST'], int(os.environ['PORT'])), H).serve_forever()\n",
    });
    for (const [dir, name, want] of [[node, "detected-node", "node 1m"], [py, "detected-py", "python ok"]] as const) {
      const r = await hangar(["deploy", "-d", dir, "-n", name]);
      expect(r.code, r.err).toBe(0);
      expect(r.err).toContain(`sandbox/${name}: DEPLOYED`);
      const curl = await exec(name, "for i in $(seq 50); do curl -s localhost:80 && break; sleep 0.2; done");
      expect(curl.stdout).toBe(want);
    }
  });

  it("prints a resource's build logs", async () => {
    const r = await hangar(["logs", "sandbox", "cli-app", "--build"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("STEP");
    const missing = await hangar(["logs", "sandbox", "no-such-app", "--build"]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/404/);
  });

  it("returns at once with --no-wait -o json, and `logs --build -f` follows the build to its end", { timeout: 180_000 }, async () => {
    const r = await hangar(["deploy", "-d", app, "-n", "cli-app", "--no-wait", "-o", "json"]);
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out) as { resources: Array<{ kind: string; name: string; status: string }>; success: boolean };
    expect(out.success).toBe(true);
    expect(out.resources[0]).toMatchObject({ kind: "sandbox", name: "cli-app" });
    expect(["UPLOADING", "BUILDING", "DEPLOYING", "DEPLOYED"]).toContain(out.resources[0]!.status);
    const follow = await hangar(["logs", "sandbox", "cli-app", "--build", "-f", "--since", "5m"]);
    expect(follow.code, follow.err).toBe(0);
    expect(follow.out).toContain("STEP");
    const sb = (await (await api(h, "GET", "/v0/sandboxes/cli-app")).json()) as { status: string };
    expect(sb.status).toBe("DEPLOYED");
  });

  it("a failing build exits non-zero with the failure and the build's own output", { timeout: 180_000 }, async () => {
    const broken = writeTree(join(home, "broken"), { Dockerfile: "FROM hangar/base\nRUN echo about to fail && exit 3\n" });
    const r = await hangar(["deploy", "-d", broken, "-n", "cli-broken"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("sandbox/cli-broken: FAILED");
    expect(r.err).toContain("about to fail");
    expect(r.err).toMatch(/error: sandbox\/cli-broken failed: build failed/);
  });

  it("pushes an image without deploying anything", { timeout: 180_000 }, async () => {
    const r = await hangar(["push", "-d", app, "-n", "cli-image"]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain("image sandboxes/cli-image: BUILT");
    expect(r.out.trim()).toMatch(/^built:/);
    expect((await api(h, "GET", "/v0/sandboxes/cli-image")).status).toBe(404);
  });

  it("deploys an agent, which answers on its run URL; deploys a job from source, and refuses bad input before uploading", { timeout: 180_000 }, async () => {
    const agentDir = writeTree(join(home, "agent"), {
      Dockerfile: 'FROM hangar/base\nWORKDIR /a\nCOPY . .\nCMD ["node", "a.js"]\n',
      "a.js": "require('http').createServer((q, s) => { console.log('got ' + q.method + ' ' + q.url); s.end('agent says hi'); }).listen(Number(process.env.PORT), process.env.HOST);\n",
    });
    const agent = await hangar(["deploy", "-d", agentDir, "-n", "cli-agent", "-t", "agent"]);
    expect(agent.code, agent.err).toBe(0);
    expect(agent.out.trim()).toBe(`${h.url}/run/default/agents/cli-agent`);
    const res = await fetch(`${h.url}/run/default/agents/cli-agent`, { method: "POST", headers: { authorization: `Bearer ${h.apiKey}` } });
    expect(await res.text()).toBe("agent says hi");
    // run it, list it and its revisions from the CLI
    const run = await hangar(["run", "agent", "cli-agent", "-d", '{"inputs":"hi"}']);
    expect(run.code, run.err).toBe(0);
    expect(run.out).toBe("agent says hi");
    const listed = await hangar(["get", "agents"]);
    expect(listed.out).toMatch(/cli-agent\s+DEPLOYED/);
    const revs = await hangar(["get", "revisions", "cli-agent"]);
    expect(revs.out).toMatch(/READY\s+100%\s+active\s+1/);
    // the app's output, each line labelled with its revision and replica
    const logs = await hangar(["logs", "agent", "cli-agent"]);
    expect(logs.code, logs.err).toBe(0);
    expect(logs.out).toMatch(/^[a-z0-9]{12}\/[a-z0-9]{12} got POST \/$/m);
    const missing = await hangar(["run", "agent", "nobody"]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/404/);
    // jobs deploy from source too
    const job = await hangar(["deploy", "-d", agentDir, "-n", "cli-job", "-t", "job"]);
    expect(job.code, job.err).toBe(0);
    expect(job.out.trim()).toBe(`${h.url}/run/default/jobs/cli-job`);
    const badToml = writeTree(join(home, "bad-toml"), { "blaxel.toml": 'name = "x"\nport = [\n', Dockerfile: "FROM hangar/base\n" });
    const bad = await hangar(["deploy", "-d", badToml]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/blaxel\.toml:\d+:\d+/);
    const nodir = await hangar(["deploy", "-d", join(home, "nope")]);
    expect(nodir.code).toBe(1);
    expect(nodir.err).toMatch(/no such directory/);
  });
});
