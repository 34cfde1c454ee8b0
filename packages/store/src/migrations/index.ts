import type { Migration } from "kysely";
import * as m001 from "./001-initial.js";
import * as m002 from "./002-previews.js";
import * as m003 from "./003-builds.js";
import * as m004 from "./004-workloads.js";
import * as m005 from "./005-jobs.js";
import * as m006 from "./006-gateway.js";
import * as m007 from "./007-volumes.js";
import * as m008 from "./008-snapshots.js";
import * as m010 from "./010-replacements.js";
import * as m011 from "./011-async-calls.js";
import * as m013 from "./013-preview-ports.js";
import * as m016 from "./016-connection-tokens.js";
import * as m017 from "./017-rotated-refresh-tokens.js";

/** Every schema migration, in order. Names sort lexicographically; never rename or edit a shipped one. */
export const migrations: Record<string, Migration> = {
  "001-initial": m001,
  "002-previews": m002,
  "003-builds": m003,
  "004-workloads": m004,
  "005-jobs": m005,
  "006-gateway": m006,
  "007-volumes": m007,
  "008-snapshots": m008,
  "010-replacements": m010,
  "011-async-calls": m011,
  "013-preview-ports": m013,
  "016-connection-tokens": m016,
  "017-rotated-refresh-tokens": m017,
};
