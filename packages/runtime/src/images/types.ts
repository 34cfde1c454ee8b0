// Images: read-only root filesystems shared by every sandbox that uses them.

import type { ImageConfig } from "../driver.js";

export interface ResolvedImage {
  /** Content-derived id, [a-z0-9]+; stable across restarts. */
  id: string;
  /** The canonical reference the user asked for (aliases resolved). */
  ref: string;
  /** A read-only directory holding the image's root filesystem (e.g. a mounted EROFS); an overlay lower. */
  lowerDir: string;
  config: ImageConfig;
}

export interface ImageStore {
  /**
   * Resolves a reference to a ready image, building/importing it on first use (built once, cached,
   * shared). Throws HangarError("invalid_image") for an unknown image or a malformed reference,
   * before anything is created.
   */
  resolve(ref: string, onProgress?: (line: string) => void): Promise<ResolvedImage>;
  /** Re-mounts cached images after a host reboot or server restart; cheap when already mounted. */
  init(): Promise<void>;
}
