// One Hangar process per data dir: a second `hangar serve` (or `hangar uninstall`) on a data dir
// in use would rewrite the firewall, re-adopt and sweep the running server's sandboxes. The lock is
// a file naming the holder's pid, taken over when that process is gone (a crash or kill -9).

import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { HangarError } from "@hangar/common";

function running(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  // a recycled pid is some other program: only a node process counts as a holder
  try {
    return /node|hangar/.test(readFileSync(`/proc/${pid}/cmdline`, "utf8"));
  } catch {
    return false;
  }
}

export interface DataDirLock {
  release(): void;
}

/** Takes the data dir's lock or throws `data_dir_in_use` naming the process holding it. */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = join(dataDir, "hangar.pid");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return {
        release: () => {
          try {
            if (Number(readFileSync(file, "utf8")) === process.pid) rmSync(file, { force: true });
          } catch {}
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = Number(readFileSync(file, "utf8").trim());
      if (running(holder)) throw new HangarError("data_dir_in_use", `another Hangar process (pid ${holder}) is using ${dataDir}; stop it first`);
      rmSync(file, { force: true }); // left by a process that is gone
    }
  }
  throw new HangarError("data_dir_in_use", `could not lock ${dataDir}`);
}
