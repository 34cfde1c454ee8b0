import type { Migration } from "kysely";
import * as m001 from "./001-initial.js";

/** Every schema migration, in order. Names sort lexicographically; never rename or edit a shipped one. */
export const migrations: Record<string, Migration> = {
  "001-initial": m001,
};
