export { extractZip, DEFAULT_EXTRACT_LIMITS, type ExtractLimits } from "./archive.js";
export { CODE_MODE_COMMAND, planBuild, type BuildPlan } from "./detect.js";
export { prepareDockerfile, TRUST_ARGS, type PreparedDockerfile } from "./dockerfile.js";
export { BuildahBuilder, DEFAULT_BUILD_LIMITS, type BuildLimits, type BuildNetwork, type BuildOutput, type BuildRequest, type BuildahOptions } from "./buildah.js";
export { BuildService, type BuildServiceOptions, type BuildTarget } from "./build-service.js";
