// Helpers for the linux driver's tests: one isolated driver per test file (own run dir, state
// dir, cgroup parent, netns/veth prefix, nft table and address range), purged before and after.

import { existsSync } from "node:fs";
import type { ImageStore } from "../images/types.js";
import type { RuntimeSandboxSpec, SandboxHandle } from "../driver.js";
import type { ExitInfo } from "@hangar/sandbox-agent";
import { LinuxDriver, findCommand, type LinuxDriverOptions } from "./driver.js";
import { LocalImageStore, DEFAULT_IMAGE_CACHE_DIR } from "../images/store.js";
import { BASE_REF } from "../images/refs.js";

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

/** The built-in Debian base image, from the machine-wide image cache (built on first use). */
export const TEST_IMAGE = BASE_REF;

export function testImages(): ImageStore {
  return new LocalImageStore({ dir: DEFAULT_IMAGE_CACHE_DIR });
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

export interface RunOutput {
  code: number | null;
  signal: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command through the sandbox's agent and collects its output. */
export async function agentRun(
  h: SandboxHandle,
  argv: string[],
  o: { uid?: number; gid?: number; cwd?: string; stdin?: Buffer | string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunOutput> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let id = -1;
  const early: Array<[number, 1 | 2, Buffer]> = [];
  let done!: (info: ExitInfo) => void;
  const exited = new Promise<ExitInfo>((r) => (done = r));
  const earlyExit = new Map<number, ExitInfo>();
  const onOutput = (pid: number, stream: 1 | 2, data: Buffer) => {
    if (id === -1) early.push([pid, stream, data]);
    else if (pid === id) (stream === 1 ? out : err).push(data);
  };
  const onExit = (pid: number, info: ExitInfo) => {
    if (id === -1) earlyExit.set(pid, info);
    else if (pid === id) done(info);
  };
  h.agent.on("output", onOutput);
  h.agent.on("exit", onExit);
  try {
    const p = await h.agent.spawn({
      argv,
      env: o.env ?? h.env,
      cwd: o.cwd ?? h.image.workingDir,
      ...(o.uid !== undefined ? { uid: o.uid } : {}),
      ...(o.gid !== undefined ? { gid: o.gid } : {}),
      stdin: o.stdin !== undefined,
    });
    id = p.id;
    for (const [pid, s, d] of early) if (pid === id) (s === 1 ? out : err).push(d);
    const e = earlyExit.get(id);
    if (e) done(e);
    if (o.stdin !== undefined) {
      if (o.stdin.length) await h.agent.writeStdin(id, Buffer.from(o.stdin));
      await h.agent.closeStdin(id);
    }
    let timer: NodeJS.Timeout | undefined;
    const info = await Promise.race([
      exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${argv.join(" ")} timed out`)), o.timeoutMs ?? 60_000);
      }),
    ]).finally(() => clearTimeout(timer));
    await h.agent.release(id).catch(() => {});
    return { code: info.exitCode, signal: info.signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  } finally {
    h.agent.off("output", onOutput);
    h.agent.off("exit", onExit);
  }
}

/** `sh -c script` through the agent. */
export function agentSh(h: SandboxHandle, script: string, o: Parameters<typeof agentRun>[2] = {}): Promise<RunOutput> {
  return agentRun(h, ["sh", "-c", script], o);
}
