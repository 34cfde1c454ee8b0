// Builds from source: a small Node app (npm install of one package from the registry, then the
// source) deployed through the upload API, cold and unchanged, against `buildah bud` of the same
// context run directly by root in the same run.

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RunningHangar, api, zipFiles } from "@hangar/testkit";
import { type Dist, type Row, dist, fmt, has, run } from "./stats.js";


const APP = (salt: string): Record<string, string> => ({
  Dockerfile: ["FROM hangar/base", "ARG NODE_EXTRA_CA_CERTS", "WORKDIR /srv", "COPY package.json ./", "RUN npm install --no-audit --no-fund", "COPY . .", `RUN echo ${salt} > /srv/salt`, 'CMD ["node", "server.js"]', ""].join("\n"),
  "package.json": JSON.stringify({ name: "bench-app", version: "1.0.0", private: true, dependencies: { ms: "2.1.3" } }),
  "server.js": "require('http').createServer((q, s) => s.end(require('ms')(60000))).listen(3000);\n",
});

/** Uploads a context as sandbox `name` and waits for DEPLOYED; ms from the upload request to DEPLOYED. */
async function deploy(h: RunningHangar, name: string, files: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const res = await api(h, "PUT", `/v0/sandboxes/${name}?upload=true`, { metadata: { name, labels: { "x-blaxel-auto-generated": "true" } }, spec: { runtime: { memory: 2048 } } });
  const url = res.headers.get("x-blaxel-upload-url");
  if (!url) throw new Error(`no upload URL: ${res.status} ${await res.text()}`);
  const up = await fetch(url, { method: "PUT", headers: { "content-type": "application/zip" }, body: zipFiles(files) });
  if (up.status !== 200) throw new Error(`upload: ${up.status} ${await up.text()}`);
  for (;;) {
    const s = (await (await api(h, "GET", `/v0/sandboxes/${name}`)).json()) as { status: string; events: { message: string }[] };
    if (s.status === "DEPLOYED") return performance.now() - t0;
    if (s.status === "FAILED") throw new Error(`build failed: ${s.events.at(-1)?.message}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `buildah bud` as root of the same context (peer), with the base image imported once. */
async function peerBuild(dir: string, files: Record<string, string>, env: NodeJS.ProcessEnv, noCache: boolean): Promise<number> {
  for (const [f, c] of Object.entries(files)) writeFileSync(join(dir, f), c);
  const t0 = performance.now();
  // the host's trust store for npm, as Hangar gives its builds
  const trust = ["-v", "/etc/ssl/certs/ca-certificates.crt:/.bench-ca.crt:ro", "--build-arg", "NODE_EXTRA_CA_CERTS=/.bench-ca.crt"];
  await run("buildah", ["bud", "--pull=never", "--layers", ...(noCache ? ["--no-cache"] : []), "--isolation=oci", "--network=host", ...trust, "-q", "-t", "localhost/bench-app", dir], { env });
  return performance.now() - t0;
}

export async function benchBuild(h: RunningHangar, lowerDir: string, out: { rows: Row[]; notes: string[]; log: (m: string) => void }): Promise<void> {
  if (!has("buildah")) throw new Error("buildah is not installed");
  const { rows, log } = out;
  const root = mkdtempSync(join(tmpdir(), "hangar-bench-buildah-"));
  const conf = join(root, "containers.conf");
  const storage = join(root, "storage.conf");
  writeFileSync(conf, '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n');
  writeFileSync(storage, `[storage]\ndriver = "overlay"\nrunroot = "${root}/run"\ngraphroot = "${root}/graph"\n`);
  const env = { ...process.env, CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storage, TMPDIR: root };
  try {
    log("build: handing the base image to both builders (once each)");
    await run("sh", ["-c", `c=$(buildah from scratch) && buildah copy -q "$c" '${lowerDir}/' / >/dev/null && buildah commit -q --rm "$c" localhost/hangar/base >/dev/null`], { env });
    await deploy(h, "bench-warm", { Dockerfile: "FROM hangar/base\nRUN true\n" });

    const ctx = join(root, "ctx");
    spawnSync("mkdir", ["-p", ctx]);
    const cold: number[] = [];
    const peerCold: number[] = [];
    for (let i = 0; i < 3; i++) {
      // a new salt each round: nothing of the app's steps is cached on either side
      const files = APP(`cold-${Date.now()}-${i}`);
      files["package.json"] = JSON.stringify({ ...JSON.parse(files["package.json"]!), description: `round ${i} ${Date.now()}` });
      peerCold.push(await peerBuild(ctx, files, env, true));
      cold.push(await deploy(h, `bench-cold-${i}`, files));
    }
    const c = dist(cold);
    const p = dist(peerCold);
    rows.push({
      measure: "cold build of a small Node app → DEPLOYED (API)",
      hangar: `p50 ${fmt(c.p50)} ms`,
      peer: `buildah bud (root, no cache): p50 ${fmt(p.p50)} ms`,
      ratio: `${(c.p50 / p.p50).toFixed(2)}×`,
      target: "≤ 1.1×",
      met: c.p50 / p.p50 <= 1.1,
    });

    const files = APP("warm");
    await deploy(h, "bench-rebuild", files);
    const again: number[] = [];
    for (let i = 0; i < 7; i++) again.push(await deploy(h, "bench-rebuild", files));
    const peerAgain: number[] = [];
    for (let i = 0; i < 3; i++) peerAgain.push(await peerBuild(ctx, files, env, false));
    const a: Dist = dist(again);
    const pa = dist(peerAgain);
    rows.push({
      measure: "unchanged rebuild → DEPLOYED (API)",
      hangar: `p50 ${fmt(a.p50)} ms, p90 ${fmt(a.p90)} ms`,
      peer: `buildah bud (cached): p50 ${fmt(pa.p50)} ms`,
      ratio: `${(a.p50 / pa.p50).toFixed(2)}×`,
      target: "p50 ≤ 1 s",
      met: a.p50 <= 1000,
    });
  } finally {
    spawnSync("sh", ["-c", "buildah rm --all >/dev/null 2>&1; buildah rmi --all --force >/dev/null 2>&1"], { env });
    spawnSync("sh", ["-c", `buildah unshare rm -rf '${root}' 2>/dev/null; rm -rf '${root}'`]);
    rmSync(root, { recursive: true, force: true });
  }
}
