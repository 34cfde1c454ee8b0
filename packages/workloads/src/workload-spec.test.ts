import { describe, expect, it } from "vitest";
import { appPort, isCodeModeImage, normalizeWorkloadSpec, revisionKey } from "./workload-spec.js";

describe("workload spec", () => {
  it("fills defaults and keys revisions on what runs, not on labels or triggers", () => {
    const a = normalizeWorkloadSpec({ runtime: { image: "hangar/base", envs: [{ name: "A", value: "1" }] } });
    expect(a).toMatchObject({ enabled: true, public: false, runtime: { memory: 2048, minScale: 0, maxScale: 10 } });
    expect(appPort(a.runtime)).toBe(80);
    const b = normalizeWorkloadSpec({ runtime: { image: "hangar/base", envs: [{ name: "A", value: "1" }] }, public: true, triggers: [{ type: "http" }] });
    expect(revisionKey(b.runtime)).toBe(revisionKey(a.runtime));
    const c = normalizeWorkloadSpec({ runtime: { image: "hangar/base", envs: [{ name: "A", value: "2" }] } });
    expect(revisionKey(c.runtime)).not.toBe(revisionKey(a.runtime));
    expect(appPort(normalizeWorkloadSpec({ runtime: { ports: [{ target: 3000 }] } }).runtime)).toBe(3000);
  });

  it("refuses bad input naming the field", () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ runtime: { memory: "lots" } }, /spec\.runtime\.memory/],
      [{ runtime: { minScale: 5, maxScale: 2 } }, /minScale/],
      [{ runtime: { transport: "pigeon" } }, /transport/],
      [{ public: "yes" }, /spec\.public/],
      [{ triggers: [{ type: "http-async", configuration: { callbackUrl: "ftp://x" } }] }, /callbackUrl/],
      [{ triggers: [{ type: "smoke-signal" }] }, /spec\.triggers\[0\]\.type/],
    ];
    for (const [spec, re] of bad) expect(() => normalizeWorkloadSpec(spec)).toThrow(re);
  });

  it("takes a stdio MCP server (served by Hangar's bridge) as a function transport that makes its own revision", () => {
    const http = normalizeWorkloadSpec({ runtime: { image: "i", transport: "http-stream" } });
    const ws = normalizeWorkloadSpec({ runtime: { image: "i", transport: "websocket" } });
    const stdio = normalizeWorkloadSpec({ runtime: { image: "i", transport: "stdio" } });
    expect(stdio.runtime.transport).toBe("stdio");
    expect(revisionKey(ws.runtime)).toBe(revisionKey(http.runtime));
    expect(revisionKey(stdio.runtime)).not.toBe(revisionKey(http.runtime));
  });

  it("knows Blaxel's code-mode image by its names", () => {
    for (const ref of ["blaxel/code-mode", "blaxel/code-mode:latest", "docker.io/blaxel/code-mode:latest", "docker://blaxel/code-mode"]) expect(isCodeModeImage(ref)).toBe(true);
    for (const ref of ["blaxel/code-mode:v2", "blaxel/base-image:latest", "evil/blaxel/code-mode", undefined]) expect(isCodeModeImage(ref)).toBe(false);
  });
});

describe("integration connections", () => {
  it("takes a list of names (deduplicated), refuses other shapes, and a change of the list is a new revision", () => {
    const a = normalizeWorkloadSpec({ integrationConnections: ["gmail", "gmail"], runtime: { type: "mcp" } });
    expect(a.integrationConnections).toEqual(["gmail"]);
    expect(a.runtime.type).toBe("mcp");
    expect(() => normalizeWorkloadSpec({ integrationConnections: "gmail" })).toThrow(/integrationConnections/);
    expect(() => normalizeWorkloadSpec({ integrationConnections: [1] })).toThrow(/integrationConnections/);
    expect(normalizeWorkloadSpec({ integrationConnections: [] }).integrationConnections).toBeUndefined();
    expect(revisionKey(a.runtime, ["gmail"])).not.toBe(revisionKey(a.runtime, ["other"]));
    // no connections: the key of a spec without them (existing revisions are not redeployed)
    expect(revisionKey(a.runtime, [])).toBe(revisionKey(a.runtime));
  });
});
