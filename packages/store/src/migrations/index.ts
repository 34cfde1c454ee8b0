import type { Migration } from "kysely";
import * as m001 from "./001-initial.js";
import * as m002 from "./002-previews.js";
import * as m003 from "./003-builds.js";
import * as m004 from "./004-workloads.js";
import * as m005 from "./005-jobs.js";

/** Every schema migration, in order. Names sort lexicographically; never rename or edit a shipped one. */
export const migrations: Record<string, Migration> = {
  "001-initial": m001,
  "002-previews": m002,
  "003-builds": m003,
  "004-workloads": m004,
  "005-jobs": m005,
};
