import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateRawSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { CliError } from "./client.js";
import {
  DEFAULT_IGNORES,
  buildEnvContent,
  buildKind,
  ignoreRules,
  isIgnored,
  parseDotenv,
  parseIgnoreFile,
  parseProjectToml,
  parseSince,
  planArchive,
  readEnvFiles,
  resolveName,
  runtimeEnvs,
  slugify,
  substitute,
  zipArchive,
} from "./deploy.js";

/** Entries of a zip (central directory): name, method, content. */
function unzip(zip: Buffer): Map<string, { method: number; data: Buffer }> {
  const out = new Map<string, { method: number; data: Buffer }>();
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  let p = zip.readUInt32LE(eocd + 16);
  const count = zip.readUInt16LE(eocd + 10);
  for (let i = 0; i < count; i++) {
    const method = zip.readUInt16LE(p + 10);
    const compressedSize = zip.readUInt32LE(p + 20);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const name = zip.subarray(p + 46, p + 46 + nameLen).toString("utf8");
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(start, start + compressedSize);
    out.set(name, { method, data: method === 8 ? inflateRawSync(raw) : Buffer.from(raw) });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

let dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "hangar-deploy-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe("ignore rules", () => {
  it("match as a prefix from the root, /x/ anywhere, or a /x suffix; no globs", () => {
    const rules = ["node_modules", "build/", "secret.txt", "*.log"];
    expect(isIgnored("node_modules", rules)).toBe(true);
    expect(isIgnored("node_modules/a/b.js", rules)).toBe(true);
    expect(isIgnored("pkg/node_modules", rules)).toBe(true);
    expect(isIgnored("pkg/node_modules/x.js", rules)).toBe(true);
    // a plain prefix, as bl matches it
    expect(isIgnored("node_modules_backup/x", rules)).toBe(true);
    expect(isIgnored("pkg/node_modules_backup/x", rules)).toBe(false);
    // "build/" is cleaned for the prefix test only
    expect(isIgnored("build/out.js", rules)).toBe(true);
    expect(isIgnored("src/build/out.js", rules)).toBe(false);
    expect(isIgnored("src/secret.txt", rules)).toBe(true);
    expect(isIgnored("src/secret.txt.bak", rules)).toBe(false);
    expect(isIgnored("app.log", rules)).toBe(false);
    expect(isIgnored("*.log", rules)).toBe(true);
    expect(isIgnored("server.js", rules)).toBe(false);
  });

  it("default rules leave out VCS, deps, builds and env files, prefix-wise (.git also covers .github)", () => {
    for (const p of [".git", ".git/HEAD", "node_modules/x/index.js", "a/node_modules/b", ".env", ".env.local", ".env.build", "dist/app.js", "__pycache__/m.pyc", "src/__pycache__/m.pyc", ".venv/bin/python", ".github/workflows/ci.yml", ".gitignore"]) {
      expect(isIgnored(p, DEFAULT_IGNORES), p).toBe(true);
    }
    for (const p of ["server.js", "Dockerfile", "blaxel.toml", "src/index.ts", "src/dist.ts", "package.json"]) expect(isIgnored(p, DEFAULT_IGNORES), p).toBe(false);
  });

  it("a rule naming the root or outside it matches nothing by prefix", () => {
    expect(isIgnored("server.js", [".", "/", "..", "../x"])).toBe(false);
    expect(isIgnored("sub/x", ["/sub"])).toBe(true);
    expect(isIgnored("sub/x", ["./sub"])).toBe(true);
  });

  it(".blaxelignore lines replace the defaults (comments dropped) and .env.build is always added", () => {
    expect(parseIgnoreFile("# deps\nnode_modules\n\n  tmp  # scratch\n#only\n")).toEqual(["node_modules", "tmp", ".env.build"]);
    const d = tmp();
    expect(ignoreRules(d)).toEqual(DEFAULT_IGNORES);
    writeFileSync(join(d, ".blaxelignore"), "cache\n");
    expect(ignoreRules(d)).toEqual(["cache", ".env.build"]);
  });
});

describe("names and kinds", () => {
  it("slugs names: lowercase, [a-z0-9-], no edge dashes, at most 49", () => {
    expect(slugify("My_App v2!")).toBe("my-app-v2");
    expect(slugify("--Hello--World--")).toBe("hello-world");
    expect(slugify("x".repeat(60))).toHaveLength(49);
    expect(slugify(`${"a".repeat(48)}-b`)).toBe("a".repeat(48));
    expect(slugify("ÉTÉ")).toBe("t");
    expect(slugify("!!!")).toBe("");
  });

  it("takes the toml name, then -n, then the directory name", () => {
    expect(resolveName("From Toml", "flag", "/x/dir")).toBe("from-toml");
    expect(resolveName(undefined, "Flag_Name", "/x/dir")).toBe("flag-name");
    expect(resolveName(undefined, undefined, "/x/My Project")).toBe("my-project");
    expect(() => resolveName(undefined, "???", "/x")).toThrow(CliError);
  });

  it("maps kinds to API plurals", () => {
    expect(buildKind("sandbox")).toEqual({ plural: "sandboxes", singular: "sandbox" });
    expect(buildKind("Agent").plural).toBe("agents");
    expect(buildKind("fn").plural).toBe("functions");
    expect(buildKind("jobs").singular).toBe("job");
    expect(() => buildKind("model")).toThrow(/unknown type/);
  });
});

describe("blaxel.toml", () => {
  it("reads name, type, memory, port, [env], [runtime] and [build.args]", () => {
    const c = parseProjectToml(`name = "my-app"\ntype = "sandbox"\nmemory = 2048\nport = 3000\n[env]\nMODE = "prod"\nLEVEL = 3\n[runtime]\nmemory = 1024\nttl = "1h"\n[build.args]\nNODE_ENV = "production"\n`);
    expect(c).toEqual({ name: "my-app", type: "sandbox", memory: 2048, port: 3000, env: { MODE: "prod", LEVEL: "3" }, runtime: { memory: 1024, ttl: "1h" }, buildArgs: { NODE_ENV: "production" } });
  });

  it("is optional, and its errors name the file and line", () => {
    expect(parseProjectToml("")).toEqual({ env: {}, runtime: {}, buildArgs: {} });
    expect(() => parseProjectToml('name = "a"\nport = [', "x/blaxel.toml")).toThrow(/^x\/blaxel\.toml:2:/);
    expect(() => parseProjectToml("memory = \"big\"")).toThrow(/memory must be a positive integer/);
    expect(() => parseProjectToml("[env]\nA = [1]")).toThrow(/env\.A must be a string/);
  });
});

describe("env files and build args", () => {
  it("parses KEY=VALUE lines", () => {
    expect(parseDotenv('# c\nA=1\nexport B = two words \nC="quoted # not a comment"\nD=x # comment\nE=\nnot a line\n')).toEqual({ A: "1", B: "two words", C: "quoted # not a comment", D: "x", E: "" });
  });

  it("merges [build.args] with .env.build, which wins", () => {
    expect(buildEnvContent({ A: "toml", B: "toml" }, { B: "file" })).toBe("A=toml\nB=file\n");
    expect(buildEnvContent({}, {})).toBeUndefined();
  });

  it("resolves references in [env], drops BL_API_KEY, and lets env files win", () => {
    expect(substitute("${secrets.TOKEN}-${HOME_DIR:/root}-$USER-${NOPE}", { TOKEN: "t", USER: "u" })).toBe("t-/root-u-${NOPE}");
    expect(runtimeEnvs({ URL: "http://${HOST:localhost}:1", SAME: "toml" }, { SAME: "file", BL_API_KEY: "k", HOST: "h" }, {})).toEqual([
      { name: "URL", value: "http://h:1" },
      { name: "SAME", value: "file" },
      { name: "HOST", value: "h" },
    ]);
  });

  it("reads DIR/.env by default and requires -e files to exist", () => {
    const d = tmp();
    expect(readEnvFiles(d, undefined)).toEqual({});
    writeFileSync(join(d, ".env"), "A=1\n");
    writeFileSync(join(d, "prod.env"), "B=2\n");
    expect(readEnvFiles(d, undefined)).toEqual({ A: "1" });
    expect(readEnvFiles(d, ["prod.env"])).toEqual({ B: "2" });
    expect(() => readEnvFiles(d, ["missing.env"])).toThrow(/missing\.env not found/);
  });
});

describe("the archive", () => {
  it("zips the project with deflate and directory entries, leaving out ignored paths and symlinks", async () => {
    const d = tmp();
    const outside = tmp();
    writeFileSync(join(outside, "secret"), "host secret");
    mkdirSync(join(d, "src/lib"), { recursive: true });
    mkdirSync(join(d, "node_modules/dep"), { recursive: true });
    mkdirSync(join(d, ".git"));
    writeFileSync(join(d, "Dockerfile"), "FROM hangar/base\n");
    writeFileSync(join(d, "src/lib/a.js"), "a".repeat(1000));
    writeFileSync(join(d, "node_modules/dep/index.js"), "junk");
    writeFileSync(join(d, ".git/HEAD"), "ref");
    writeFileSync(join(d, ".env"), "A=1");
    symlinkSync(join(outside, "secret"), join(d, "leak"));
    symlinkSync(outside, join(d, "src/outside"));

    const plan = planArchive(d, ignoreRules(d));
    expect(plan.entries.map((e) => e.name)).toEqual(["Dockerfile", "src/", "src/lib/", "src/lib/a.js"]);
    expect(plan.symlinks).toEqual(["leak", "src/outside"]);

    const files = unzip(await zipArchive(plan, [{ name: ".env.build", data: "X=1\n" }]));
    expect([...files.keys()]).toEqual(["Dockerfile", "src/", "src/lib/", "src/lib/a.js", ".env.build"]);
    expect(files.get("src/lib/a.js")!.method).toBe(8);
    expect(files.get("src/lib/a.js")!.data.toString()).toBe("a".repeat(1000));
    expect(files.get(".env.build")!.data.toString()).toBe("X=1\n");
  });
});

describe("--since", () => {
  it("takes durations and dates, and gives bl's UTC form", () => {
    const now = Date.parse("2026-01-02T10:00:00Z");
    expect(parseSince("10m", now)).toBe("2026-01-02T09:50:00");
    expect(parseSince("2026-01-01T00:00:00Z", now)).toBe("2026-01-01T00:00:00");
    expect(() => parseSince("soon", now)).toThrow(/--since/);
  });
});
