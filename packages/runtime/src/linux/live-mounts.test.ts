// Mounts into a running sandbox against the real kernel: a host directory (or a directory beneath
// it) appears at a path resolved inside the sandbox, idmapped (host uid 0 on disk = uid 0 inside),
// read-only when asked; paths that lead outside the sandbox's own filesystem, or symlinks in the
// source, are refused and mount nothing; mounts come back after a restart; binds given at creation
// (volumes) are there from the start.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, promises as fs, readFileSync, rmSync, statSync } from "node:fs";
import type { SandboxHandle } from "../driver.js";
import type { LinuxDriver } from "./driver.js";
import { agentSh, freshDriver, linuxDriverAvailable, spec, testDriverOptions } from "./testkit.js";

const opts = testDriverOptions("lmnt", 21);
const skip = !linuxDriverAvailable();
let d: LinuxDriver;
let h: SandboxHandle;
let src: string;
let bind: string;

describe.skipIf(skip)("live mounts (linux driver)", () => {
  beforeAll(async () => {
    d = await freshDriver(opts);
    // world-traversable host dirs (a bind is reopened from the sandbox's user namespace)
    src = mkdtempSync("/var/tmp/hangar-lmnt-src-");
    bind = mkdtempSync("/var/tmp/hangar-lmnt-bind-");
    await fs.chmod(src, 0o755);
    await fs.chmod(bind, 0o755);
    await fs.chown(bind, 1_000_000_000, 1_000_000_000);
    await fs.writeFile(`${src}/host.txt`, "from the host");
    await fs.writeFile(`${bind}/vol.txt`, "bound at creation");
    h = await d.create(spec("lmnt1", { mounts: [{ source: bind, destination: "/vol", readOnly: false }] }));
  });

  afterAll(async () => {
    await d?.purge();
    rmSync(src, { recursive: true, force: true });
    rmSync(bind, { recursive: true, force: true });
  });

  it("binds a host directory given at creation", async () => {
    const r = await agentSh(h, "cat /vol/vol.txt && stat -c %u /vol && echo x > /vol/new.txt");
    expect(r.stdout).toBe("bound at creation0\n");
    expect(statSync(`${bind}/new.txt`).uid).toBe(1_000_000_000);
  });

  it("mounts a directory into the running sandbox, idmapped, and unmounts it", async () => {
    await d.mountLive("lmnt1", { source: src, destination: "/mnt/a/b", readOnly: false, meta: { k: "v" } });
    const r = await agentSh(h, "cat /mnt/a/b/host.txt; stat -c %u /mnt/a/b/host.txt /mnt/a; echo inside > /mnt/a/b/in.txt");
    expect(r.stdout).toBe("from the host0\n0\n");
    // written by the sandbox's root: root on disk (idmapped), not the range's uid
    expect(statSync(`${src}/in.txt`).uid).toBe(0);
    expect(await d.liveMounts("lmnt1")).toEqual([{ source: src, destination: "/mnt/a/b", readOnly: false, meta: { k: "v" } }]);
    expect(await d.unmountLive("lmnt1", "/mnt/a/b")).toBe(true);
    expect((await agentSh(h, "ls /mnt/a/b | wc -l")).stdout).toBe("0\n");
    expect(await d.liveMounts("lmnt1")).toEqual([]);
  });

  it("mounts a directory beneath the source read-only, made if missing", async () => {
    await d.mountLive("lmnt1", { source: src, sourcePath: "sub/dir", destination: "/ro", readOnly: true });
    expect(statSync(`${src}/sub/dir`).isDirectory()).toBe(true);
    const r = await agentSh(h, "touch /ro/x 2>&1; echo rc=$?");
    expect(r.stdout).toMatch(/Read-only file system/);
    await d.unmountLive("lmnt1", "/ro");
  });

  it("refuses destinations outside the sandbox's own filesystem and symlinks in the source, mounting nothing", async () => {
    const before = (await agentSh(h, "wc -l < /proc/self/mountinfo")).stdout;
    await agentSh(h, "ln -sfn /proc /tmp/p; ln -sfn / /tmp/r; ln -sfn /nonexistent-host-path /tmp/h");
    await fs.symlink("/etc", `${src}/link`);
    for (const [destination, sourcePath] of [["/proc/x", undefined], ["/tmp/p/y", undefined], ["/tmp/r", undefined], ["/tmp/h", undefined], ["/vol", undefined], ["/sys/kernel", undefined], ["/mnt/ok", "link"], ["/mnt/ok", "../"]] as const) {
      await expect(d.mountLive("lmnt1", { source: src, ...(sourcePath ? { sourcePath } : {}), destination, readOnly: false }), `${destination} ${sourcePath}`).rejects.toMatchObject({ code: "invalid_path" });
    }
    expect((await agentSh(h, "wc -l < /proc/self/mountinfo")).stdout).toBe(before);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain("nonexistent-host-path");
    expect(await d.liveMounts("lmnt1")).toEqual([]);
  });

  it("mounts again after the sandbox restarts", async () => {
    await d.mountLive("lmnt1", { source: src, destination: "/again", readOnly: false });
    h = await d.restart("lmnt1", spec("lmnt1", { mounts: [{ source: bind, destination: "/vol", readOnly: false }] }));
    expect((await agentSh(h, "cat /again/host.txt /vol/vol.txt")).stdout).toBe("from the hostbound at creation");
  });
});
