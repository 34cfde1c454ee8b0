// LXCFS: the sandbox's own memory and CPU view in /proc (meminfo, cpuinfo, stat, ...) and
// /sys/devices/system/cpu/online, as container platforms give it. One lxcfs daemon per machine
// (like /var/lib/lxcfs on LXC hosts) serves every sandbox: it answers each read from the cgroup of
// the process reading. Its files are bound read-only over the sandbox's. The daemon outlives Hangar
// servers (sandboxes do too); each server checks it at start and every few seconds, starts it again
// when it died or hangs, and binds the new daemon's files into its running sandboxes again (a
// bind of the dead daemon's files fails reads with ENOTCONN — loudly, never stale data — until then).

import { spawn } from "node:child_process";
import { promises as fs, existsSync } from "node:fs";
import { type Logger, silentLogger } from "@hangar/common";
import { runRaw, sleep } from "./proc.js";

/** Files lxcfs virtualizes that sandboxes see (paths inside the sandbox = beneath the mount). */
export const LXCFS_FILES = ["/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/uptime", "/proc/swaps", "/proc/diskstats", "/sys/devices/system/cpu/online"];

export interface LxcfsOptions {
  /**
   * Directory (machine-wide) the daemon mounts beneath (at <dir>/fs); the runtime makes it a
   * shared mount so a daemon started again later is seen by new sandboxes. Default /var/lib/hangar-lxcfs.
   */
  dir?: string;
  binary?: string;
  /** Default: <dir>.pid. */
  pidFile?: string;
  logger?: Logger;
}

export class Lxcfs {
  readonly dir: string;
  /** The daemon's mount point. */
  readonly mount: string;
  private readonly binary: string;
  private readonly pidFile: string;
  private readonly lockDir: string;
  private readonly log: Logger;
  private served: [string, string][] | null = null;

  constructor(opts: LxcfsOptions = {}) {
    this.dir = opts.dir ?? "/var/lib/hangar-lxcfs";
    this.mount = `${this.dir}/fs`;
    this.binary = opts.binary ?? "lxcfs";
    this.pidFile = opts.pidFile ?? `${this.dir}.pid`;
    this.lockDir = `${this.pidFile}.lock`;
    this.log = opts.logger ?? silentLogger;
  }

  get installed(): boolean {
    if (this.binary.includes("/")) return existsSync(this.binary);
    return (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":").some((d) => d && existsSync(`${d}/${this.binary}`));
  }

  /** Whether the daemon answers: a read of its meminfo within 2 s. */
  async alive(): Promise<boolean> {
    const r = await runRaw("head", ["-c", "1", `${this.mount}/proc/meminfo`], { timeoutMs: 2_000 }).catch(() => null);
    return !!r && r.code === 0 && r.stdout.length === 1;
  }

  /** The running daemon's pid (its identity: binds made while it served are its own). */
  async pid(): Promise<number | null> {
    const n = Number((await fs.readFile(this.pidFile, "utf8").catch(() => "")).trim());
    return Number.isInteger(n) && n > 1 ? n : null;
  }

  /**
   * Makes sure the daemon runs and answers (starting it, once per machine under a lock, when it
   * does not); returns its pid, or null when lxcfs is not installed or would not start.
   */
  async ensure(): Promise<number | null> {
    if (!this.installed) return null;
    if (await this.alive()) return this.pid();
    if (!(await this.lock())) {
      // another server is starting it: wait for that
      for (let i = 0; i < 50 && !(await this.alive()); i++) await sleep(100);
      return (await this.alive()) ? this.pid() : null;
    }
    try {
      if (await this.alive()) return this.pid();
      const old = await this.pid();
      if (old && (await fs.readFile(`/proc/${old}/comm`, "utf8").catch(() => "")).trim() === "lxcfs") {
        // hung: its mount answers nothing
        try {
          process.kill(old, "SIGKILL");
        } catch {
          /* gone meanwhile */
        }
      }
      await runRaw("umount", ["-l", this.mount]).catch(() => null);
      await fs.mkdir(this.mount, { recursive: true, mode: 0o755 });
      await fs.chmod(this.dir, 0o755);
      await fs.rm(this.pidFile, { force: true });
      // its own session, no link to this server: it outlives a restart or a kill -9 of the server
      const child = spawn(this.binary, ["-f", "--enable-cfs", "-p", this.pidFile, this.mount], { detached: true, stdio: "ignore" });
      child.on("error", (e) => this.log.warn({ err: e }, "starting lxcfs failed"));
      child.unref();
      for (let i = 0; i < 50; i++) {
        if (await this.alive()) {
          this.log.info({ mount: this.mount, pid: child.pid }, "lxcfs started");
          return (await this.pid()) ?? child.pid ?? null;
        }
        await sleep(100);
      }
      this.log.warn({ mount: this.mount }, "lxcfs did not come up: sandboxes see the host's /proc/meminfo");
      return null;
    } finally {
      await fs.rm(this.lockDir, { recursive: true, force: true });
    }
  }

  /**
   * The files to bind into sandboxes: [host path, sandbox path]. Which of them this lxcfs serves
   * is looked up once (each look is a round trip to the daemon) and kept while it serves any.
   */
  binds(): [string, string][] {
    if (this.served?.length) return this.served;
    this.served = LXCFS_FILES.filter((f) => existsSync(`${this.mount}${f}`)).map((f) => [`${this.mount}${f}`, f]);
    return this.served;
  }

  /** Stops the daemon and unmounts its directory and the shared bind (tests with a private daemon). */
  async stop(): Promise<void> {
    const pid = await this.pid();
    if (pid) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        /* gone */
      }
    }
    for (let i = 0; i < 20 && pid && existsSync(`/proc/${pid}`); i++) await sleep(50);
    await runRaw("umount", ["-l", this.mount]).catch(() => null);
    await runRaw("umount", ["-l", this.dir]).catch(() => null);
    await fs.rm(this.pidFile, { force: true });
  }

  /** A machine-wide mutex (mkdir is atomic); a lock older than 30 s is stale. */
  private async lock(): Promise<boolean> {
    try {
      await fs.mkdir(this.lockDir);
      return true;
    } catch {
      const st = await fs.stat(this.lockDir).catch(() => null);
      if (st && Date.now() - st.mtimeMs > 30_000) {
        await fs.rm(this.lockDir, { recursive: true, force: true });
        return this.lock();
      }
      return false;
    }
  }
}
