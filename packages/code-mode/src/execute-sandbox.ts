// Names of the sandboxes code mode's `execute` runs scripts in: one per replica, labeled with its
// function so they are removed with it.

import { createHash } from "node:crypto";

/** Label of an execute sandbox; its value is the function's name. */
export const EXECUTE_SANDBOX_LABEL = "hangar-code-mode";

const prefix = (fn: string) => `${fn.slice(0, 30).replace(/-+$/, "")}-exec-`;

/** The execute sandbox of a function's replica: `<function, 30 chars>-exec-<8 hex of the replica>`. */
export function executeSandboxName(fn: string, replica: string): string {
  return `${prefix(fn)}${createHash("sha256").update(replica).digest("hex").slice(0, 8)}`;
}

/** Whether a sandbox (its name and labels) is an execute sandbox of function `fn`. */
export function isExecuteSandboxOf(fn: string, name: string, labels: Record<string, string>): boolean {
  return labels[EXECUTE_SANDBOX_LABEL] === fn.slice(0, 63) && new RegExp(`^${prefix(fn).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}[0-9a-f]{8}$`).test(name);
}
