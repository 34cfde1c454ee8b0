// Reading an untrusted image root filesystem from the host: symlinks resolve inside the root
// (never to host files), and the image's /etc/passwd and /etc/group turn a User into uid/gid.

import { lstat, readFile, readlink } from "node:fs/promises";
import { posix } from "node:path";

/**
 * Resolves `path` as if `root` were "/": absolute symlink targets and ".." stop at the root.
 * Returns the host path of the final file, or undefined when some component does not exist.
 */
export async function resolveInRoot(root: string, path: string): Promise<string | undefined> {
  const pending = path.split("/").filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === ".") continue;
    if (part === "..") {
      done.pop();
      continue;
    }
    const host = posix.join(root, ...done, part);
    let st;
    try {
      st = await lstat(host);
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      if (++links > 40) return undefined;
      const target = await readlink(host);
      if (target.startsWith("/")) done.length = 0;
      pending.unshift(...target.split("/").filter(Boolean));
      continue;
    }
    done.push(part);
  }
  return posix.join(root, ...done);
}

/** Reads a regular file of the image (at most maxBytes); undefined if missing or not a file. */
export async function readImageFile(root: string, path: string, maxBytes = 4 * 1024 * 1024): Promise<string | undefined> {
  const host = await resolveInRoot(root, path);
  if (!host) return undefined;
  const st = await lstat(host).catch(() => undefined);
  if (!st?.isFile() || st.size > maxBytes) return undefined;
  return readFile(host, "utf8");
}

/** True when `path` names an executable regular file inside the image. */
export async function imageHasExecutable(root: string, path: string): Promise<boolean> {
  const host = await resolveInRoot(root, path);
  if (!host) return false;
  const st = await lstat(host).catch(() => undefined);
  return !!st?.isFile() && (st.mode & 0o111) !== 0;
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || line.startsWith("#")) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || f[2] === "" || f[3] === "") continue;
    out.push({ name: f[0]!, uid, gid, home: f[5]!, shell: f[6]! });
  }
  return out;
}

export function parseGroup(text: string): { name: string; gid: number }[] {
  const out: { name: string; gid: number }[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 3 || line.startsWith("#") || f[2] === "") continue;
    const gid = Number(f[2]);
    if (Number.isInteger(gid)) out.push({ name: f[0]!, gid });
  }
  return out;
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  home: string;
  /** The login shell from /etc/passwd, when the user has an entry. */
  loginShell: string | undefined;
}

const ID_MAX = 2 ** 32 - 2;

/**
 * Resolves an OCI `User` ("", "name", "uid", "name:group", "uid:gid", ...) against the image's
 * /etc/passwd and /etc/group, the way Docker does: a numeric uid without an entry runs with
 * gid 0 and HOME "/". Throws an Error with a user-facing message when a name is unknown.
 */
export async function resolveUser(root: string, user: string): Promise<ResolvedUser> {
  const [userPart = "", groupPart] = user.split(":", 2);
  const passwd = parsePasswd((await readImageFile(root, "/etc/passwd")) ?? "");
  const isNum = (s: string) => /^\d+$/.test(s);
  let uid = 0;
  let gid = 0;
  let home = "/";
  let loginShell: string | undefined;
  const name = userPart === "" ? "root" : userPart;
  const entry = isNum(name) ? passwd.find((p) => p.uid === Number(name)) : passwd.find((p) => p.name === name);
  if (entry) {
    ({ uid, gid, home } = entry);
    loginShell = entry.shell || undefined;
  } else if (isNum(name)) {
    uid = Number(name);
    if (uid === 0) home = "/root";
  } else if (name === "root") {
    home = "/root";
  } else {
    throw new Error(`user "${name}" is not in the image's /etc/passwd`);
  }
  if (groupPart !== undefined && groupPart !== "") {
    if (isNum(groupPart)) gid = Number(groupPart);
    else {
      const g = parseGroup((await readImageFile(root, "/etc/group")) ?? "").find((x) => x.name === groupPart);
      if (!g) throw new Error(`group "${groupPart}" is not in the image's /etc/group`);
      gid = g.gid;
    }
  }
  if (uid > ID_MAX || gid > ID_MAX) throw new Error(`user "${user}" has an out-of-range uid or gid`);
  return { uid, gid, home: home || "/", loginShell };
}

/** The shell processes of the image use: the user's login shell, else bash, else sh. */
export async function pickShell(root: string, loginShell: string | undefined): Promise<string> {
  if (loginShell && !/(nologin|false)$/.test(loginShell) && (await imageHasExecutable(root, loginShell))) return loginShell;
  for (const sh of ["/bin/bash", "/bin/sh"]) if (await imageHasExecutable(root, sh)) return sh;
  return "/bin/sh";
}
