import { StoreConflictError } from "./store.js";

/** True for unique-constraint violations of SQLite and PostgreSQL. */
export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "23505";
}

/** Turns unique violations into StoreConflictError. */
export async function mapConflict<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (isUniqueViolation(e)) throw new StoreConflictError();
    throw e;
  }
}
