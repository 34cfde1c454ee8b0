// Chooses the sandbox runtime of this node.

import { join } from "node:path";
import type { Logger } from "@hangar/common";
import { existsSync, realpathSync } from "node:fs";
import { LinuxDriver, LocalImageStore, Lxcfs, type SandboxDriver, unmountTree } from "@hangar/runtime";
import { BuildahBuilder } from "@hangar/builds";
import { openSqliteStore } from "@hangar/store";
import type { HangarConfig } from "./config.js";
import { lockDataDir } from "./data-dir-lock.js";

/** The node's image store. Users may import local OCI layouts and archives only from the configured directories. */
export function createImageStore(config: HangarConfig, logger: Logger): LocalImageStore {
  return new LocalImageStore({ dir: config.imageDir, localImportRoots: config.importDirs, logger: logger.child({ component: "images" }) });
}

export async function createDriver(
  config: HangarConfig,
  logger: Logger,
  egress?: { port: number; caPem: string },
  images: LocalImageStore = createImageStore(config, logger),
): Promise<SandboxDriver> {
  switch (config.runtime) {
    case "linux":
      return new LinuxDriver({
        stateDir: join(config.dataDir, "runtime"),
        ...(config.runDir ? { runDir: config.runDir } : {}),
        ...(config.cgroupParent ? { cgroupParent: config.cgroupParent } : {}),
        images,
        logger: logger.child({ component: "runtime" }),
        network: {
          ...(config.sandboxCidr ? { cidr: config.sandboxCidr } : {}),
          ...(config.sandboxDns ? { dns: config.sandboxDns } : {}),
          ...(config.networkPrefix ? { prefix: config.networkPrefix } : {}),
          ...(config.networkTable ? { table: config.networkTable } : {}),
        },
        ...(egress ? { egress } : {}),
        // another build of the agent than the installed package's (new sandboxes and POST /upgrade use it)
        ...(process.env.HANGAR_AGENT_BINARY ? { agentBinary: process.env.HANGAR_AGENT_BINARY } : {}),
        // the sandbox's own /proc/meminfo and CPU view: off, or a daemon of its own at another mount point
        // sandboxes smaller than the host on CPUs of their own (nproc tells their size): off
        ...(process.env.HANGAR_CPU_PINNING === "0" ? { cpuPinning: false } : {}),
        ...(process.env.HANGAR_LXCFS === "0" ? { lxcfs: false as const } : process.env.HANGAR_LXCFS_DIR ? { lxcfs: new Lxcfs({ dir: process.env.HANGAR_LXCFS_DIR, logger: logger.child({ component: "lxcfs" }) }) } : {}),
      });
    default:
      throw new Error(`unknown runtime ${JSON.stringify(config.runtime)}; use "linux"`);
  }
}

/**
 * Removes every sandbox of this data dir and what the runtime keeps on the host (network devices
 * and nft table, mounts, cgroups, run dir). The server must be stopped. Records stay in the store.
 */
export async function uninstallRuntime(config: HangarConfig, logger: Logger): Promise<void> {
  const lock = lockDataDir(config.dataDir);
  try {
    const driver = await createDriver(config, logger);
    if (!(driver instanceof LinuxDriver)) throw new Error(`the ${driver.name} runtime has nothing to uninstall`);
    await driver.purge();
    const images = createImageStore(config, logger);
    // the builder's state of this data dir (its buildah storage and layer cache)
    await new BuildahBuilder({ root: config.buildDir, images, network: null, logger }).purge();
    // images its builds made, also from an image store shared with other data dirs
    await removeBuiltImages(config, images);
    // the data dir's own image store (not a shared cache elsewhere) is unmounted too
    const dataDir = realpathSync(config.dataDir);
    const imageDir = existsSync(config.imageDir) ? realpathSync(config.imageDir) : null;
    if (imageDir && (imageDir + "/").startsWith(dataDir + "/")) await unmountTree(imageDir);
  } finally {
    lock.release();
  }
}

/** Removes the built: images of this data dir's workspaces (images other references still name stay). */
async function removeBuiltImages(config: HangarConfig, images: LocalImageStore): Promise<void> {
  if (!existsSync(join(config.dataDir, "hangar.db"))) return;
  const store = await openSqliteStore(config.dataDir);
  const mine = new Set((await store.workspaces.list()).map((w) => w.id));
  await store.close();
  const refs = await images.builtRefs();
  const gone = refs.filter((r) => mine.has(/^built:([^/]+)\//.exec(r.ref)?.[1] ?? ""));
  for (const r of gone) await images.removeRef(r.ref);
  const named = new Set((await images.builtRefs()).map((r) => r.id));
  for (const id of new Set(gone.map((r) => r.id))) if (!named.has(id)) await images.remove(id);
}

