// Image references: parsing, validation and canonical forms. Pure functions, no I/O.
//
// Schemes (skopeo transport names, so a reference can be handed to skopeo as is):
//   blaxel/base-image[:latest], hangar/base[:latest]  the built-in Debian base image (aliases)
//   oci:/abs/path/to/layout[:tag]                    an OCI image layout directory
//   oci-archive:/abs/path/file.tar[:tag]             a tar of an OCI image layout
//   docker-archive:/abs/path/file.tar[:repo:tag]     a `docker save` tarball
//   [docker://]host[:port]/repo[:tag][@sha256:...]   a registry image (Docker Hub when no host)
//   built:<workspace>/<kind>/<name>:<build id>       an image a build made (never pulled)

import { HangarError } from "@hangar/common";

export type ParsedRef =
  | { kind: "base"; canonical: string }
  | { kind: "oci" | "oci-archive" | "docker-archive"; canonical: string; path: string; tag: string | undefined }
  | { kind: "registry"; canonical: string; domain: string; repository: string; tag: string | undefined; digest: string | undefined }
  | { kind: "built"; canonical: string; workspace: string };

export type LocalRef = Extract<ParsedRef, { path: string }>;
export type RegistryRef = Extract<ParsedRef, { kind: "registry" }>;

const BUILT_RE = /^built:([a-z0-9][a-z0-9_-]*)\/[a-z][a-z-]*\/[a-z0-9][a-z0-9-]*:[a-z0-9]+$/;

/** The reference of the image build `buildId` made for a resource. */
export function builtImageRef(workspace: string, kind: string, name: string, buildId: string): string {
  return `built:${workspace}/${kind}/${name}:${buildId}`;
}

/** The canonical name of the built-in base image. */
export const BASE_REF = "hangar/base:latest";

/** Registry names (normalised) that mean the built-in base image. */
const BASE_ALIASES = new Set(["docker.io/blaxel/base-image:latest", "docker.io/hangar/base:latest"]);

const MAX_REF_LENGTH = 1024;
const MAX_NAME_LENGTH = 255;

// The grammar of github.com/distribution/reference.
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]{1,5})?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$/;
// Characters allowed in local paths: no spaces, quotes, colons, control or shell characters.
const PATH_CHARS_RE = /^[A-Za-z0-9._\-+@/=,~]+$/;

function invalid(ref: string, why: string): HangarError {
  return new HangarError("invalid_image", `invalid image reference ${JSON.stringify(ref)}: ${why}`);
}

/** Parses a user-given image reference; throws HangarError("invalid_image") when malformed. */
export function parseImageRef(input: string): ParsedRef {
  if (typeof input !== "string") throw new HangarError("invalid_image", "image reference must be a string");
  const ref = input.trim();
  if (ref === "") throw invalid(input, "empty");
  if (ref.length > MAX_REF_LENGTH) throw invalid(ref.slice(0, 64) + "…", `longer than ${MAX_REF_LENGTH} characters`);
  if (/[\s\u0000-\u001f\u007f]/.test(ref)) throw invalid(ref, "contains whitespace or control characters");

  const scheme = /^([a-z][a-z-]*):(?!\d)/.exec(ref);
  if (scheme) {
    const s = scheme[1]!;
    const rest = ref.slice(s.length + 1);
    if (s === "oci" || s === "oci-archive" || s === "docker-archive") return parseLocal(ref, s, rest);
    if (s === "built") {
      const m = BUILT_RE.exec(ref);
      if (!m) throw invalid(ref, "expected built:<workspace>/<kind>/<name>:<build id>");
      return { kind: "built", canonical: ref, workspace: m[1]! };
    }
    if (s === "docker") {
      if (!rest.startsWith("//")) throw invalid(ref, "expected docker://host/repo:tag");
      return parseRegistry(ref, rest.slice(2));
    }
    // "name:tag" and "host:port/..." fall through to the registry grammar; "x:/..." is an unknown scheme.
    if (rest.startsWith("/")) {
      throw invalid(ref, `unknown scheme "${s}:" (use oci:, oci-archive:, docker-archive:, docker:// or a registry name)`);
    }
  }
  return parseRegistry(ref, ref);
}

function parseLocal(ref: string, kind: LocalRef["kind"], rest: string): LocalRef {
  // The path ends at the first ':' (paths may not contain one); the remainder names the image inside.
  const colon = rest.indexOf(":");
  const path = colon < 0 ? rest : rest.slice(0, colon);
  const tag = colon < 0 ? undefined : rest.slice(colon + 1);
  if (!path.startsWith("/")) throw invalid(ref, `${kind}: needs an absolute path`);
  if (!PATH_CHARS_RE.test(path)) throw invalid(ref, "path contains unsupported characters");
  const parts = path.split("/");
  if (parts.some((p) => p === ".." || p === ".")) throw invalid(ref, "path must not contain '.' or '..' segments");
  if (path !== "/" && (path.includes("//") || path.endsWith("/"))) throw invalid(ref, "path is not normalised (double or trailing '/')");
  if (tag !== undefined) {
    if (tag === "") throw invalid(ref, "empty tag after ':'");
    if (kind === "docker-archive") {
      // docker-archive names an image inside the tarball by repo:tag (or @index).
      if (!/^@\d+$/.test(tag)) {
        const inner = safeParseRegistryName(tag);
        if (!inner) throw invalid(ref, `"${tag}" is not a valid image name inside the archive`);
      }
    } else if (!TAG_RE.test(tag)) {
      throw invalid(ref, `"${tag}" is not a valid tag`);
    }
  }
  return { kind, canonical: `${kind}:${path}${tag === undefined ? "" : ":" + tag}`, path, tag };
}

function safeParseRegistryName(name: string): ParsedRef | undefined {
  try {
    return parseRegistry(name, name);
  } catch {
    return undefined;
  }
}

function parseRegistry(ref: string, name: string): ParsedRef {
  let rest = name;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw invalid(ref, `"${digest}" is not a valid digest (e.g. sha256:<64 hex>)`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const lastColon = rest.lastIndexOf(":");
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG_RE.test(tag)) throw invalid(ref, `"${tag}" is not a valid tag`);
  }
  if (rest === "") throw invalid(ref, "missing repository name");
  const parts = rest.split("/");
  let domain = "docker.io";
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost" || first.startsWith("[") || first !== first.toLowerCase())) {
    domain = first;
    parts.shift();
    if (!DOMAIN_RE.test(domain)) throw invalid(ref, `"${domain}" is not a valid registry host`);
    const port = /:(\d+)$/.exec(domain)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw invalid(ref, `port ${port} out of range`);
  }
  for (const p of parts) {
    if (!PATH_COMPONENT_RE.test(p)) {
      throw invalid(ref, `"${p}" is not a valid repository path component (lowercase letters, digits, '.', '_', '-')`);
    }
  }
  if (domain === "index.docker.io") domain = "docker.io";
  if (domain === "docker.io" && parts.length === 1) parts.unshift("library");
  const repository = parts.join("/");
  if (domain.length + 1 + repository.length > MAX_NAME_LENGTH) throw invalid(ref, `name longer than ${MAX_NAME_LENGTH} characters`);
  if (tag === undefined && digest === undefined) tag = "latest";
  const canonical = `${domain}/${repository}${tag !== undefined ? ":" + tag : ""}${digest !== undefined ? "@" + digest : ""}`;
  if (BASE_ALIASES.has(canonical)) return { kind: "base", canonical: BASE_REF };
  return { kind: "registry", canonical, domain, repository, tag, digest };
}

/** True for registries on the loopback interface, which are reached over plain HTTP like Docker does. */
export function isLoopbackRegistry(domain: string): boolean {
  const host = domain.startsWith("[") ? domain.slice(0, domain.indexOf("]") + 1) : domain.replace(/:\d+$/, "");
  return host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The skopeo source name of a parsed (non-base) reference. */
export function skopeoSource(ref: Exclude<ParsedRef, { kind: "base" }>): string {
  if (ref.kind === "registry") return `docker://${ref.canonical}`;
  return ref.canonical;
}
