// Builds (once, cached by source hash) and locates the static `hangar-launch` helper.

import { promises as fs, existsSync } from "node:fs";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { HangarError } from "@hangar/common";
import { run } from "./proc.js";

function sourcePath(): string {
  // from src/linux/*.ts the source sits beside us; from dist/linux/*.js it is in ../../src
  for (const rel of ["./native/hangar-launch.c", "../../src/linux/native/hangar-launch.c"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new HangarError("not_configured", "hangar-launch.c not found beside the runtime package");
}

/** Path of the helper binary under `dir`, compiled with gcc -static when missing. */
export async function ensureLauncher(dir: string): Promise<string> {
  const src = sourcePath();
  const code = await fs.readFile(src);
  const hash = createHash("sha256").update(code).digest("hex").slice(0, 12);
  const bin = `${dir}/hangar-launch-${hash}`;
  if (existsSync(bin)) return bin;
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  const tmp = `${bin}.${process.pid}.tmp`;
  try {
    await run("gcc", ["-O2", "-Wall", "-static", "-o", tmp, src]);
  } catch (e) {
    throw new HangarError("not_configured", `cannot build hangar-launch (needs gcc and libc6-dev): ${(e as Error).message}`);
  }
  await fs.rename(tmp, bin);
  return bin;
}
