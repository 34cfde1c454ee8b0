// The lxcfs supervisor: starts a daemon detached, sees it die or hang, starts it again once.

import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Lxcfs } from "./lxcfs.js";

const lx = new Lxcfs({ dir: mkdtempSync(join(tmpdir(), "hangar-lxcfs-unit-")) });

describe.skipIf(!lx.installed || process.getuid?.() !== 0)("lxcfs supervisor", () => {
  afterAll(async () => {
    await lx.stop();
    rmSync(lx.dir, { recursive: true, force: true });
  });

  it("starts one daemon, finds it again, and starts another after it died or hung", async () => {
    const pid = await lx.ensure();
    expect(pid).toBeGreaterThan(1);
    expect(await lx.alive()).toBe(true);
    expect(readFileSync(`${lx.mount}/proc/meminfo`, "utf8")).toMatch(/^MemTotal:/);
    expect(lx.binds().map(([, d]) => d)).toEqual(expect.arrayContaining(["/proc/meminfo", "/proc/cpuinfo", "/sys/devices/system/cpu/online"]));
    // a second ensure (another server) adopts the running daemon
    expect(await new Lxcfs({ dir: lx.dir }).ensure()).toBe(pid);

    process.kill(pid!, "SIGKILL");
    await new Promise((r) => setTimeout(r, 200));
    expect(await lx.alive()).toBe(false);
    const again = await lx.ensure();
    expect(again).not.toBe(pid);
    expect(await lx.alive()).toBe(true);

    // hung (stopped): its reads time out; it is killed and replaced
    process.kill(again!, "SIGSTOP");
    const t0 = Date.now();
    const third = await lx.ensure();
    expect(third).not.toBe(again);
    expect(Date.now() - t0).toBeLessThan(8_000);
    expect(existsSync(`/proc/${again}`) && readFileSync(`/proc/${again}/stat`, "utf8").split(" ")[2] !== "Z").toBe(false);
  }, 30_000);
});
