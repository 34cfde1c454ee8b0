// An operator who wants a second wall runs a node's sandboxes under gVisor (HANGAR_RUNTIME_CLASS=gvisor):
// a sandbox created without spec.runtime.runtimeClass gets the node's class, says so in its spec,
// and runs on gVisor's own kernel; a sandbox may still ask for the default runtime; an unknown class
// stops the server at start with a clear message.

import { mkdtempSync, rmSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, httpRequest, startHangar } from "./harness.js";

const hasRunsc = spawnSync("sh", ["-c", "command -v runsc"]).status === 0;

interface SandboxDoc {
  status: string;
  metadata: { url: string };
  spec: { runtime: { runtimeClass?: string } };
}

async function run(h: RunningHangar, sb: SandboxDoc, command: string): Promise<{ exitCode: number; stdout: string }> {
  const res = await httpRequest(`${sb.metadata.url}/process`, {
    method: "POST",
    headers: { authorization: `Bearer ${h.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ command, waitForCompletion: true }),
  });
  expect(res.status, res.body).toBe(200);
  return JSON.parse(res.body) as { exitCode: number; stdout: string };
}

describe.skipIf(!hasRunsc)("a node whose default runtime class is gvisor", () => {
  let h: RunningHangar;

  beforeAll(async () => {
    h = await startHangar({ env: { HANGAR_RUNTIME_CLASS: "gvisor" } });
  });

  afterAll(async () => {
    await h?.dispose();
  });

  it("runs a sandbox created without a class under gVisor and states runtimeClass: gvisor", async () => {
    const res = await api(h, "POST", "/v0/sandboxes", { metadata: { name: "walled" }, spec: { runtime: { memory: 256 } } });
    const created = (await res.json()) as SandboxDoc;
    expect(res.status, JSON.stringify(created)).toBe(200);
    expect(created.status).toBe("DEPLOYED");
    expect(created.spec.runtime.runtimeClass).toBe("gvisor");
    const got = (await (await api(h, "GET", "/v0/sandboxes/walled")).json()) as SandboxDoc;
    expect(got.spec.runtime.runtimeClass).toBe("gvisor");
    // gVisor's kernel answers, not the host's
    expect(await run(h, got, "uname -r")).toMatchObject({ exitCode: 0, stdout: "4.4.0\n" });
  });

  it("still runs a sandbox that asks for the default runtime on the host's kernel", async () => {
    const res = await api(h, "POST", "/v0/sandboxes", { metadata: { name: "plain" }, spec: { runtime: { memory: 256, runtimeClass: "default" } } });
    const created = (await res.json()) as SandboxDoc;
    expect(res.status, JSON.stringify(created)).toBe(200);
    expect(created.spec.runtime.runtimeClass).toBe("default");
    expect(await run(h, created, "uname -r")).toMatchObject({ exitCode: 0, stdout: `${release()}\n` });
  });
});

describe("HANGAR_RUNTIME_CLASS", () => {
  it("stops the server at start when it names an unknown class", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hangar-e2e-"));
    try {
      await expect(startHangar({ dataDir, env: { HANGAR_RUNTIME_CLASS: "kata" } })).rejects.toThrow(/invalid HANGAR_RUNTIME_CLASS: "kata" \(use "default" or "gvisor"\)/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
