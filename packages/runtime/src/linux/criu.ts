// CRIU for the linux driver's checkpointed standby tier: finding a CRIU that works here (≥ 4.2,
// `criu check`), the dump and restore command lines, and the action script that rebuilds a
// restored sandbox's network link.
//
// Why CRIU is driven directly rather than through `crun checkpoint/restore`: a sandbox runs in its
// own user namespace, and CRIU only dumps namespaces it can enter from inside that user namespace
// (so the netns must be owned by it), and restores the tree into a *new* user namespace, which
// cannot enter a netns owned by the old one. crun 1.21 passes the netns path as external netns on
// both sides and cannot restore then. So the netns is dumped with the sandbox and restored empty
// (`--empty-ns net`); the action script below rebuilds the veth link, with the slot's names and
// addresses, in the netns CRIU made.

import { promises as fs, existsSync } from "node:fs";
import { runRaw } from "./proc.js";

/** Where `criu-install.sh` puts its wrappers. */
export const DEFAULT_CRIU_DIR = "/opt/hangar/criu/bin";
/** Oldest CRIU that works on this kernel (4.1.1 fails on INET sockets, 3.17 on the vDSO). */
export const MIN_CRIU: [number, number] = [4, 2];

export interface CriuTools {
  /** argv prefix that runs criu (a wrapper script, or the loader + libraries + binary). */
  argv: string[];
  version: string;
}

export type CriuDetection = { tools: CriuTools; reason?: undefined } | { tools: null; reason: string };

/** `Version: 4.2.1` → [4, 2, 1]. */
export function parseCriuVersion(text: string): number[] | null {
  const m = /Version:\s*(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

/**
 * Finds a CRIU ≥ 4.2 that passes `criu check`: `criu` given explicitly, else the one
 * criu-install.sh put in /opt/hangar/criu. Its tools.json (loader + libraries) lets the driver skip
 * the wrapper's shell.
 */
export async function detectCriu(criu?: string): Promise<CriuDetection> {
  const path = criu ?? `${DEFAULT_CRIU_DIR}/criu`;
  if (!existsSync(path)) return { tools: null, reason: `${path} is missing (run packages/runtime/src/linux/criu-install.sh)` };
  let argv = [path];
  if (!criu) {
    try {
      const t = JSON.parse(await fs.readFile(`${DEFAULT_CRIU_DIR}/../tools.json`, "utf8")) as { loader: string; libraryPath: string; criu: string };
      if (existsSync(t.loader) && existsSync(t.criu)) argv = [t.loader, "--library-path", t.libraryPath, t.criu];
    } catch {}
  }
  const [cmd, ...pre] = argv as [string, ...string[]];
  const v = await runRaw(cmd, [...pre, "--version"], { timeoutMs: 10_000 }).catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message }));
  const ver = parseCriuVersion(v.stdout);
  if (v.code !== 0 || !ver) return { tools: null, reason: `${path} --version failed: ${(v.stderr || v.stdout).trim().slice(0, 300)}` };
  const version = ver.join(".");
  if (ver[0]! < MIN_CRIU[0] || (ver[0] === MIN_CRIU[0] && ver[1]! < MIN_CRIU[1])) {
    return { tools: null, reason: `CRIU ${version} is too old (need ≥ ${MIN_CRIU.join(".")}; run criu-install.sh)` };
  }
  const c = await runRaw(cmd, [...pre, "check"], { timeoutMs: 30_000 }).catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message }));
  if (c.code !== 0) return { tools: null, reason: `criu check failed: ${(c.stderr + c.stdout).trim().slice(-500)}` };
  return { tools: { argv, version } };
}

/** What the network action script needs to rebuild a sandbox's link (NetSlot and ping range). */
export interface NetHookEnv {
  hostIf: string;
  hostIp: string;
  sandboxIp: string;
  /** ping_group_range written in the netns (host gids). */
  pingRange: [number, number];
  /** Name under /run/netns of an existing netns to build in; else CRIU's restored root task's. */
  netnsName?: string;
}

export function netHookEnv(e: NetHookEnv): Record<string, string> {
  return {
    HANGAR_HOST_IF: e.hostIf,
    HANGAR_HOST_IP: e.hostIp,
    HANGAR_SANDBOX_IP: e.sandboxIp,
    HANGAR_PING_RANGE: `${e.pingRange[0]} ${e.pingRange[1]}`,
    ...(e.netnsName ? { HANGAR_NETNS_NAME: e.netnsName } : {}),
  };
}

/**
 * CRIU action script: at `setup-namespaces` it builds the sandbox's veth link in the (empty)
 * netns CRIU made for the restored tree — the host end `$HANGAR_HOST_IF` with the gateway
 * address, `eth0` inside with the sandbox address, the default route and the netns sysctls —
 * exactly what SandboxNetwork.build() does for a new slot. With HANGAR_NETNS_NAME it builds in
 * that netns instead (a sandbox restarted from its checkpoint without its processes).
 */
export const NET_HOOK = `#!/bin/sh
[ "$CRTOOLS_SCRIPT_ACTION" = setup-namespaces ] || exit 0
set -e
if [ -n "$HANGAR_NETNS_NAME" ]; then target="$HANGAR_NETNS_NAME"; ns="/run/netns/$HANGAR_NETNS_NAME"
else target="$CRTOOLS_INIT_PID"; ns="/proc/$CRTOOLS_INIT_PID/ns/net"; fi
# a link of the same name left from before the checkpoint goes first
ip link del "$HANGAR_HOST_IF" 2>/dev/null || true
ip -batch - <<EOF
link add $HANGAR_HOST_IF type veth peer name eth0 netns $target
addr add $HANGAR_HOST_IP/30 dev $HANGAR_HOST_IF
EOF
echo 1 > "/proc/sys/net/ipv6/conf/$HANGAR_HOST_IF/disable_ipv6" 2>/dev/null || true
echo 1 > "/proc/sys/net/ipv4/conf/$HANGAR_HOST_IF/rp_filter"
ip link set "$HANGAR_HOST_IF" up
nsenter --net="$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 &&
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 &&
echo "$HANGAR_PING_RANGE" > /proc/sys/net/ipv4/ping_group_range &&
echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start &&
exec ip -batch -' <<EOF
link set lo up
addr add $HANGAR_SANDBOX_IP/30 dev eth0
link set eth0 up
route add default via $HANGAR_HOST_IP
EOF
`;

/** Options shared by dump and restore. */
const COMMON = [
  // every bind mount from the host (agent, its socket dir, /etc files, /dev nodes, masked paths)
  // is found again at the same host path on restore
  "--external", "mnt[]",
  "--enable-external-masters",
  "--enable-external-sharing",
  "--tcp-established",
  "--file-locks",
  "--network-lock", "nftables",
  "--manage-cgroups=soft",
];

export interface DumpArgs {
  pid: number;
  imagesDir: string;
  /** Freezer cgroup directory of the sandbox. */
  freezer: string;
  /** Largest deleted-but-open file kept in the image, bytes. */
  ghostLimit: number;
  logLevel?: number;
  /** Keep the tree running (a snapshot) instead of killing it (a checkpoint). */
  leaveRunning?: boolean;
}

export function dumpArgs(o: DumpArgs): string[] {
  return [
    "dump", "-t", String(o.pid), "-D", o.imagesDir, "-o", "dump.log", `-v${o.logLevel ?? 2}`,
    ...COMMON,
    "--freeze-cgroup", o.freezer,
    "--skip-in-flight",
    "--ghost-limit", String(o.ghostLimit),
    // a snapshot: the tree goes on running after the dump
    ...(o.leaveRunning ? ["--leave-running"] : []),
  ];
}

export interface RestoreArgs {
  imagesDir: string;
  /** Work dir: log and CRIU's cgroup yard (inside its private mount namespace). */
  workDir: string;
  /** The sandbox's rootfs, mounted again (overlay). */
  root: string;
  pidFile: string;
  /** OCI cgroupsPath of the sandbox. */
  cgroupPath: string;
  hook: string;
  logLevel?: number;
  /**
   * A fork (a new sandbox from another's images): its address differs, so connected TCP sockets
   * come back closed (`--tcp-close`) instead of re-established.
   */
  fork?: boolean;
}

export function restoreArgs(o: RestoreArgs): string[] {
  const common = o.fork ? [...COMMON.filter((a) => a !== "--tcp-established"), "--tcp-close"] : COMMON;
  return [
    "restore", "-D", o.imagesDir, "-W", o.workDir, "-o", "restore.log", `-v${o.logLevel ?? 2}`,
    ...common,
    "--root", o.root,
    "--empty-ns", "net",
    "--action-script", o.hook,
    "--cgroup-root", o.cgroupPath,
    "--pidfile", o.pidFile,
    "--restore-detached",
  ];
}

/** The error lines of a CRIU log (or its last lines), for error messages. */
export async function criuLogErrors(file: string, max = 1500): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch {
    return "(no CRIU log)";
  }
  const lines = text.split("\n").filter((l) => /Error|Warn/.test(l) && !/RLIMIT_NOFILE/.test(l));
  const out = (lines.length ? lines : text.split("\n").slice(-10)).join("\n").trim();
  return out.length > max ? `…${out.slice(-max)}` : out;
}

/** Total size of the files under a directory, bytes. */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) total += await dirBytes(p);
    else if (e.isFile()) total += (await fs.stat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}
