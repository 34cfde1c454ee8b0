import { describe, expect, it } from "vitest";
import { directArgv } from "./direct-exec.js";

describe("direct exec of simple commands", () => {
  it("splits plain words", () => {
    expect(directArgv("true", {})).toEqual(["true"]);
    expect(directArgv("  ls -la /tmp  ", {})).toEqual(["ls", "-la", "/tmp"]);
    expect(directArgv("python3 -m http.server 3000", {})).toEqual(["python3", "-m", "http.server", "3000"]);
    expect(directArgv("git config user.name=x", {})).toEqual(["git", "config", "user.name=x"]);
  });

  it("leaves anything with shell syntax, builtins, keywords or assignments to the shell", () => {
    for (const c of [
      "echo $HOME",
      "ls *.ts",
      "echo 'a b'",
      'echo "a"',
      "a && b",
      "a; b",
      "a | b",
      "a > f",
      "sleep 1 &",
      "cd /tmp",
      "export A=1",
      "exit 3",
      "source x",
      ". x",
      "time ls",
      "FOO=1 env",
      "ls ~",
      "echo {a,b}",
      "kill %1",
      "a\nb",
      "a\tb",
      "echo `id`",
      "echo \\x",
      "# comment",
      "",
    ]) {
      expect(directArgv(c, {}), c).toBeNull();
    }
  });

  it("keeps the shell when a start-up file would run first", () => {
    expect(directArgv("true", { BASH_ENV: "/etc/profile" })).toBeNull();
    expect(directArgv("true", { ENV: "/etc/profile" })).toBeNull();
  });
});
