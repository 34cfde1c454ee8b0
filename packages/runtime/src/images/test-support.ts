// What other packages' tests use to stand in for the outside world: a registry on loopback and
// small OCI images made from host binaries.
export { startRegistry, REGISTRY_BINARY, type TestRegistry } from "./testing.js";
export { buildTestImage, TEST_IMAGE_BINARIES, type TestImage, type TestImageOptions } from "./fixtures.js";
