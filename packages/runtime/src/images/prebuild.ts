// Prebuilds the base image (or resolves any image reference) into an image directory, so the
// first sandbox does not wait for it.
//
//   node packages/runtime/dist/images/prebuild.js [dir] [ref]
//
// dir defaults to $HANGAR_IMAGE_DIR or /var/cache/hangar/images, ref to the base image.
// Progress goes to stderr; the resolved image (JSON: id, ref, lowerDir, config) to stdout.

import { pathToFileURL } from "node:url";
import { BASE_REF } from "./refs.js";
import { DEFAULT_IMAGE_CACHE_DIR, LocalImageStore } from "./store.js";
import type { ResolvedImage } from "./types.js";

export async function prebuild(dir = process.env.HANGAR_IMAGE_DIR || DEFAULT_IMAGE_CACHE_DIR, ref = BASE_REF): Promise<ResolvedImage> {
  const t0 = performance.now();
  const image = await new LocalImageStore({ dir }).resolve(ref, (line) => process.stderr.write(`[images] ${line}\n`));
  process.stderr.write(`[images] ${image.ref} (${image.id}) ready at ${image.lowerDir} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  return image;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  prebuild(process.argv[2] || undefined, process.argv[3] || undefined).then(
    (image) => process.stdout.write(JSON.stringify(image) + "\n"),
    (err: unknown) => {
      process.stderr.write(`[images] ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
