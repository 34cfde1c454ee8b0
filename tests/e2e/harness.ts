// The end-to-end tests' view of a running Hangar: the shared testkit, plus pointing the SDK at it.

import type { RunningHangar } from "@hangar/testkit";

export * from "@hangar/testkit";

/** Points the unmodified @blaxel/core at this server (blaxel-wire.md §2.6). Call before importing it. */
export function useSdkAgainst(h: Pick<RunningHangar, "url" | "apiKey">, workspace = "default"): void {
  Object.assign(process.env, {
    BL_API_URL: `${h.url}/v0`,
    BL_RUN_URL: `${h.url}/run`,
    BL_WORKSPACE: workspace,
    BL_API_KEY: h.apiKey,
    BL_DISABLE_H2: "true",
    BL_ENV: "local",
    DO_NOT_TRACK: "1",
    // A region silences the SDK's warning; with H2 disabled it opens no connection to Blaxel.
    BL_REGION: "local-1",
  });
}
