// A user hosts an agent: any HTTP app, deployed from source the way `bl deploy` sends it, served
// on its run URL by replica sandboxes; a new revision takes over with no failed request; an idle
// agent parks and wakes on the next call; keys of other workspaces get nothing.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar, zipFiles } from "./harness.js";

let h: RunningHangar;

beforeAll(async () => {
  h = await startHangar({ env: { HANGAR_STANDBY_IDLE: "2s", HANGAR_RUN_IDLE_TIMEOUT: "2s", HANGAR_SCALE_CONCURRENCY: "2", HANGAR_SCALE_DOWN_IDLE: "3s" } });
});

afterAll(async () => {
  await h?.dispose();
});

/** An agent: POST / answers with its input, its greeting (env) and its pid; GET /slow streams. */
const AGENT = (greeting: string) => ({
  Dockerfile: ["FROM hangar/base", "WORKDIR /agent", "COPY . .", `ENV GREETING="${greeting}"`, 'CMD ["node", "server.js"]', ""].join("\n"),
  "server.js": `
const http = require("http");
const INSTANCE = require("crypto").randomUUID();
http.createServer((req, res) => {
  if (req.url === "/stream") {
    res.writeHead(200, { "content-type": "text/event-stream" });
    let i = 0;
    const t = setInterval(() => { res.write("data: " + i++ + "\\n\\n"); if (i === 3) { clearInterval(t); res.end(); } }, 100);
    return;
  }
  if (req.url === "/crash") process.exit(3);
  if (req.url === "/hang") return;
  if (req.url === "/sleep") return void setTimeout(() => res.end(INSTANCE), 1500);
  if (req.url === "/platform") {
    // the SDK's way in: BL_API_URL / BL_RUN_URL with the agent's own key
    const h = (ws) => ({ authorization: "Bearer " + process.env.BL_API_KEY, "x-blaxel-workspace": ws });
    Promise.all([
      fetch(process.env.BL_API_URL + "/agents", { headers: h(process.env.BL_WORKSPACE) }).then(async (r) => ({ status: r.status, body: await r.json() })),
      fetch(process.env.BL_API_URL + "/agents", { headers: h("other-team") }).then((r) => r.status),
      fetch(process.env.BL_RUN_URL + "/" + process.env.BL_WORKSPACE + "/agents/" + process.env.BL_NAME, { method: "POST", headers: h(process.env.BL_WORKSPACE), body: "nested" }).then((r) => r.json()),
    ]).then(([own, other, nested]) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ own: own.status, names: (own.body.data || own.body).map((a) => a.metadata.name), other, nested, region: process.env.BL_REGION, apiUrl: process.env.BL_API_URL, hasKey: /^hgr_/.test(process.env.BL_API_KEY || "") }));
    }, (e) => { res.statusCode = 500; res.end(String(e)); });
    return;
  }
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ greeting: process.env.GREETING, input: body, path: req.url, method: req.method, thread: req.headers["x-blaxel-thread-id"] || null, auth: req.headers["authorization"] || null, name: process.env.BL_NAME, type: process.env.BL_TYPE, port: process.env.PORT }));
  });
}).listen(Number(process.env.PORT), process.env.HOST);
`,
});

async function deploy(name: string, files: Record<string, string>, spec: Record<string, unknown> = {}): Promise<void> {
  const res = await api(h, "PUT", `/v0/agents/${name}?upload=true`, { metadata: { name, labels: { "x-blaxel-auto-generated": "true" } }, spec: { runtime: { memory: 1024 }, ...spec } });
  expect(res.status, await res.clone().text()).toBe(200);
  const up = await fetch(res.headers.get("x-blaxel-upload-url")!, { method: "PUT", headers: { "content-type": "application/zip" }, body: zipFiles(files) });
  expect(up.status).toBe(200);
}

async function waitAgent(name: string, want: string, activeNot?: string): Promise<{ status: string; spec: { revision?: { active?: string } }; metadata: { url: string }; events: { message: string }[] }> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const a = (await (await api(h, "GET", `/v0/agents/${name}`)).json()) as Awaited<ReturnType<typeof waitAgent>>;
    if (a.status === want && (!activeNot || a.spec.revision?.active !== activeNot)) return a;
    if (a.status === "FAILED" && want !== "FAILED") {
      const logs = (await (await api(h, "GET", `/v0/observability/logs?resourceType=agents&workloadIds=${name}`)).json()) as Record<string, { logs: { message: string }[] }>;
      throw new Error(`agent ${name} failed: ${JSON.stringify(a.events.at(-1))}\n${logs[name]?.logs.map((l) => l.message).join("\n")}`);
    }
    if (Date.now() > deadline) throw new Error(`agent ${name} never reached ${want} (is ${a.status})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const call = (name: string, init: { method?: string; body?: string; headers?: Record<string, string>; path?: string } = {}) =>
  fetch(`${h.url}/run/default/agents/${name}${init.path ?? ""}`, { method: init.method ?? "POST", headers: { authorization: `Bearer ${h.apiKey}`, ...init.headers }, ...(init.body !== undefined ? { body: init.body } : {}) });

describe("hosting an agent", () => {
  let firstRevision = "";

  it("deploys an agent from source and serves it on its run URL, forwarding path, method, body and thread id", async () => {
    await deploy("echo", AGENT("hello"));
    const a = await waitAgent("echo", "DEPLOYED");
    expect(a.metadata.url).toBe(`${h.url}/run/default/agents/echo`);
    firstRevision = a.spec.revision!.active!;
    const res = await call("echo", { body: JSON.stringify({ inputs: "hi" }), headers: { "content-type": "application/json", "x-blaxel-thread-id": "t-1" } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ greeting: "hello", input: '{"inputs":"hi"}', path: "/", method: "POST", thread: "t-1", name: "echo", type: "agent", port: "80" });
    // the caller's Hangar key stays at the edge
    expect(body.auth).toBeNull();
    const sub = (await (await call("echo", { method: "GET", path: "/a/b?x=1" })).json()) as { path: string; method: string };
    expect(sub).toMatchObject({ path: "/a/b?x=1", method: "GET" });
    const revs = (await (await api(h, "GET", "/v0/agents/echo/revisions")).json()) as Array<{ id: string; active: boolean; trafficPercent: number }>;
    expect(revs).toEqual([expect.objectContaining({ id: firstRevision, active: true, trafficPercent: 100 })]);
  });

  it("streams a response chunk by chunk", async () => {
    const res = await call("echo", { method: "GET", path: "/stream" });
    const chunks: string[] = [];
    const reader = res.body!.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(new TextDecoder().decode(value));
    }
    expect(chunks.join("")).toBe("data: 0\n\ndata: 1\n\ndata: 2\n\n");
    expect(chunks.length).toBeGreaterThan(1);
  });

  it("rolls to a new revision under continuous load with no failed request, then drops the old one", async () => {
    let stop = false;
    const seen = new Set<string>();
    let failures = 0;
    let calls = 0;
    const load = (async () => {
      while (!stop) {
        const res = await call("echo", { body: "x" }).catch(() => null);
        calls++;
        if (!res || res.status !== 200) failures++;
        else seen.add(((await res.json()) as { greeting: string }).greeting);
      }
    })();
    await deploy("echo", AGENT("bonjour"));
    await waitAgent("echo", "DEPLOYED", firstRevision);
    // requests after the switch reach the new revision
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await load;
    expect(failures).toBe(0);
    expect(calls).toBeGreaterThan(20);
    expect([...seen].sort()).toEqual(["bonjour", "hello"]);
    expect(((await (await call("echo", { body: "x" })).json()) as { greeting: string }).greeting).toBe("bonjour");
    const revs = (await (await api(h, "GET", "/v0/agents/echo/revisions")).json()) as Array<{ id: string; active: boolean; status: string; replicas: number }>;
    expect(revs).toHaveLength(2);
    expect(revs[0]).toMatchObject({ active: true, status: "READY", replicas: 1 });
    expect(revs[1]).toMatchObject({ id: firstRevision, active: false, status: "RETIRED", replicas: 0 });
  });

  it("splits traffic with a canary, keeps sticky clients on their revision, rolls back, and stages a revision when the active one is not the latest", async () => {
    const greeting = async (res: Response) => ((await res.json()) as { greeting: string }).greeting;
    const revs = async () => (await (await api(h, "GET", "/v0/agents/echo/revisions")).json()) as Array<{ id: string; active: boolean; canary: boolean; status: string; replicas: number; trafficPercent: number }>;
    const putSpec = async (change: (spec: Record<string, unknown>) => Record<string, unknown>) => {
      const cur = (await (await api(h, "GET", "/v0/agents/echo")).json()) as { spec: Record<string, unknown> };
      const res = await api(h, "PUT", "/v0/agents/echo", { metadata: { name: "echo" }, spec: change(cur.spec) });
      expect(res.status, await res.clone().text()).toBe(200);
    };
    const [active, old] = await revs();
    await putSpec((spec) => ({ ...spec, revision: { active: active!.id, canary: old!.id, canaryPercent: 20, stickySessionTtl: 600 } }));
    for (let i = 0; i < 600; i++) {
      const c = (await revs()).find((r) => r.id === old!.id)!;
      if (c.canary && c.replicas === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await revs()).map((r) => [r.id, r.trafficPercent, r.canary])).toEqual([
      [active!.id, 80, false],
      [old!.id, 20, true],
    ]);
    // 1,000 clients without a cookie: about 20% reach the canary (binomial sd ≈ 12.6)
    let canary = 0;
    let cookie = "";
    for (let i = 0; i < 1000; i++) {
      const res = await call("echo", { body: "x" });
      expect(res.status).toBe(200);
      if ((await greeting(res)) === "hello") canary++;
      cookie ||= (res.headers.get("set-cookie") ?? "").split(";")[0]!;
    }
    expect(canary).toBeGreaterThan(150);
    expect(canary).toBeLessThan(250);
    console.log(`[agents] canary 20%: ${canary} of 1000 requests`);
    // a client sending its cookie back stays on its revision
    const first = await greeting(await call("echo", { body: "x", headers: { cookie } }));
    for (let i = 0; i < 50; i++) expect(await greeting(await call("echo", { body: "x", headers: { cookie } }))).toBe(first);

    // rollback: the older revision takes all the traffic
    await putSpec((spec) => ({ ...spec, revision: { active: old!.id } }));
    await waitAgent("echo", "DEPLOYED", active!.id);
    expect(await greeting(await call("echo", { body: "x" }))).toBe("hello");
    // a change now makes a revision with 0% traffic: the active one is not the latest
    await putSpec((spec) => ({ ...spec, runtime: { ...(spec.runtime as object), envs: [{ name: "STAGED", value: "1" }] } }));
    const staged = (await revs())[0]!;
    expect(staged).toMatchObject({ status: "STAGED", trafficPercent: 0, active: false });
    expect(await greeting(await call("echo", { body: "x" }))).toBe("hello");
    await putSpec((spec) => ({ ...spec, revision: { active: staged.id } }));
    await waitAgent("echo", "DEPLOYED", old!.id);
    expect((await revs())[0]).toMatchObject({ id: staged.id, active: true, trafficPercent: 100 });
    expect((await api(h, "PUT", "/v0/agents/echo", { metadata: { name: "echo" }, spec: { runtime: { memory: 1024 }, revision: { active: "nosuchrev" } } })).status).toBe(400);
  });

  it("closes a request whose app sends nothing for the idle timeout (100 s in production, 2 s here)", async () => {
    const t0 = performance.now();
    const res = await call("echo", { method: "GET", path: "/hang" });
    expect(res.status).toBe(504);
    expect(res.headers.get("x-blaxel-source")).toBe("platform");
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThan(1_900);
    expect(ms).toBeLessThan(10_000);
  });

  it("gives the app the SDK's environment: BL_API_URL, BL_RUN_URL and a key that reaches its own workspace only", async () => {
    await api(h, "POST", "/v0/workspaces", { name: "other-team" });
    const res = await call("echo", { method: "GET", path: "/platform" });
    expect(res.status, await res.clone().text()).toBe(200);
    const got = (await res.json()) as { own: number; names: string[]; other: number; nested: { input: string }; region: string; apiUrl: string; hasKey: boolean };
    expect(got).toMatchObject({ own: 200, other: 403, region: "local-1", hasKey: true });
    expect(got.names).toContain("echo");
    expect(got.nested.input).toBe("nested");
    expect(got.apiUrl).toMatch(/^http:\/\/10\.[0-9.]+:\d+\/v0$/);
    // a user's sandbox at its own gateway and the same port is refused: only workloads reach the platform
    const port = new URL(got.apiUrl).port;
    expect((await api(h, "POST", "/v0/sandboxes", { metadata: { name: "plain" }, spec: { runtime: { image: "blaxel/base-image:latest", memory: 512 } } })).status).toBe(200);
    const probe = `node -e 'const gw=require("fs").readFileSync("/proc/net/route","utf8").split("\\n").map(l=>l.split("\\t")).find(f=>f[1]==="00000000")[2];const ip=gw.match(/../g).reverse().map(x=>parseInt(x,16)).join(".");fetch("http://"+ip+":${port}/v0/agents").then(r=>console.log(r.status),e=>console.log("refused"))'`;
    const r = await api(h, "POST", "/run/default/sandboxes/plain/process", { command: probe, waitForCompletion: true });
    expect(((await r.json()) as { stdout: string }).stdout.trim()).toBe("403");
    expect((await api(h, "DELETE", "/v0/sandboxes/plain")).status).toBe(200);
    // the workload's key is listed with the workspace's keys, named after it
    const keys = (await (await api(h, "GET", "/v0/api-keys")).json()) as Array<{ name: string }>;
    expect(keys.map((k) => k.name)).toContain("agent:echo");
  });

  it("parks an idle agent and wakes it on the next call", async () => {
    // HANGAR_STANDBY_IDLE is 2 s on this server
    await new Promise((r) => setTimeout(r, 4_000));
    const t0 = performance.now();
    const res = await call("echo", { body: "after sleep" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { input: string }).input).toBe("after sleep");
    console.log(`[agents] first call to a parked agent answered in ${(performance.now() - t0).toFixed(1)} ms`);
  });

  it("needs a key of its workspace unless public; errors from Hangar say X-Blaxel-Source: platform", async () => {
    const anon = await fetch(`${h.url}/run/default/agents/echo`, { method: "POST", body: "x" });
    expect(anon.status).toBe(401);
    expect(anon.headers.get("x-blaxel-source")).toBe("platform");
    // a key of another workspace
    await api(h, "POST", "/v0/workspaces", { name: "other-team" });
    const other = { name: "other-team" };
    const key = (await (await api(h, "POST", "/v0/api-keys", { name: "other", workspaces: [other.name] })).json()) as { key?: string; apiKey?: string; value?: string };
    const otherKey = key.key ?? key.apiKey ?? key.value;
    expect(otherKey).toBeTruthy();
    const wrong = await fetch(`${h.url}/run/default/agents/echo`, { method: "POST", body: "x", headers: { authorization: `Bearer ${otherKey}` } });
    expect(wrong.status).toBe(403);
    expect((await fetch(`${h.url}/v0/agents/echo`, { headers: { authorization: `Bearer ${otherKey}`, "x-blaxel-workspace": "default" } })).status).toBe(403);
    // made public: anyone may call it
    const cur = (await (await api(h, "GET", "/v0/agents/echo")).json()) as { spec: Record<string, unknown> };
    expect((await api(h, "PUT", "/v0/agents/echo", { metadata: { name: "echo" }, spec: { ...cur.spec, public: true } })).status).toBe(200);
    const open = await fetch(`${h.url}/run/default/agents/echo`, { method: "POST", body: "public" });
    expect(open.status).toBe(200);
    const missing = await call("nobody");
    expect(missing.status).toBe(404);
    expect(missing.headers.get("x-blaxel-source")).toBe("platform");
  });

  it("answers async calls at once and POSTs the result to the callback, signed as @blaxel/core verifies it", async () => {
    const { FakeInternet } = await import("@hangar/egress-proxy/testing");
    const { verifyWebhookFromRequest } = await import("@blaxel/core");
    // the callback's receiver: a stand-in host in a network namespace of the test's own
    const net = await FakeInternet.start({ name: "agcb", subnet: "198.18.7.0/25", hosts: [{ names: ["hooks.example.test"], h1only: true }] });
    try {
      const callbackUrl = `http://${net.ipOf("hooks.example.test")}/callback`;
      const cur = (await (await api(h, "GET", "/v0/agents/echo")).json()) as { spec: Record<string, unknown> };
      const put = await api(h, "PUT", "/v0/agents/echo", { metadata: { name: "echo" }, spec: { ...cur.spec, triggers: [{ id: "async", type: "http-async", configuration: { callbackUrl } }] } });
      expect(put.status).toBe(200);
      const secret = ((await put.json()) as { spec: { triggers: Array<{ configuration: { callbackSecret: string } }> } }).spec.triggers[0]!.configuration.callbackSecret;
      expect(secret).toMatch(/^[0-9a-f]{64}$/); // shown unmasked this once
      const again = (await (await api(h, "GET", "/v0/agents/echo")).json()) as { spec: { triggers: Array<{ configuration: { callbackSecret: string } }> } };
      expect(again.spec.triggers[0]!.configuration.callbackSecret).toBe("********");
      // a callback to the host itself is refused when configured
      const self = await api(h, "PUT", "/v0/agents/echo", { metadata: { name: "echo" }, spec: { ...cur.spec, triggers: [{ type: "http-async", configuration: { callbackUrl: `${h.url}/v0/agents` } }] } });
      expect(self.status).toBe(403);

      const t0 = performance.now();
      const res = await call("echo", { path: "?async=true", body: "async input" });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ success: true });
      const answeredMs = performance.now() - t0;
      let got: { headers: Record<string, string | string[] | undefined>; body: string } | undefined;
      for (let i = 0; i < 100 && !got; i++) {
        got = (await net.requests()).find((r) => r.url === "/callback");
        if (!got) await new Promise((r) => setTimeout(r, 100));
      }
      expect(got).toBeDefined();
      expect(verifyWebhookFromRequest({ headers: got!.headers, body: got!.body } as never, secret)).toBe(true);
      expect(verifyWebhookFromRequest({ headers: got!.headers, body: got!.body.replace("async", "other") } as never, secret)).toBe(false);
      const payload = JSON.parse(got!.body) as { status_code: number; response_body: string; response_length: number; timestamp: number };
      expect(payload.status_code).toBe(200);
      expect(JSON.parse(payload.response_body)).toMatchObject({ input: "async input", path: "/" });
      expect(payload.response_length).toBe(Buffer.byteLength(payload.response_body));
      console.log(`[agents] async call answered in ${answeredMs.toFixed(1)} ms; callback verified with @blaxel/core`);
    } finally {
      await net.stop();
    }
  });

  it("answers a clear 502/503 when the app crashes, never hangs", async () => {
    const crash = await call("echo", { method: "GET", path: "/crash" });
    expect([502, 503]).toContain(crash.status);
    expect(crash.headers.get("x-blaxel-source")).toBe("platform");
  });

  it("keeps serving after the server is killed and restarted", async () => {
    await deploy("survivor", AGENT("still here"));
    await waitAgent("survivor", "DEPLOYED");
    await h.kill9();
    h = await h.restart();
    const res = await call("survivor", { body: "x" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { greeting: string }).greeting).toBe("still here");
  });

  it("serves a stable invoke URL by workload id and replaces the revision behind it, rolling, with no failed request; a replacement cancelled in its rollback window rolls back", async () => {
    const agent = (await (await api(h, "GET", "/v0/agents/echo")).json()) as { endpoint: string; metadata: { workloadId: string } };
    expect(agent.endpoint).toBe(`${h.url}/api/v2/endpoints/workloads/${agent.metadata.workloadId}/`);
    const wl = (await (await api(h, "GET", `/api/v2/workloads/${agent.metadata.workloadId}`)).json()) as { endpoint: string; name: string };
    expect(wl).toMatchObject({ endpoint: agent.endpoint, name: "echo" });
    const invoke = (body = "x") => fetch(`${agent.endpoint}sub/path?q=1`, { method: "POST", body, headers: { authorization: `Bearer ${h.apiKey}` } });
    const first = await invoke("by id");
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ input: "by id", path: "/sub/path?q=1" });
    // echo is public by now; survivor is private: its invoke URL needs a key of its workspace
    const survivor = (await (await api(h, "GET", "/v0/agents/survivor")).json()) as { endpoint: string };
    expect((await fetch(survivor.endpoint, { method: "POST" })).status).toBe(401);
    expect((await fetch(survivor.endpoint, { method: "POST", headers: { authorization: `Bearer ${h.apiKey}` } })).status).toBe(200);
    expect((await fetch(`${h.url}/api/v2/endpoints/workloads/nosuchid/`, { method: "POST", headers: { authorization: `Bearer ${h.apiKey}` } })).status).toBe(404);

    const greetingNow = async () => ((await (await invoke()).json()) as { greeting: string }).greeting;
    const revs = (await (await api(h, "GET", "/v0/agents/echo/revisions")).json()) as Array<{ id: string; active: boolean; image: string }>;
    const activeImage = revs.find((r) => r.active)!.image;
    const before = await greetingNow();
    const replacement = `/api/v2/workloads/${agent.metadata.workloadId}/replacement`;
    const waitStatus = async (want: string) => {
      for (let i = 0; i < 600; i++) {
        const r = (await (await api(h, "GET", replacement)).json()) as { status: string; message: string | null };
        if (r.status === want) return;
        if (r.status === "failed") throw new Error(`replacement failed: ${r.message}`);
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error(`replacement never reached ${want}`);
    };
    // under continuous load through the invoke URL, to each other inactive revision in turn
    let stop = false;
    let failures = 0;
    const load = (async () => {
      while (!stop) if ((await invoke().catch(() => null))?.status !== 200) failures++;
    })();
    const seen = new Set([before]);
    for (const target of revs.filter((r) => r.image !== activeImage).slice(0, 1)) {
      const start = await api(h, "POST", replacement, { artifactId: target.id, strategy: "rolling", config: { warmupDurationMinutes: 0.01, keepOldVersionMinutes: 0.02 } });
      expect(start.status, await start.clone().text()).toBe(202);
      expect((await api(h, "POST", replacement, { artifactId: target.id })).status).toBe(422);
      await waitStatus("switched");
      seen.add(await greetingNow());
      await waitStatus("completed");
    }
    const after = await greetingNow();
    expect(after).not.toBe(before);
    // a second one, cancelled in its rollback window: the previous revision serves again
    const back = revs.find((r) => r.active)!;
    expect((await api(h, "POST", replacement, { artifactId: back.id, config: { keepOldVersionMinutes: 10 } })).status).toBe(202);
    await waitStatus("switched");
    expect(await greetingNow()).toBe(before);
    const cancelled = await api(h, "DELETE", replacement);
    expect(cancelled.status).toBe(202);
    expect(((await cancelled.json()) as { status: string }).status).toBe("rolled_back");
    expect(await greetingNow()).toBe(after);
    stop = true;
    await load;
    expect(failures).toBe(0);
    const history = (await (await api(h, "GET", `/api/v2/workloads/${agent.metadata.workloadId}/history`)).json()) as Array<{ status: string }>;
    expect(history.map((r) => r.status)).toEqual(["rolled_back", "completed"]);
    expect((await api(h, "POST", replacement, { artifactId: "" })).status).toBe(400);
  });

  it("scales out under concurrent load up to maxScale, and back in when idle", async () => {
    await deploy("busy", AGENT("busy"), { runtime: { memory: 1024, minScale: 1, maxScale: 2 } });
    await waitAgent("busy", "DEPLOYED");
    const replicas = async () => ((await (await api(h, "GET", "/v0/agents/busy/revisions")).json()) as Array<{ replicas: number }>)[0]!.replicas;
    expect(await replicas()).toBe(1);
    // 3 concurrent requests per replica is over the target (2 here): another replica starts
    const instances = new Set<string>();
    for (let round = 0; round < 6 && instances.size < 2; round++) {
      const answers = await Promise.all(Array.from({ length: 8 }, () => call("busy", { method: "GET", path: "/sleep" }).then((r) => r.text())));
      for (const a of answers) instances.add(a);
    }
    expect(instances.size).toBe(2);
    expect(await replicas()).toBe(2); // maxScale
    // idle for HANGAR_SCALE_DOWN_IDLE (3 s here): back to minScale
    const deadline = Date.now() + 20_000;
    while ((await replicas()) > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect(await replicas()).toBe(1);
    expect((await call("busy", { method: "GET", path: "/sleep" })).status).toBe(200);
  });

  it("refuses bad input with 4xx and keeps what it had", async () => {
    expect((await api(h, "PUT", "/v0/agents/Bad_Name", { metadata: { name: "Bad_Name" }, spec: {} })).status).toBe(400);
    expect((await api(h, "PUT", "/v0/agents/x1", { metadata: { name: "x1" }, spec: { runtime: { memory: "lots" } } })).status).toBe(400);
    expect((await api(h, "POST", "/v0/agents", { metadata: { name: "survivor" }, spec: {} })).status).toBe(409);
    expect((await api(h, "GET", "/v0/agents/nobody")).status).toBe(404);
    const list = (await (await api(h, "GET", "/v0/agents")).json()) as { data: Array<{ metadata: { name: string } }> };
    expect(list.data.map((a) => a.metadata.name).sort()).toEqual(["busy", "echo", "survivor"]);
  });
});
