// Quoting for /bin/sh command lines built from argument lists.

/** A word for /bin/sh: as is when plain, else single-quoted. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
