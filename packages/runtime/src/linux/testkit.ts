// Helpers for the linux driver's tests: one isolated driver per test file (own run dir, state
// dir, cgroup parent, netns/veth prefix, nft table and address range), purged before and after.

import { existsSync } from "node:fs";
import type { ImageStore } from "../images/types.js";
import type { RuntimeSandboxSpec } from "../driver.js";
import { LinuxDriver, findCommand, type LinuxDriverOptions } from "./driver.js";
import { DevImageStore } from "./dev-image-store.js";

/** True where the driver can run: root, crun, cgroup v1 controllers. */
export function linuxDriverAvailable(): boolean {
  return (
    process.platform === "linux" &&
    process.getuid?.() === 0 &&
    !!findCommand("crun") &&
    !!findCommand("gcc") &&
    // cgroup v1 (or nothing mounted yet, which preflight fixes); pure cgroup v2 is not supported
    !existsSync("/sys/fs/cgroup/cgroup.controllers")
  );
}

export const TEST_IMAGE = "hangar/dev-bookworm";

export function testImages(): ImageStore {
  return new DevImageStore();
}

/** Options of the test driver `name` (a-z, ≤ 5 chars) using 10.89.<net>.0/24. */
export function testDriverOptions(name: string, net: number, extra: Partial<LinuxDriverOptions> = {}): LinuxDriverOptions {
  return {
    stateDir: `/var/tmp/hangar-test-${name}`,
    runDir: `/run/hangar-test-${name}`,
    launcherDir: "/var/tmp/hangar-test-bin",
    images: testImages(),
    cgroupParent: `hangar-test-${name}`,
    network: { prefix: `t${name}`, table: `hangar_test_${name}`, cidr: `10.89.${net}.0/24`, poolSize: 2, refillDelayMs: 10 },
    connectTimeoutMs: 15_000,
    ...extra,
  };
}

/** A driver with everything a previous (crashed) run of the same test left behind removed. */
export async function freshDriver(opts: LinuxDriverOptions): Promise<LinuxDriver> {
  await new LinuxDriver(opts).purge();
  const d = new LinuxDriver(opts);
  await d.preflight();
  return d;
}

export function spec(id: string, over: Partial<RuntimeSandboxSpec> = {}): RuntimeSandboxSpec {
  return { id, name: `sb-${id}`, workspace: "test", image: TEST_IMAGE, memoryMb: 256, envs: {}, ports: [], ...over };
}
