// Running an OCI runtime (crun, or gVisor's runsc) on this kind of host. crun 1.8 refuses
// "hybrid" cgroups (v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified), so every crun
// call runs in a private mount namespace, made once and bound to a file, where that cgroup2 mount
// is unmounted. runsc gets its own namespace where an empty tmpfs hides /proc/sys/net: its check
// for "am I in the root netns" reads /proc/sys/net/core/rmem_default, which every netns has on
// new kernels (gVisor #10704). Each namespace is a slave of the bundle directory and of
// /run/netns, so the rootfs mounts and netns files the node creates afterwards show up inside.

import { promises as fs, existsSync, readdirSync } from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import { HangarError } from "@hangar/common";
import { run, runRaw, type RunResult } from "./proc.js";

/** Mount entry (mount point → fs type and propagation) from /proc/self/mountinfo. */
export async function mountTable(): Promise<Map<string, { type: string; shared: boolean; opts: string }>> {
  const out = new Map<string, { type: string; shared: boolean; opts: string }>();
  for (const line of (await fs.readFile("/proc/self/mountinfo", "utf8")).split("\n")) {
    const [pre, post] = line.split(" - ");
    if (!pre || !post) continue;
    const f = pre.split(" ");
    const target = unescapeMount(f[4]!);
    out.set(target, { type: post.split(" ")[0]!, shared: f.slice(6).some((t) => t.startsWith("shared:")), opts: f[5]! });
  }
  return out;
}

function unescapeMount(s: string): string {
  return s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface CrunState {
  status: "created" | "running" | "stopped" | "paused" | string;
  pid: number;
}

export type RuntimeKind = "crun" | "runsc";

/** Shell run in the fresh mount namespace of each runtime. */
const NS_SCRIPT: Record<RuntimeKind, string> = {
  crun: "if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi",
  runsc: "mount -t tmpfs -o size=4k,mode=0555 hangar-no-net-sysctl /proc/sys/net",
};

/** Global flags of runsc: host UDS connect (the agent socket), our seccomp profile inside the
 * Sentry, writes go to our overlay (not to Sentry memory). */
const RUNSC_FLAGS = ["--host-uds=open", "--oci-seccomp", "--overlay2=none"];

export class Crun {
  /** File the private mount namespace is bound to. */
  readonly mntns: string;
  /** The hangar-launch helper (set by setup). */
  launcher = "";

  constructor(
    readonly binary: string,
    /** --root: Hangar's own state directory for this runtime. */
    readonly root: string,
    /** Directory holding the namespace file (made a private mount). */
    private readonly nsDir: string,
    /** Directories whose later mounts must be visible to the runtime (made shared mounts). */
    private readonly sharedDirs: string[],
    readonly kind: RuntimeKind = "crun",
  ) {
    this.mntns = `${nsDir}/${kind}-mnt`;
  }

  private globalArgs(): string[] {
    return ["--root", this.root, ...(this.kind === "runsc" ? RUNSC_FLAGS : [])];
  }

  /** Argv that runs the runtime inside its private mount namespace. */
  argv(...args: string[]): [string, string[]] {
    return [this.launcher, ["--setns-mnt", this.mntns, "--exec", this.binary, ...this.globalArgs(), ...args]];
  }

  /** (Re)creates the private mount namespace. Running containers are not affected. */
  async setup(launcher: string): Promise<void> {
    this.launcher = launcher;
    await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
    await fs.mkdir(this.nsDir, { recursive: true, mode: 0o700 });
    let mounts = await mountTable();
    for (const d of this.sharedDirs) {
      await fs.mkdir(d, { recursive: true });
      const m = mounts.get(d);
      if (!m) await run("mount", ["--bind", d, d]);
      if (!m || !m.shared) await run("mount", ["--make-shared", d]);
    }
    // a mount-namespace file cannot be bound inside a shared mount: keep its directory private
    if (!mounts.has(this.nsDir)) {
      await run("mount", ["--bind", this.nsDir, this.nsDir]);
      await run("mount", ["--make-private", this.nsDir]);
    }
    mounts = await mountTable();
    if (mounts.get(this.mntns)?.type === "nsfs") await run("umount", ["-l", this.mntns]);
    await fs.writeFile(this.mntns, "");
    await run("unshare", [`--mount=${this.mntns}`, "--propagation", "slave", "sh", "-c", NS_SCRIPT[this.kind]]);
  }

  /** Removes the namespace file (tests). */
  async teardown(): Promise<void> {
    await runRaw("umount", ["-l", this.mntns]);
    await runRaw("umount", ["-l", this.nsDir]);
  }

  async exec(args: string[], input?: string): Promise<RunResult> {
    const [cmd, argv] = this.argv(...args);
    return runRaw(cmd, argv, input !== undefined ? { input } : {});
  }

  async state(id: string): Promise<CrunState | null> {
    const r = await this.exec(["state", id]);
    if (r.code !== 0) {
      if (/does not exist|No such file/i.test(r.stderr)) return null;
      throw new HangarError("runtime_failed", `crun state ${id}: ${r.stderr.trim()}`);
    }
    const s = JSON.parse(r.stdout) as { status: string; pid: number };
    return { status: s.status, pid: s.pid };
  }

  async delete(id: string): Promise<void> {
    await this.exec(["delete", "--force", id]);
  }

  /** Whether the runtime may still hold state for the container. */
  hasState(id: string): boolean {
    // crun keeps <root>/<id>/; runsc keeps files named after the id directly under <root>
    if (this.kind === "crun") return existsSync(`${this.root}/${id}`);
    try {
      return readdirSync(this.root).some((f) => f.includes(id));
    } catch {
      return false;
    }
  }

  async list(): Promise<string[]> {
    const r = await this.exec(["list", "--quiet"]);
    return r.stdout.split("\n").map((s) => s.trim()).filter(Boolean);
  }

  /**
   * Starts `crun run` in the foreground as a detached session: crun stays the container's parent
   * and reaps it, so no zombie is left to the host's init (which may not reap). `pre` are
   * hangar-launch operations run first (the rootfs mounts); their errors arrive on stderr.
   */
  spawnRun(id: string, bundle: string, pre: string[]): ChildProcess {
    const log = this.kind === "crun" ? ["--log", `file:${bundle}/runtime.log`] : ["--log", `${bundle}/runtime.log`, "--panic-log", `${bundle}/runtime.log`];
    const args = [
      ...pre,
      "--setns-mnt", this.mntns,
      "--null-stdio",
      "--exec", this.binary, ...this.globalArgs(), ...log,
      "run", "--bundle", bundle, "--pid-file", `${bundle}/pid`, id,
    ];
    const child = spawn(this.launcher, args, { detached: true, stdio: ["ignore", "ignore", "pipe"] });
    child.unref();
    return child;
  }
}

