// An operator drives Hangar from a terminal with the `hangar` command.

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, type RunningHangar, startHangar } from "./harness.js";

let h: RunningHangar;
let home: string;

function hangar(args: string[], input?: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: "utf8",
    input,
    env: { ...process.env, HANGAR_CONFIG: join(home, "config.json"), HANGAR_URL: "", HANGAR_API_KEY: "", HANGAR_WORKSPACE: "", ...env },
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  h = await startHangar();
  home = mkdtempSync(join(tmpdir(), "hangar-cli-"));
});

afterAll(async () => {
  await h?.dispose();
  rmSync(home, { recursive: true, force: true });
});

describe("the hangar CLI", () => {
  it("logs in and keeps the key in a private config file", () => {
    const bad = hangar(["--url", h.url, "--api-key", "hgr_wrong", "login"]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/401/);
    const ok = hangar(["--url", h.url, "--api-key", h.apiKey, "-w", "default", "login"]);
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/logged in/);
    expect(statSync(join(home, "config.json")).mode & 0o777).toBe(0o600);
  });

  it("applies a manifest (create, then configure) and lists it in each format", () => {
    const manifest = join(home, "box.yaml");
    writeFileSync(
      manifest,
      `apiVersion: blaxel.ai/v1alpha1\nkind: Sandbox\nmetadata:\n  name: cli-box\n  labels: {tier: one}\nspec:\n  runtime:\n    memory: 512\n    envs: [{name: WHO, value: cli}]\n---\nkind: Sandbox\nmetadata:\n  name: cli-box-2\nspec:\n  runtime: {memory: 256}\n`,
    );
    const first = hangar(["apply", "-f", manifest]);
    expect(first.code, first.err).toBe(0);
    expect(first.out).toBe("sandbox/cli-box created\nsandbox/cli-box-2 created\n");
    writeFileSync(manifest, `kind: Sandbox\nmetadata:\n  name: cli-box\n  labels: {tier: two}\nspec:\n  runtime:\n    memory: 512\n    envs: [{name: WHO, value: cli}]\n`);
    const again = hangar(["apply", "-f", manifest]);
    expect(again.out).toBe("sandbox/cli-box configured\n");

    const json = JSON.parse(hangar(["get", "sandbox", "cli-box", "-o", "json"]).out) as { metadata: { labels: Record<string, string> }; status: string };
    expect(json.metadata.labels).toEqual({ tier: "two" });
    expect(json.status).toBe("DEPLOYED");
    const table = hangar(["get", "sandboxes"]).out.split("\n");
    expect(table[0]).toMatch(/^NAME\s+STATUS\s+STATE\s+IMAGE\s+MEMORY\s+AGE$/);
    expect(table.some((l) => /^cli-box\s+DEPLOYED\s+RUNNING\s+blaxel\/base-image:latest\s+512MB/.test(l))).toBe(true);
    expect(hangar(["get", "sandboxes", "-o", "yaml"]).out).toMatch(/name: cli-box-2/);
  });

  it("execs with streamed output and the command's exit code", () => {
    const r = hangar(["exec", "cli-box", "--", "sh", "-c", "echo out-$WHO; echo err >&2; exit 7"]);
    expect(r.out).toBe("out-cli\n");
    expect(r.err).toBe("err\n");
    expect(r.code).toBe(7);
    expect(hangar(["exec", "cli-box", "--", "true"]).code).toBe(0);
  });

  it("prints and follows process logs", () => {
    hangar(["exec", "cli-box", "--", "true"]);
    const start = spawnSync("curl", ["-s", "-XPOST", `${h.url}/run/default/sandboxes/cli-box/process`, "-H", `authorization: Bearer ${h.apiKey}`, "-H", "content-type: application/json", "-d", JSON.stringify({ name: "ticker", command: "for i in 1 2 3; do echo tick $i; sleep 0.2; done" })]);
    expect(start.status).toBe(0);
    const follow = hangar(["logs", "cli-box", "ticker", "-f"]);
    expect(follow.code, follow.err).toBe(0);
    expect(follow.out).toBe("tick 1\ntick 2\ntick 3\n");
    expect(hangar(["logs", "cli-box", "ticker"]).out).toBe("tick 1\ntick 2\ntick 3\n");
  });

  it("manages workspaces and keys", () => {
    expect(hangar(["workspaces", "create", "cli-team"]).code).toBe(0);
    expect(hangar(["workspaces", "list"]).out).toMatch(/cli-team/);
    const created = hangar(["api-keys", "create", "ci", "--grant", "cli-team"]);
    expect(created.code, created.err).toBe(0);
    const key = created.out.trim();
    expect(key).toMatch(/^hgr_/);
    const asNew = hangar(["--api-key", key, "-w", "cli-team", "get", "sandboxes", "-o", "json"]);
    expect(asNew.code, asNew.err).toBe(0);
    expect(JSON.parse(asNew.out)).toEqual([]);
    const listed = JSON.parse(hangar(["-w", "cli-team", "api-keys", "list", "-o", "json"]).out) as { id: string; name: string }[];
    const id = listed.find((k) => k.name === "ci")!.id;
    expect(hangar(["-w", "cli-team", "api-keys", "revoke", id]).code).toBe(0);
    expect(hangar(["--api-key", key, "-w", "cli-team", "get", "sandboxes"]).code).not.toBe(0);
  });

  it("fails clearly: unknown sandbox, unknown kind, bad manifest, unreachable server", () => {
    const missing = hangar(["get", "sandbox", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/404: sandbox 'nope' not found/);
    expect(hangar(["get", "gizmos"]).err).toMatch(/unknown kind/);
    const bad = join(home, "bad.yaml");
    writeFileSync(bad, "kind: Sandbox\nmetadata: {name: Bad_Name}\n");
    expect(hangar(["apply", "-f", bad]).err).toMatch(/400: metadata.name/);
    const down = hangar(["--url", "http://127.0.0.1:1", "get", "sandboxes"]);
    expect(down.code).toBe(1);
    expect(down.err).toMatch(/cannot reach Hangar/);
  });

  it("deletes and waits until the sandbox is gone", () => {
    const r = hangar(["delete", "sandbox", "cli-box-2", "--wait"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe("sandbox/cli-box-2 deleted\n");
    expect(hangar(["get", "sandbox", "cli-box-2"]).code).toBe(1);
  });
});
