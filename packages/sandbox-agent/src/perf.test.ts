// Measures the agent: start-to-HELLO time, spawn+exit round trip of `true`, ping round trip and
// RSS. Prints the numbers; asserts only generous bounds (machines differ, tests run in parallel).
import { execFileSync, spawn as nodeSpawn } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentBinaryPath } from "./binary.js";
import { ENV, rssKiB, startAgent, type AgentHarness } from "../test/harness.js";

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const ms = (x: number) => `${x.toFixed(3)} ms`;

describe("agent performance", () => {
  let h: AgentHarness;
  let startMs = 0;

  beforeAll(async () => {
    const t0 = performance.now();
    h = await startAgent();
    startMs = performance.now() - t0;
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("starts small and fast", async () => {
    const rss = await rssKiB(h.child.pid!);
    const size = (await stat(agentBinaryPath())).size;
    console.log(`agent: binary ${(size / 1024).toFixed(0)} KiB, idle RSS ${rss} KiB, harness start (listen, spawn, HELLO, LIST) ${ms(startMs)}`);
    expect(rss).toBeLessThan(2048);
  });

  it("reaches HELLO about a millisecond after exec", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hangar-bench-"));
    try {
      const bench = join(dir, "bench-start");
      execFileSync("cc", ["-O2", "-o", bench, fileURLToPath(new URL("../test/bench-start.c", import.meta.url))]);
      const out = execFileSync(bench, [agentBinaryPath(), join(dir, "s.sock"), "200"], { encoding: "utf8" });
      console.log(out.trim());
      const p50 = Number(/p50 ([\d.]+)/.exec(out)![1]);
      expect(p50).toBeLessThan(10);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("round-trips spawn of `true` to its exit event quickly", async () => {
    const waiting = new Map<number, () => void>();
    h.client.on("exit", (id) => waiting.get(id)?.());
    const once = async () => {
      const t0 = performance.now();
      const { id } = await h.client.spawn({ argv: ["/bin/true"], env: ENV, cwd: "/" });
      await new Promise<void>((r) => waiting.set(id, r));
      const dt = performance.now() - t0;
      waiting.delete(id);
      await h.client.release(id);
      return dt;
    };
    for (let i = 0; i < 50; i++) await once(); // warm up
    const agent: number[] = [];
    for (let i = 0; i < 1000; i++) agent.push(await once());

    const node: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      await new Promise<void>((r) => nodeSpawn("/bin/true", [], { stdio: "pipe" }).on("exit", () => r()));
      node.push(performance.now() - t0);
    }

    const ping: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now();
      await h.client.ping();
      ping.push(performance.now() - t0);
    }
    const rss = await rssKiB(h.child.pid!);
    console.log(
      `spawn(/bin/true) -> exit through the agent: p50 ${ms(pct(agent, 0.5))}, p99 ${ms(pct(agent, 0.99))} (n=1000)\n` +
        `node child_process.spawn(/bin/true) -> exit: p50 ${ms(pct(node, 0.5))}, p99 ${ms(pct(node, 0.99))} (n=200)\n` +
        `ping round trip: p50 ${ms(pct(ping, 0.5))}, p99 ${ms(pct(ping, 0.99))} (n=2000)\n` +
        `agent RSS after 1050 spawns: ${rss} KiB`,
    );
    expect(pct(agent, 0.5)).toBeLessThan(5);
    expect(pct(ping, 0.5)).toBeLessThan(1);
  });
});
