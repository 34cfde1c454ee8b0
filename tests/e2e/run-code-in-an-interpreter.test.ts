// A user runs code in the SDK's CodeInterpreter (a sandbox of the hub image blaxel/jupyter-server):
// output streams line by line as the code runs, each context keeps its own kernel state, a
// matplotlib chart comes back as a PNG result, an exception as an error with its traceback.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, startHangar, useSdkAgainst } from "./harness.js";

let h: RunningHangar;
let ci: import("@blaxel/core").CodeInterpreter;

beforeAll(async () => {
  h = await startHangar();
  useSdkAgainst(h);
  const { CodeInterpreter } = await import("@blaxel/core");
  // the first use on a machine builds blaxel/jupyter-server (minutes, once)
  ci = await CodeInterpreter.create({ name: "interp", memory: 2048 });
}, 15 * 60_000);

afterAll(async () => {
  await h?.dispose();
});

describe("CodeInterpreter", () => {
  it("is a sandbox of blaxel/jupyter-server with the jupyter port and its service listed", async () => {
    expect(ci.spec.runtime?.image).toBe("blaxel/jupyter-server");
    expect(ci.spec.runtime?.ports?.[0]?.target).toBe(8888);
    const procs = await ci.process.list();
    expect(procs.find((p) => p.name === "jupyter-server")?.status).toBe("running");
  });

  it("streams stdout and stderr as the code runs, then the result and the execution count", async () => {
    const seen: Array<{ at: number; text: string; err: boolean }> = [];
    const t0 = Date.now();
    const exec = await ci.runCode("import sys, time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('oops', file=sys.stderr, flush=True)\nprint('last')\n6 * 7", {
      onStdout: (m) => seen.push({ at: Date.now() - t0, text: m.text, err: false }),
      onStderr: (m) => seen.push({ at: Date.now() - t0, text: m.text, err: true }),
    });
    expect(exec.logs.stdout.join("")).toBe("first\nlast\n");
    expect(exec.logs.stderr.join("")).toBe("oops\n");
    // the first line arrived before the code finished sleeping
    const first = seen.find((s) => s.text.includes("first"))!;
    const last = seen.find((s) => s.text.includes("last"))!;
    expect(last.at - first.at).toBeGreaterThan(1_000);
    expect(exec.results).toHaveLength(1);
    expect((exec.results[0] as unknown as { text: string }).text).toBe("42");
    expect(exec.error).toBeNull();
    expect(exec.executionCount).toBeGreaterThan(0);
  });

  it("keeps state per context: the default one, and new contexts apart from it and each other", async () => {
    await ci.runCode("x = 'default'");
    const a = await ci.createCodeContext({ language: "python" });
    const b = await ci.createCodeContext({ cwd: "/tmp" });
    expect(a.id).not.toBe(b.id);
    await ci.runCode("x = 'in a'", { context: a });
    const text = async (code: string, context?: typeof a) => ((await ci.runCode(code, context ? { context } : {})).results[0] as unknown as { text?: string } | undefined)?.text;
    expect(await text("x")).toBe("'default'");
    expect(await text("x", a)).toBe("'in a'");
    const missing = await ci.runCode("x", { context: b });
    expect(missing.error?.name).toBe("NameError");
    expect(await text("import os; os.getcwd()", b)).toBe("'/tmp'");
  });

  it("returns a matplotlib chart as a PNG result", async () => {
    const exec = await ci.runCode("import matplotlib.pyplot as plt\nplt.plot([1, 4, 9, 16])\nplt.title('squares')\nplt.show()");
    expect(exec.error).toBeNull();
    const png = exec.results.map((r) => (r as unknown as { png?: string }).png).find(Boolean);
    expect(png).toBeDefined();
    expect(Buffer.from(png!, "base64").subarray(1, 4).toString()).toBe("PNG");
    // pandas and rich (HTML) results too
    const df = await ci.runCode("import pandas as pd\npd.DataFrame({'a': [1, 2]})");
    expect((df.results[0] as unknown as { html?: string }).html).toContain("<table");
  });

  it("reports an exception with its name, value and traceback, and calls onError", async () => {
    const errors: string[] = [];
    const exec = await ci.runCode("def f():\n    return 1 / 0\nf()", { onError: (e) => errors.push(e.name) });
    expect(exec.error?.name).toBe("ZeroDivisionError");
    expect(exec.error?.value).toBe("division by zero");
    expect(String(exec.error?.traceback)).toContain("f()");
    expect(errors).toEqual(["ZeroDivisionError"]);
    // the kernel lives on
    expect(((await ci.runCode("1 + 1")).results[0] as unknown as { text: string }).text).toBe("2");
  });

  it("applies envs to one run only, and refuses an unsupported language with the server's message", async () => {
    const withEnv = await ci.runCode("import os; os.environ.get('GREETING')", { envs: { GREETING: "hi" } });
    expect((withEnv.results[0] as unknown as { text: string }).text).toBe("'hi'");
    const after = await ci.runCode("import os; os.environ.get('GREETING') is None");
    expect((after.results[0] as unknown as { text: string }).text).toBe("True");
    await expect(ci.runCode("1", { language: "cobol" })).rejects.toThrow(/not supported/);
  });
});
