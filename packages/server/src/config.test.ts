import { totalmem } from "node:os";
import { describe, expect, it } from "vitest";
import { loadConfig, parseMemory, parseRegions } from "./config.js";

describe("configuration", () => {
  it("reads memory sizes as a share of the host or with binary units", () => {
    expect(parseMemory("10%", "x")).toBe(Math.round(totalmem() / 10));
    expect(parseMemory("512MiB", "x")).toBe(512 * 1024 ** 2);
    expect(parseMemory("2G", "x")).toBe(2 * 1024 ** 3);
    expect(parseMemory("4096", "x")).toBe(4096);
    for (const bad of ["", "lots", "150%", "-1G"]) expect(() => parseMemory(bad, "HANGAR_STANDBY_MEMORY_LOW")).toThrow(/HANGAR_STANDBY_MEMORY_LOW/);
  });

  it("takes flags over the environment and defaults the rest", () => {
    const c = loadConfig({ port: 9000 }, { HANGAR_PORT: "7000", HANGAR_STANDBY_IDLE: "30s", HANGAR_RUN_DIR: "/run/h2", HANGAR_DATA_DIR: "/tmp/hg" });
    expect(c.port).toBe(9000);
    expect(c.standbyIdleMs).toBe(30_000);
    expect(c.checkpointAfterMs).toBe(600_000);
    expect(c.runDir).toBe("/run/h2");
    expect(c.cgroupParent).toBeUndefined();
    expect(c.memoryLowBytes).toBe(Math.round(totalmem() / 10));
    expect(() => loadConfig({}, { HANGAR_PORT: "99999" })).toThrow(/port/);
  });

  it("takes the node's runtime class from HANGAR_RUNTIME_CLASS and refuses unknown ones", () => {
    expect(loadConfig({}, {}).runtimeClass).toBe("default");
    expect(loadConfig({}, { HANGAR_RUNTIME_CLASS: "gvisor" }).runtimeClass).toBe("gvisor");
    expect(() => loadConfig({}, { HANGAR_RUNTIME_CLASS: "kata" })).toThrow(/invalid HANGAR_RUNTIME_CLASS: "kata" \(use "default" or "gvisor"\)/);
  });

  it("takes the regions from HANGAR_REGIONS, the default first, and refuses bad names", () => {
    expect(loadConfig({}, {}).regions).toEqual(["local-1"]);
    expect(loadConfig({}, { HANGAR_REGIONS: "eu-par-1, eu-par-2" }).regions).toEqual(["eu-par-1", "eu-par-2"]);
    expect(() => parseRegions(" , ")).toThrow(/invalid HANGAR_REGIONS/);
    expect(() => parseRegions("EU_1")).toThrow(/"EU_1" is not a region name/);
    expect(() => parseRegions("a-1,a-1")).toThrow(/names a region twice/);
  });

  it("serves previews on a port each by default, from HANGAR_PREVIEW_PORTS, and by host name under HANGAR_PREVIEW_DOMAIN", () => {
    const c = loadConfig({}, {});
    expect(c.previewDomain).toBeUndefined();
    expect(c.previewPorts).toEqual({ first: 20_000, last: 20_999 });
    expect(loadConfig({}, { HANGAR_PREVIEW_PORTS: "30000 - 30009" }).previewPorts).toEqual({ first: 30_000, last: 30_009 });
    expect(loadConfig({}, { HANGAR_PREVIEW_DOMAIN: "Preview.Example.com." }).previewDomain).toBe("preview.example.com");
    for (const bad of ["20000", "0-10", "2000-1000", "1-70000", "a-b"]) expect(() => loadConfig({}, { HANGAR_PREVIEW_PORTS: bad })).toThrow(/invalid HANGAR_PREVIEW_PORTS/);
  });
});
