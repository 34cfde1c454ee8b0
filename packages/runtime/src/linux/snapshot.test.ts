// Snapshots and forks against the real kernel: a running sandbox is captured without stopping
// (files, and with CRIU its processes and memory), and a new sandbox — its own id, name, address
// and cgroup — starts from the capture with the counter process still counting; files-only
// captures start afresh on the files. Runs where CRIU ≥ 4.2 is installed for the process part.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { existsSync, promises as fs } from "node:fs";
import { LinuxDriver } from "./driver.js";
import { DEFAULT_CRIU_DIR } from "./criu.js";
import { linuxDriverAvailable, testDriverOptions, freshDriver, spec, agentSh } from "./testkit.js";
import { sleep } from "./proc.js";

const opts = testDriverOptions("snp", 8, process.env.HANGAR_TEST_LOG ? { logger: (await import("pino")).pino({ level: "info" }) } : {});
const criu = existsSync(`${DEFAULT_CRIU_DIR}/criu`);
const dir = "/var/tmp/hangar-test-snp-snapshots";

const COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done";
const count = async (h: Parameters<typeof agentSh>[0]) => Number((await agentSh(h, "cat /tmp/count")).stdout.trim());

describe.skipIf(!linuxDriverAvailable())("LinuxDriver snapshots and forks", () => {
  let d: LinuxDriver;

  beforeAll(async () => {
    d = await freshDriver(opts);
    await fs.rm(dir, { recursive: true, force: true });
  }, 300_000);

  afterAll(async () => {
    await d?.purge();
    await fs.rm(dir, { recursive: true, force: true });
  }, 60_000);

  it.skipIf(!criu)("forks a running sandbox with its processes into a new identity; the source keeps running", async () => {
    const src = await d.create(spec("s1"));
    await agentSh(src, "echo hello > /root/a.txt");
    const p = await src.agent.spawn({ argv: ["sh", "-c", COUNTER], env: src.env, cwd: "/" });
    await sleep(300);
    const cap = await d.snapshot(src.id, `${dir}/s1`, { processes: true });
    expect(cap, cap.reason).toMatchObject({ processes: true });
    // the source carries on: its agent is back, its counter counts
    const c0 = await count(src);
    await sleep(200);
    expect(await count(src)).toBeGreaterThan(c0);

    const t0 = performance.now();
    const fork = await d.createFrom(spec("f1", { name: "the-fork" }), `${dir}/s1`, { processes: true });
    const ms = performance.now() - t0;
    expect(fork.recovered).toBeUndefined();
    expect(fork.address).not.toBe(src.address);
    const f0 = await count(fork);
    await sleep(300);
    expect(await count(fork)).toBeGreaterThan(f0);
    const procs = await fork.agent.listProcesses();
    expect(procs.find((x) => x.id === p.id)?.running).toBe(true);
    const out = await agentSh(fork, "cat /root/a.txt; hostname; ip -4 -o addr show eth0 | awk '{print $4}'");
    expect(out.stdout.split("\n")).toEqual(["hello", "the-fork", `${fork.address}/30`, ""]);
    // the two are apart: a file written in one is not in the other
    await agentSh(fork, "echo fork > /root/only-fork");
    expect((await agentSh(src, "test -e /root/only-fork || echo absent")).stdout).toBe("absent\n");
    console.log(`[snapshot] fork with processes: ${ms.toFixed(0)} ms`);
    await d.destroy(fork.id);
    // the source is unharmed by the fork's removal
    expect((await agentSh(src, "cat /root/a.txt")).stdout).toBe("hello\n");
    await d.destroy(src.id);
  }, 120_000);

  it("starts a sandbox from a files-only snapshot, even after its source is gone", async () => {
    const src = await d.create(spec("s2"));
    await agentSh(src, "mkdir -p /data && echo kept > /data/f && rm -f /etc/motd");
    const cap = await d.snapshot(src.id, `${dir}/s2`, { processes: false });
    expect(cap.processes).toBe(false);
    await d.destroy(src.id);
    const h = await d.createFrom(spec("f2"), `${dir}/s2`, { processes: true });
    expect(h.recovered).toMatch(/files only/);
    expect((await agentSh(h, "cat /data/f; test -e /etc/motd || echo motd-gone")).stdout).toBe("kept\nmotd-gone\n");
    await d.destroy(h.id);
  }, 120_000);
});
