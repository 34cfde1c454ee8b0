// The shell's own shortcut, taken before the shell starts: a command that is one simple command
// (words of plain characters, no expansion, quoting, redirection or shell syntax) is what
// `sh -c` would exec directly, so it is exec'ed directly and the shell's start-up (~1 ms) saved.

/** Words the shell itself gives meaning to: builtins without an equal program, and keywords. */
const SHELL_WORDS = new Set(
  (
    "alias bg bind break builtin caller cd command compgen complete compopt continue declare dirs disown enable eval exec exit " +
    "export fc fg getopts hash help history jobs let local logout mapfile popd pushd read readarray readonly return set shift " +
    "shopt source suspend times trap type typeset ulimit umask unalias unset wait . : " +
    "case coproc do done elif else esac fi for function if in select then time until while"
  ).split(" "),
);

/** Plain words: no character the shell would expand, quote, redirect or split on. */
const SIMPLE = /^[A-Za-z0-9_./:@+,=-]+( +[A-Za-z0-9_./:@+,=-]+)*$/;

/**
 * The argv to exec for a command with no shell syntax in it, or null when it needs the shell.
 * `env` is the process's environment: a shell start-up file (BASH_ENV, ENV) keeps the shell.
 */
export function directArgv(command: string, env: Record<string, string>): string[] | null {
  const trimmed = command.trim();
  if (trimmed.length > 4096 || !SIMPLE.test(trimmed)) return null;
  if (env.BASH_ENV !== undefined || env.ENV !== undefined) return null;
  const argv = trimmed.split(/ +/);
  const first = argv[0]!;
  if (first.includes("=") || SHELL_WORDS.has(first)) return null;
  return argv;
}
