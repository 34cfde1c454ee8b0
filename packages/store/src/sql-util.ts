import { createHash } from "node:crypto";
import { type SelectQueryBuilder, sql } from "kysely";
import { type ListQuery, type Page, StoreConflictError, StoreCursorError } from "./store.js";

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

interface CursorPayload {
  /** Fingerprint of the query the cursor belongs to. */
  f: string;
  /** Sort key and id of the last item returned. */
  k: string;
  i: string;
}

/** A short hash of everything that shapes a listing, so a cursor only continues its own query. */
export function queryFingerprint(basis: unknown[]): string {
  return createHash("sha256").update(JSON.stringify(basis)).digest("base64url").slice(0, 16);
}

function encodeCursor(c: CursorPayload): string {
  return Buffer.from(JSON.stringify(c)).toString("base64url");
}

function decodeCursor(s: string, fp: string): CursorPayload {
  let c: unknown;
  try {
    c = JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
  } catch {
    throw new StoreCursorError("cursor is not one this server issued");
  }
  const p = c as Partial<CursorPayload>;
  if (typeof p !== "object" || p === null || typeof p.f !== "string" || typeof p.k !== "string" || typeof p.i !== "string") {
    throw new StoreCursorError("cursor is not one this server issued");
  }
  if (p.f !== fp) throw new StoreCursorError("cursor belongs to a different query (filters or sort changed)");
  return p as CursorPayload;
}

/** Escapes LIKE wildcards; used with ESCAPE '\'. */
function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (m) => `\\${m}`);
}

/** Rows with the columns every listed resource has. */
interface Listed {
  id: string;
  name: string;
  created_at: string;
}

/**
 * One page of a listing (keyset pagination on name or createdAt, then id): `base` is the table's
 * query scoped to a workspace (its count is `total`), `filter` narrows the page further; `q` and
 * `labels` match name, display name and labels.
 */
export async function keysetPage<T, QB extends SelectQueryBuilder<any, any, any>>(
  base: QB,
  filter: (q: QB) => QB,
  query: ListQuery,
  fp: string,
  toRecord: (row: never) => T,
): Promise<Page<T>> {
  const byName = query.sort.startsWith("name");
  const desc = query.sort.endsWith("desc");
  const keyCol = byName ? "name" : "created_at";
  const totalRow = (await base.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst()) as { n?: number } | undefined;
  const total = Number(totalRow?.n ?? 0);
  let q = filter(base.selectAll() as QB);
  if (query.q) {
    const pat = `%${likeEscape(query.q.toLowerCase())}%`;
    q = q.where((eb) =>
      eb.or([sql<boolean>`lower(name) LIKE ${pat} ESCAPE '\\'`, sql<boolean>`lower(display_name) LIKE ${pat} ESCAPE '\\'`, sql<boolean>`lower(labels) LIKE ${pat} ESCAPE '\\'`]),
    ) as QB;
  }
  for (const [k, v] of Object.entries(query.labels ?? {})) {
    const pat = `%${likeEscape(`${JSON.stringify(k)}:${JSON.stringify(v)}`)}%`;
    q = q.where(sql<boolean>`labels LIKE ${pat} ESCAPE '\\'`) as QB;
  }
  if (query.anchorEnd && !byName) {
    // The tail page: read backwards, then restore the requested order.
    const rows = (await q.orderBy(keyCol, desc ? "asc" : "desc").orderBy("id", desc ? "asc" : "desc").limit(query.limit).execute()) as never[];
    return { items: rows.reverse().map(toRecord), nextCursor: null, total };
  }
  if (query.cursor) {
    const c = decodeCursor(query.cursor, fp);
    const op = desc ? "<" : ">";
    q = q.where((eb) => eb.or([eb(keyCol, op, c.k), eb.and([eb(keyCol, "=", c.k), eb("id", op, c.i)])])) as QB;
  }
  const rows = (await q.orderBy(keyCol, desc ? "desc" : "asc").orderBy("id", desc ? "desc" : "asc").limit(query.limit + 1).execute()) as Listed[];
  const hasMore = rows.length > query.limit;
  const pageRows = rows.slice(0, query.limit);
  const last = pageRows[pageRows.length - 1];
  const nextCursor = hasMore && last ? encodeCursor({ f: fp, k: byName ? last.name : last.created_at, i: last.id }) : null;
  return { items: pageRows.map((r) => toRecord(r as never)), nextCursor, total };
}
