// A user ports code written against Blaxel's sandboxes: the unmodified SDK, only env vars changed.
// What that code assumes must hold here too: expiry is exact when read, an env update reboots the
// sandbox with masked values in responses, and a region is kept and listed.

import type { Sandbox } from "@blaxel/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar, useSdkAgainst } from "./harness.js";

type Sdk = typeof import("@blaxel/core");
type Env = { name: string; value: string; secret?: boolean };

let h: RunningHangar;
let sdk: Sdk;
let SandboxInstance: Sdk["SandboxInstance"];

const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));

/** Runs a command in a new process and returns its stdout. */
async function sh(sb: InstanceType<Sdk["SandboxInstance"]>, command: string): Promise<string> {
  const r = await sb.process.exec({ command, waitForCompletion: true });
  expect(r.exitCode).toBe(0);
  return r.stdout ?? "";
}

beforeAll(async () => {
  h = await startHangar({ env: { HANGAR_REGIONS: "local-1,us-was-1" } });
  useSdkAgainst(h); // BL_REGION=local-1
  sdk = await import("@blaxel/core");
  ({ SandboxInstance } = sdk);
});

afterAll(async () => {
  await h?.dispose();
});

describe("a user ports code written against Blaxel's sandboxes", () => {
  it("exact expiry: past its ttl, expires date or ttl-max-age a sandbox reads TERMINATED at once, and its name gives a fresh sandbox", async () => {
    const cases: [string, Record<string, unknown>][] = [
      ["port-ttl", { ttl: "1s" }],
      ["port-expires", { expires: new Date(Date.now() + 1_000) }],
      ["port-max-age", { lifecycle: { expirationPolicies: [{ type: "ttl-max-age", value: "1s", action: "delete" }] } }],
    ];
    for (const [name, expiry] of cases) {
      const sb = await SandboxInstance.create({ name, memory: 256, externalId: `${name}-job`, ...expiry } as never);
      expect(sb.status).toBe("DEPLOYED");
      const due = expiry.expires instanceof Date ? expiry.expires.getTime() : Date.parse(sb.metadata.createdAt!) + 1_000;
      await sleepUntil(due + 100);

      const got = await SandboxInstance.get(name);
      expect(got.status, name).toBe("TERMINATED");
      expect((got as unknown as { sandbox: { state?: string } }).sandbox.state).toBeUndefined();
      expect((await SandboxInstance.list()).data.map((s) => s.metadata.name)).not.toContain(name);
      const all = await SandboxInstance.list({ showTerminated: true } as never);
      expect(all.data.find((s) => s.metadata.name === name)?.status).toBe("TERMINATED");
      await expect(SandboxInstance.getByExternalId(`${name}-job`)).rejects.toMatchObject({ code: 404 });
      expect((await api(h, "POST", `/run/default/sandboxes/${name}/process`, { command: "true", waitForCompletion: true })).status).toBe(503);
      // the name is free at once
      const again = await SandboxInstance.create({ name, memory: 256 });
      expect(again.status).toBe("DEPLOYED");
      expect(again.metadata.createdAt).not.toBe(sb.metadata.createdAt);
    }

    // files written before the expiry are not in the sandbox that takes the name
    const old = await SandboxInstance.create({ name: "port-fresh", memory: 256, ttl: "3s" });
    await old.fs.write("/tmp/old.txt", "from before");
    expect(await sh(old, "cat /tmp/old.txt")).toBe("from before");
    await sleepUntil(Date.parse(old.metadata.createdAt!) + 3_100);
    expect((await SandboxInstance.get("port-fresh")).status).toBe("TERMINATED");
    const fresh = await SandboxInstance.createIfNotExists({ name: "port-fresh", memory: 256 });
    expect(fresh.status).toBe("DEPLOYED");
    expect(fresh.metadata.createdAt).not.toBe(old.metadata.createdAt);
    expect(await sh(fresh, "test -e /tmp/old.txt && echo kept || echo gone")).toBe("gone\n");
  });

  it("env updates: values are masked in responses, metadata updates keep everything, an env change reboots onto a fresh filesystem", async () => {
    const name = "port-env";
    const sb = await SandboxInstance.create({ name, memory: 512, ports: [{ target: 3000 }], envs: [{ name: "GREETING", value: "hi" }, { name: "TOKEN", value: "tok-1" }] });
    const masked = (envs: Env[] | undefined) => envs?.map((e) => `${e.name}=${e.value}`);
    expect(masked(sb.spec.runtime?.envs as Env[])).toEqual(["GREETING=***", "TOKEN=***"]);
    expect(masked((await SandboxInstance.get(name)).spec.runtime?.envs as Env[])).toEqual(["GREETING=***", "TOKEN=***"]);
    const listed = (await SandboxInstance.list()).data.find((s) => s.metadata.name === name);
    expect(JSON.stringify(listed?.spec)).not.toMatch(/tok-1|"hi"/);

    // an admin sees the values with show_secrets; any other key is refused
    const shown = await sdk.getSandbox({ path: { sandboxName: name }, query: { show_secrets: true }, throwOnError: true });
    expect(masked(shown.data.spec.runtime?.envs as Env[])).toEqual(["GREETING=hi", "TOKEN=tok-1"]);
    const key = (await (await api(h, "POST", "/v0/api-keys", { name: "developer" })).json()) as { apiKey: string };
    const asDeveloper = { authorization: `Bearer ${key.apiKey}` };
    expect((await api(h, "GET", `/v0/sandboxes/${name}`, undefined, asDeveloper)).status).toBe(200);
    const refused = await api(h, "GET", `/v0/sandboxes/${name}?show_secrets=true`, undefined, asDeveloper);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ code: 403, type: "urn:hangar:problem:forbidden" });

    // label, TTL and network updates send the masked values back: the stored ones stay, nothing restarts
    await sb.fs.write("/tmp/ephemeral.txt", "scratch");
    await sb.process.exec({ name: "sleeper", command: "sleep 600" });
    const preview = await sb.previews.create({ metadata: { name: "web" }, spec: { port: 3000, public: true } });
    await SandboxInstance.updateMetadata(name, { labels: { team: "b" } });
    await SandboxInstance.updateTtl(name, "2h");
    await SandboxInstance.updateNetwork(name, { network: { allowedDomains: ["example.com"] } } as never);
    let cur = await SandboxInstance.get(name);
    expect(cur.metadata.labels).toEqual({ team: "b" });
    expect(await sh(cur, "cat /tmp/ephemeral.txt")).toBe("scratch");
    expect((await cur.process.get("sleeper")).status).toBe("running");
    expect(await sh(cur, 'echo "$GREETING $TOKEN"')).toBe("hi tok-1\n");

    // the env change, read-modify-write as SDK users write it: one value changed, the other sent back masked
    cur = await SandboxInstance.get(name);
    const envs = (cur.spec.runtime?.envs as Env[]).map((e) => (e.name === "GREETING" ? { name: "GREETING", value: "hello again" } : e));
    const read = (cur as unknown as { sandbox: Sandbox }).sandbox;
    const res = await sdk.updateSandbox({ path: { sandboxName: name }, body: { ...read, spec: { ...cur.spec, runtime: { ...cur.spec.runtime, envs } } }, throwOnError: true });
    expect(res.data.status).toBe("DEPLOYED");
    expect(masked(res.data.spec.runtime?.envs as Env[])).toEqual(["GREETING=***", "TOKEN=***"]);

    const after = await SandboxInstance.get(name);
    expect(after.status).toBe("DEPLOYED");
    expect(await sh(after, 'echo "$GREETING $TOKEN"')).toBe("hello again tok-1\n");
    expect(await sh(after, "test -e /tmp/ephemeral.txt && echo kept || echo gone")).toBe("gone\n");
    await expect(after.process.get("sleeper")).rejects.toBeDefined();
    // kept: the record, its URL, labels, TTL and previews
    expect(after.metadata.createdAt).toBe(sb.metadata.createdAt);
    expect(after.metadata.url).toBe(sb.metadata.url);
    expect(after.metadata.labels).toEqual({ team: "b" });
    expect(after.spec.runtime?.ttl).toBe("2h");
    expect((await after.previews.get("web")).spec.url).toBe(preview.spec.url);
  });

  it("region: kept and returned, the node's default when none is given, BL_REGION honoured, unknown ones refused, regions listed", async () => {
    const sb = await SandboxInstance.create({ name: "port-region", memory: 256, region: "us-was-1" });
    expect(sb.spec.region).toBe("us-was-1");
    expect((await SandboxInstance.get("port-region")).spec.region).toBe("us-was-1");
    // an update keeps it
    expect((await SandboxInstance.updateTtl("port-region", "1h")).spec.region).toBe("us-was-1");

    // BL_REGION is what the SDK sends when the code names no region
    expect((await SandboxInstance.create({ name: "port-bl-region", memory: 256 })).spec.region).toBe("local-1");
    process.env.BL_REGION = "us-was-1";
    try {
      expect((await SandboxInstance.create({ name: "port-bl-region-2", memory: 256 })).spec.region).toBe("us-was-1");
    } finally {
      process.env.BL_REGION = "local-1";
    }
    // no region at all: the first of HANGAR_REGIONS
    const res = await api(h, "POST", "/v0/sandboxes", { metadata: { name: "port-no-region" }, spec: { runtime: { memory: 256 } } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { spec: { region?: string } }).spec.region).toBe("local-1");

    await expect(SandboxInstance.create({ name: "port-elsewhere", memory: 256, region: "us-pdx-1" })).rejects.toMatchObject({
      code: 400,
      type: "urn:hangar:problem:validation_failed",
      field: "spec.region",
      allowed: ["local-1", "us-was-1"],
      detail: 'spec.region: unknown region "us-pdx-1"; this server offers local-1, us-was-1',
    });
    await expect(SandboxInstance.get("port-elsewhere")).rejects.toMatchObject({ code: 404 });

    const { data } = await sdk.listLocations({ throwOnError: true });
    expect(data).toEqual([
      { region: "local-1", location: "local-1", continent: "", country: "", status: "healthy", flavors: [{ name: "cpu", type: "cpu" }] },
      { region: "us-was-1", location: "us-was-1", continent: "", country: "", status: "healthy", flavors: [{ name: "cpu", type: "cpu" }] },
    ]);
  });
});
