// A stand-in ImageStore for developing and testing the linux driver until the real image store
// is available: one debootstrap'ed Debian bookworm (minbase) directory, built once, for any of a
// few references.

import { promises as fs, existsSync } from "node:fs";
import { HangarError } from "@hangar/common";
import type { ImageStore, ResolvedImage } from "../images/types.js";
import { run } from "./proc.js";

export const DEV_ROOTFS = "/var/tmp/hangar-rootfs-dev";
export const DEV_IMAGE_REFS = ["hangar/dev-bookworm", "blaxel/base-image:latest", "blaxel/base-image"];

export class DevImageStore implements ImageStore {
  constructor(
    private readonly dir = DEV_ROOTFS,
    private readonly refs = DEV_IMAGE_REFS,
    private readonly mirror = "http://deb.debian.org/debian",
  ) {}

  async init(): Promise<void> {}

  async resolve(ref: string, onProgress?: (line: string) => void): Promise<ResolvedImage> {
    if (!this.refs.includes(ref)) throw new HangarError("invalid_image", `unknown image ${ref}`);
    if (!existsSync(`${this.dir}/usr/bin/bash`)) {
      onProgress?.(`building ${this.dir} with debootstrap`);
      // one builder at a time across processes (tests run in parallel)
      await run("flock", [`${this.dir}.lock`, "sh", "-c", `[ -x ${this.dir}/usr/bin/bash ] || { rm -rf ${this.dir}.tmp && debootstrap --variant=minbase bookworm ${this.dir}.tmp ${this.mirror} && mv ${this.dir}.tmp ${this.dir}; }`], {
        timeoutMs: 600_000,
      });
    }
    await fs.access(this.dir);
    return {
      id: "devbookworm",
      ref,
      lowerDir: this.dir,
      config: {
        workingDir: "/",
        home: "/root",
        env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
        uid: 0,
        gid: 0,
        shell: "/bin/bash",
      },
    };
  }
}
