// Storage: 1 GiB sequential write and read on a volume (ext4 image on a loop device) and on a
// drive (idmapped directory) inside a sandbox, against the same dd on the host disk in the same
// run; and mounting a drive into a running sandbox through the sandbox API, p50.
//
// Writes end with fdatasync; reads bypass the page cache (iflag=direct), and the host's cached
// pages of the file read (or of the volume's image) are dropped first (posix_fadvise, dd nocache).
// Three rounds with the host, the volume and the drive interleaved; medians.

import { join } from "node:path";
import { type RunningHangar, api } from "@hangar/testkit";
import { type Row, dist, fmt, run } from "./stats.js";

const MIB = 1024;

/** MB/s from dd's summary line ("… copied, 1.23 s, 873 MB/s"). */
function rate(ddStderr: string): number {
  const m = /copied, ([\d.]+) s/.exec(ddStderr);
  if (!m) throw new Error(`dd said: ${ddStderr.slice(-300)}`);
  return (MIB * 1.048576) / Number(m[1]);
}

async function exec(h: RunningHangar, name: string, command: string): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await api(h, "POST", `/run/default/sandboxes/${name}/process`, { command, workingDir: "/", waitForCompletion: true, timeout: 600 });
  if (!r.ok) throw new Error(`exec in ${name}: ${r.status} ${await r.text()}`);
  return (await r.json()) as { stdout: string; stderr: string; exitCode: number };
}

const WRITE = (f: string) => `dd if=/dev/zero of=${f} bs=1M count=${MIB} conv=fdatasync 2>&1 >/dev/null | tail -1`;
const READ = (f: string) => `dd if=${f} of=/dev/null bs=1M iflag=direct 2>&1 >/dev/null | tail -1`;

export async function benchStorage(h: RunningHangar, out: { rows: Row[]; notes: string[]; log: (m: string) => void }): Promise<void> {
  const ok = async (res: Promise<Response>, what: string) => {
    const r = await res;
    if (!r.ok) throw new Error(`${what}: ${r.status} ${await r.text()}`);
    return r;
  };
  await ok(api(h, "POST", "/v0/volumes", { metadata: { name: "bench-vol" }, spec: { size: 1300 } }), "create volume");
  await ok(api(h, "POST", "/v0/drives", { metadata: { name: "bench-drive" }, spec: {} }), "create drive");
  await ok(api(h, "POST", "/v0/sandboxes", { metadata: { name: "bench-storage" }, spec: { runtime: { memory: 2048 }, volumes: [{ name: "bench-vol", mountPath: "/vol" }] } }), "create sandbox");
  try {
    await ok(api(h, "POST", "/run/default/sandboxes/bench-storage/drives/mount", { driveName: "bench-drive", mountPath: "/drive" }), "mount drive");
    // host disk: a file in the server's data dir (the disk drives and volume images live on)
    const hostFile = join(h.dataDir, "bench-host.bin");
    const hostRates = async () => {
      const w = rate(await run("sh", ["-c", WRITE(hostFile)]));
      await run("dd", [`if=${hostFile}`, "iflag=nocache", "count=0"]);
      const r = rate(await run("sh", ["-c", READ(hostFile)]));
      await run("rm", ["-f", hostFile]);
      return { w, r };
    };
    const sandboxRates = async (file: string, dropHostCache: () => Promise<unknown>) => {
      const w = await exec(h, "bench-storage", WRITE(file));
      await dropHostCache();
      const r = await exec(h, "bench-storage", READ(file));
      await exec(h, "bench-storage", `rm -f ${file}`);
      return { w: rate(w.stdout), r: rate(r.stdout) };
    };
    const volImage = (await run("sh", ["-c", `ls ${join(h.dataDir, "volumes")}/*.ext4`])).trim().split("\n")[0]!;
    // three rounds, the three targets interleaved (the disk is shared): medians
    const samples = { host: [] as Array<{ w: number; r: number }>, vol: [] as Array<{ w: number; r: number }>, drive: [] as Array<{ w: number; r: number }> };
    for (let round = 0; round < 3; round++) {
      samples.host.push(await hostRates());
      samples.vol.push(await sandboxRates("/vol/bench.bin", () => run("dd", [`if=${volImage}`, "iflag=nocache", "count=0"])));
      samples.drive.push(
        await sandboxRates("/drive/bench.bin", async () => {
          const f = (await run("sh", ["-c", `ls -d ${join(h.dataDir, "drives")}/*/bench.bin`])).trim();
          await run("dd", [`if=${f}`, "iflag=nocache", "count=0"]);
        }),
      );
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const m = (k: keyof typeof samples) => ({ w: med(samples[k].map((x) => x.w)), r: med(samples[k].map((x) => x.r)) });
    const [host, vol, drive] = [m("host"), m("vol"), m("drive")];
    const hostW = host.w;
    const hostR = host.r;
    out.log(`MB/s write/read per round: host ${samples.host.map((x) => `${x.w.toFixed(0)}/${x.r.toFixed(0)}`).join(" ")}; volume ${samples.vol.map((x) => `${x.w.toFixed(0)}/${x.r.toFixed(0)}`).join(" ")}; drive ${samples.drive.map((x) => `${x.w.toFixed(0)}/${x.r.toFixed(0)}`).join(" ")}`);
    const row = (measure: string, v: number, peer: number): Row => ({
      measure,
      hangar: `${v.toFixed(0)} MB/s`,
      peer: `${peer.toFixed(0)} MB/s (host disk)`,
      ratio: `${(v / peer).toFixed(2)}x`,
      target: "≥ 0.9x",
      met: v / peer >= 0.9,
    });
    out.rows.push(row("volume: 1 GiB sequential write (fdatasync)", vol.w, hostW));
    out.rows.push(row("volume: 1 GiB sequential read (direct)", vol.r, hostR));
    out.rows.push(row("drive: 1 GiB sequential write (fdatasync)", drive.w, hostW));
    out.rows.push(row("drive: 1 GiB sequential read (direct)", drive.r, hostR));

    // drive mount into the running sandbox, through the sandbox API (each followed by its unmount)
    const mountMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await ok(api(h, "POST", "/run/default/sandboxes/bench-storage/drives/mount", { driveName: "bench-drive", mountPath: `/m/${i}`, drivePath: "/sub" }), "mount");
      mountMs.push(performance.now() - t0);
      await ok(api(h, "DELETE", `/run/default/sandboxes/bench-storage/drives/mount/m/${i}`), "unmount");
    }
    const d = dist(mountMs);
    out.rows.push({ measure: "drive mount into a running sandbox", hangar: `p50 ${fmt(d.p50)} ms, p90 ${fmt(d.p90)} ms`, peer: "", ratio: "", target: "p50 ≤ 50 ms", met: d.p50 <= 50 });
  } finally {
    await api(h, "DELETE", "/v0/sandboxes/bench-storage");
    for (let i = 0; i < 200 && (await api(h, "GET", "/v0/sandboxes/bench-storage")).status !== 404; i++) await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 100 && (await api(h, "DELETE", "/v0/volumes/bench-vol")).status === 409; i++) await new Promise((r) => setTimeout(r, 100));
    await api(h, "DELETE", "/v0/drives/bench-drive");
  }
}
