// Maps failures reported by the sandbox agent (errno names) to Hangar errors with clear messages.

import { HangarError, type ErrorCode } from "@hangar/common";

export function agentErrno(e: unknown): string | undefined {
  if (e && typeof e === "object" && "errno" in e) {
    const v = (e as { errno: unknown }).errno;
    if (typeof v === "string") return v;
  }
  if (e && typeof e === "object" && "code" in e) {
    const v = (e as { code: unknown }).code;
    if (typeof v === "string" && /^E[A-Z0-9]+$/.test(v)) return v;
  }
  return undefined;
}

const BY_ERRNO: Record<string, { code: ErrorCode; what: string }> = {
  ENOENT: { code: "file_not_found", what: "no such file or directory" },
  ENOTDIR: { code: "not_a_directory", what: "not a directory" },
  EISDIR: { code: "is_a_directory", what: "is a directory" },
  ENOTEMPTY: { code: "directory_not_empty", what: "directory not empty" },
  EEXIST: { code: "already_exists", what: "already exists" },
  EACCES: { code: "forbidden", what: "permission denied" },
  EPERM: { code: "forbidden", what: "operation not permitted" },
  EROFS: { code: "forbidden", what: "read-only file system" },
  ELOOP: { code: "invalid_path", what: "too many levels of symbolic links" },
  ENAMETOOLONG: { code: "invalid_path", what: "file name too long" },
  EINVAL: { code: "bad_request", what: "invalid argument" },
  ENOSPC: { code: "unprocessable", what: "no space left on device" },
  EDQUOT: { code: "unprocessable", what: "disk quota exceeded" },
  EFBIG: { code: "payload_too_large", what: "file too large" },
  EXDEV: { code: "unprocessable", what: "cross-device operation" },
  EBUSY: { code: "conflict", what: "resource busy" },
  ETXTBSY: { code: "conflict", what: "text file busy" },
};

/** Turns an agent failure into a HangarError; `subject` names the path or process concerned. */
export function fromAgentError(e: unknown, subject?: string): HangarError {
  if (e instanceof HangarError) return e;
  const errno = agentErrno(e);
  if (errno) {
    const known = BY_ERRNO[errno];
    const what = known?.what ?? (e instanceof Error ? e.message : errno);
    const detail = subject ? `${subject}: ${what}` : what;
    return new HangarError(known?.code ?? "unprocessable", detail, { errno }, { cause: e });
  }
  return new HangarError("sandbox_unavailable", "the sandbox is not reachable right now; retry shortly", undefined, { cause: e });
}

/** Runs an agent call, converting its failure. */
export async function agentCall<T>(fn: () => Promise<T>, subject?: string): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fromAgentError(e, subject);
  }
}
