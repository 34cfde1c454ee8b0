// Formatting helpers that reproduce what the Go sandbox-api (and so the SDK) expects on the wire.

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFBLK = 0o060000;
const S_IFCHR = 0o020000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;

// Go's os.FileMode type bits (io/fs).
const GO_MODE_DIR = 2 ** 31;
const GO_MODE_SYMLINK = 2 ** 27;
const GO_MODE_DEVICE = 2 ** 26;
const GO_MODE_NAMED_PIPE = 2 ** 25;
const GO_MODE_SOCKET = 2 ** 24;
const GO_MODE_SETUID = 2 ** 23;
const GO_MODE_SETGID = 2 ** 22;
const GO_MODE_CHAR_DEVICE = 2 ** 21;
const GO_MODE_STICKY = 2 ** 20;

/** Converts a POSIX st_mode into Go's os.FileMode value. */
export function goFileMode(stMode: number): number {
  let mode = stMode & 0o777;
  switch (stMode & S_IFMT) {
    case S_IFDIR: mode += GO_MODE_DIR; break;
    case S_IFLNK: mode += GO_MODE_SYMLINK; break;
    case S_IFBLK: mode += GO_MODE_DEVICE; break;
    case S_IFCHR: mode += GO_MODE_DEVICE + GO_MODE_CHAR_DEVICE; break;
    case S_IFIFO: mode += GO_MODE_NAMED_PIPE; break;
    case S_IFSOCK: mode += GO_MODE_SOCKET; break;
  }
  if (stMode & 0o4000) mode += GO_MODE_SETUID;
  if (stMode & 0o2000) mode += GO_MODE_SETGID;
  if (stMode & 0o1000) mode += GO_MODE_STICKY;
  return mode;
}

/** Go's fmt.Sprintf("%o", fileMode): "644" for a plain file, "20000000755" for a directory. */
export function goPermissions(stMode: number): string {
  return goFileMode(stMode).toString(8);
}

/** Parses an octal permission string ("0644", "755"); undefined when absent, throws on garbage. */
export function parseOctalMode(value: string | undefined | null): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const s = value.trim();
  if (!/^0?[0-7]{1,4}$/.test(s) && !/^0o[0-7]{1,4}$/i.test(s)) {
    throw new RangeError(`invalid permissions format '${value}': expected an octal string such as "0644"`);
  }
  return parseInt(s.replace(/^0o/i, ""), 8);
}

/** Go's time.Format("Mon, 02 Jan 2006 15:04:05 GMT") of a UTC time; JS toUTCString has the same layout. */
export function goHttpDate(date: Date | number): string {
  return (typeof date === "number" ? new Date(date) : date).toUTCString();
}

/** Go's RFC 3339 JSON time encoding (RFC3339Nano, trailing zeros of the fraction trimmed), in UTC. */
export function goRfc3339(ms: number): string {
  const whole = Math.floor(ms / 1000);
  const base = new Date(whole * 1000).toISOString().slice(0, 19);
  // Keep microsecond precision of fractional milliseconds (stat gives ns, the agent ms with a fraction).
  const micros = Math.round((ms - whole * 1000) * 1000);
  if (micros <= 0 || micros >= 1_000_000) return `${base}Z`;
  const frac = String(micros).padStart(6, "0").replace(/0+$/, "");
  return `${base}.${frac}Z`;
}

/** Go's time.Duration.String() for a non-negative duration in milliseconds, e.g. "1h30m0s", "2.5s", "150ms". */
export function goDuration(ms: number): string {
  if (ms <= 0) return "0s";
  if (ms < 1000) {
    const v = Math.round(ms * 1000) / 1000;
    return `${trimNumber(v)}ms`;
  }
  const totalSeconds = ms / 1000;
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds - h * 3600) / 60);
  const s = totalSeconds - h * 3600 - m * 60;
  const sec = `${trimNumber(Math.round(s * 1e6) / 1e6)}s`;
  if (h > 0) return `${h}h${m}m${sec}`;
  if (m > 0) return `${m}m${sec}`;
  return sec;
}

function trimNumber(v: number): string {
  return v.toFixed(6).replace(/\.?0+$/, "");
}
