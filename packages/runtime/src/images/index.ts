// The image store: read-only root filesystems (EROFS) shared by every sandbox.
export type { ImageStore, ResolvedImage } from "./types.js";
export { LocalImageStore, buildBaseImage, DEFAULT_IMAGE_CACHE_DIR, type LocalImageStoreOptions, type ImageRecord, type ImageProvider } from "./store.js";
export { parseImageRef, builtImageRef, BASE_REF, type ParsedRef, type RegistryRef } from "./refs.js";
export type { OciImageConfig } from "./oci.js";
export { unmountTree } from "./erofs.js";
