// Path resolution for the Blaxel sandbox API (wire spec §5.2). Every path a request names becomes an
// absolute, normalised path inside the sandbox; `..` can never climb above the sandbox root "/". The
// agent resolves the result against the sandbox's own root, so no path can leave it.

import { posix } from "node:path";
import { HangarError } from "@hangar/common";

export interface PathContext {
  /** Absolute working directory of the image: the base of relative paths. */
  workingDir: string;
  /** Absolute HOME of the image: what `~` expands to. */
  home: string;
}

/** Normalises an absolute path: collapses `//`, `.` and `..` (never above "/"), drops a trailing slash. */
export function normalizeAbsolute(path: string): string {
  const n = posix.normalize(path.startsWith("/") ? path : `/${path}`);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

function rejectBadChars(path: string): void {
  if (path.includes("\0")) throw new HangarError("invalid_path", "path must not contain NUL bytes");
}

function expandHome(path: string, ctx: PathContext): string | undefined {
  if (path === "~") return ctx.home;
  if (path.startsWith("~/")) return `${ctx.home}/${path.slice(2)}`;
  return undefined;
}

/**
 * Resolves a path given in a request body or query (already decoded): absolute when it starts with
 * "/", `~` or `~/…` under HOME, anything else relative to the working directory.
 */
export function resolvePath(path: string, ctx: PathContext): string {
  rejectBadChars(path);
  const p = path.trim() === "" ? "." : path;
  if (p.startsWith("/")) return normalizeAbsolute(p);
  const home = expandHome(p, ctx);
  if (home !== undefined) return normalizeAbsolute(home);
  return normalizeAbsolute(`${ctx.workingDir}/${p}`);
}

/** Percent-decodes a raw URL segment; 400 invalid_path when malformed. */
export function decodeRawPath(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HangarError("invalid_path", `path is not valid percent-encoded UTF-8: ${JSON.stringify(raw)}`);
  }
}

/** True when a raw (still encoded) URL segment carries an encoded slash. */
export function hasEncodedSlash(raw: string): boolean {
  return /%2f/i.test(raw);
}

/**
 * Resolves the raw path parameter of a route (the URL text after e.g. `/filesystem/`, still
 * percent-encoded) the way Blaxel's sandbox-api does:
 * - contains `%2F` (the SDK encodes every path): the decoded path is absolute (`a%2Fb` → `/a/b`),
 *   except a leading `~` which expands to HOME;
 * - otherwise a leading `/` (a `//` in the URL, as `writeBinary` sends) makes it absolute, `~` expands
 *   to HOME, the empty path is the working directory and anything else is relative to it.
 */
export function resolveRawPathParam(raw: string, ctx: PathContext): string {
  const decoded = decodeRawPath(raw);
  rejectBadChars(decoded);
  if (hasEncodedSlash(raw)) {
    const home = expandHome(decoded, ctx);
    if (home !== undefined) return normalizeAbsolute(home);
    return normalizeAbsolute(decoded);
  }
  return resolvePath(decoded, ctx);
}

/** The raw (undecoded) text of a URL after `prefix`, without the query string; undefined if it does not match. */
export function rawPathAfter(url: string, prefix: string): string | undefined {
  const q = url.indexOf("?");
  const pathPart = q === -1 ? url : url.slice(0, q);
  if (!pathPart.startsWith(prefix)) return undefined;
  return pathPart.slice(prefix.length);
}

/** Path of `child` relative to `base` (both absolute, normalised), "." when equal. */
export function relativeTo(base: string, child: string): string {
  const r = posix.relative(base, child);
  return r === "" ? "." : r;
}

/** Joins a directory and a name into a normalised absolute path. */
export function joinPath(dir: string, name: string): string {
  return normalizeAbsolute(dir === "/" ? `/${name}` : `${dir}/${name}`);
}

/** Last element of a path ("/" for the root). */
export function baseName(path: string): string {
  if (path === "/") return "/";
  return posix.basename(path);
}
