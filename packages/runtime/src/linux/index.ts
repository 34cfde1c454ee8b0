// The isolated Linux driver (crun) and its building blocks.
export { LinuxDriver, type LinuxDriverOptions } from "./driver.js";
export { Lxcfs, LXCFS_FILES, type LxcfsOptions } from "./lxcfs.js";
export { SandboxNetwork, nftRuleset, hostNameservers, DEFAULT_SANDBOX_CIDR, type NetworkOptions, type NetSlot } from "./network.js";
export { DEFAULT_USERNS, type UserNsRange } from "./userns.js";
export { type AgentListen } from "./agent.js";
export { run, runRaw, type RunResult } from "./proc.js";
export * as cgroups from "./cgroups.js";
