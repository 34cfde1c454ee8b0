// Host side of volumes: one sparse ext4 image file per volume, mounted on the host through a loop
// device (size enforced by the filesystem itself: a write past it is ENOSPC inside the sandbox),
// grown in place with resize2fs. The mount point is what a sandbox binds.

import { spawn } from "node:child_process";
import { promises as fs, existsSync } from "node:fs";
import { HangarError } from "@hangar/common";

/** Runs a command; HangarError runtime_failed with its stderr when it fails. */
export function sh(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new HangarError("runtime_failed", `${cmd} ${args.join(" ").slice(0, 200)}: exit ${code}: ${err.trim().slice(0, 1000)}`)),
    );
  });
}

/** Mount points of this host: target → source device. */
export async function hostMounts(): Promise<Map<string, string>> {
  const text = await fs.readFile("/proc/self/mountinfo", "utf8");
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const dash = f.indexOf("-");
    if (f.length < 5 || dash < 0) continue;
    out.set(f[4]!.replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))), f[dash + 2] ?? "");
  }
  return out;
}

export interface VolumeHostOptions {
  /** Where image files live (the data dir). */
  imagesDir: string;
  /** Where they are mounted: world-traversable (a CRIU restore reopens binds from the sandbox's user namespace). */
  mountDir: string;
  /** Host uid/gid of a sandbox's root (the shared user-namespace range): owner of a new volume's root. */
  rootUid: number;
}

export class VolumeHost {
  constructor(private readonly o: VolumeHostOptions) {}

  get imagesDir(): string {
    return this.o.imagesDir;
  }

  image(id: string): string {
    return `${this.o.imagesDir}/${id}.ext4`;
  }

  mountPoint(id: string): string {
    return `${this.o.mountDir}/${id}`;
  }

  /** A new sparse image of `sizeMb`, ext4 without reserved blocks, root owned by a sandbox's root; `fromDir` copied in. */
  async create(id: string, sizeMb: number, fromDir?: string): Promise<void> {
    await fs.mkdir(this.o.imagesDir, { recursive: true, mode: 0o700 });
    const img = this.image(id);
    await sh("truncate", ["-s", `${sizeMb}M`, img]);
    const u = this.o.rootUid;
    await sh("mkfs.ext4", ["-q", "-F", "-m", "0", "-E", `root_owner=${u}:${u}`, ...(fromDir ? ["-d", fromDir] : []), img]).catch(async (e) => {
      await fs.rm(img, { force: true });
      throw e;
    });
  }

  /** Mounts the image on the host (idempotent), first growing a filesystem whose resize was deferred; returns the mount point. */
  async mount(id: string): Promise<string> {
    const mnt = this.mountPoint(id);
    if ((await hostMounts()).has(mnt)) return mnt;
    if (existsSync(`${this.image(id)}.grow`)) await this.resizeOffline(id);
    await fs.mkdir(this.o.mountDir, { recursive: true, mode: 0o711 });
    await fs.chmod(this.o.mountDir, 0o711);
    await fs.mkdir(mnt, { recursive: true, mode: 0o755 });
    // direct I/O on the loop device: the image's pages are not cached twice (ext4's and the backing file's)
    const dev = (await sh("losetup", ["-f", "--show", "--direct-io=on", this.image(id)])).trim();
    await sh("mount", ["-t", "ext4", "-o", "nosuid,nodev,noatime", dev, mnt]).catch(async (e) => {
      await sh("losetup", ["-d", dev]).catch(() => undefined);
      throw e;
    });
    return mnt;
  }

  /** Unmounts it and detaches its loop device (a busy one detaches itself once released). */
  async unmount(id: string): Promise<void> {
    const mnt = this.mountPoint(id);
    const dev = (await hostMounts()).get(mnt);
    if (dev !== undefined) {
      await sh("umount", [mnt]).catch(() => sh("umount", ["-l", mnt]));
      if (dev.startsWith("/dev/loop")) await sh("losetup", ["-d", dev]).catch(() => undefined);
    }
    await fs.rmdir(mnt).catch(() => undefined);
  }

  /**
   * Grows the image to `sizeMb` and its filesystem with it: at once when it is not mounted, online
   * when the kernel lets us (ext4 online resize needs CAP_SYS_RESOURCE), else at its next mount
   * (returns "deferred"). The data is kept either way.
   */
  async grow(id: string, sizeMb: number): Promise<"done" | "deferred"> {
    const img = this.image(id);
    await sh("truncate", ["-s", `${sizeMb}M`, img]);
    const dev = (await hostMounts()).get(this.mountPoint(id));
    if (dev?.startsWith("/dev/loop")) {
      const online = await sh("losetup", ["-c", dev]).then(() => sh("resize2fs", [dev])).then(() => true, () => false);
      if (online) return "done";
      await fs.writeFile(`${img}.grow`, `${sizeMb}\n`);
      return "deferred";
    }
    await this.resizeOffline(id);
    return "done";
  }

  private async resizeOffline(id: string): Promise<void> {
    const img = this.image(id);
    await sh("e2fsck", ["-f", "-p", img]).catch(() => undefined);
    await sh("resize2fs", [img]);
    await fs.rm(`${img}.grow`, { force: true });
  }

  async remove(id: string): Promise<void> {
    await this.unmount(id);
    await fs.rm(this.image(id), { force: true });
    await fs.rm(`${this.image(id)}.grow`, { force: true });
  }

  exists(id: string): boolean {
    return existsSync(this.image(id));
  }

  /** Bytes used and total of a mounted volume, else null. */
  async usage(id: string): Promise<{ used: number; total: number } | null> {
    if (!(await hostMounts()).has(this.mountPoint(id))) return null;
    const s = await fs.statfs(this.mountPoint(id));
    return { used: (s.blocks - s.bfree) * s.bsize, total: s.blocks * s.bsize };
  }
}
