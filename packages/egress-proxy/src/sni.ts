// Reads the server name (SNI) from the first bytes of a TLS connection — how transparently
// redirected HTTPS is attributed to a destination without decrypting it.

export type ClientHello = { kind: "incomplete" } | { kind: "invalid" } | { kind: "hello"; serverName: string | null };

/** Largest ClientHello accepted (several records). */
export const MAX_HELLO = 64 * 1024;

/** Parses a ClientHello from the start of a stream; "incomplete" means more bytes are needed. */
export function parseClientHello(buf: Buffer): ClientHello {
  // reassemble the handshake bytes from the leading records
  const hs: Buffer[] = [];
  let off = 0;
  let have = 0;
  let need = -1;
  while (need < 0 || have < need) {
    if (buf.length < off + 5) return buf.length > MAX_HELLO ? { kind: "invalid" } : { kind: "incomplete" };
    if (buf[off] !== 0x16 || buf[off + 1] !== 0x03) return { kind: "invalid" };
    const len = buf.readUInt16BE(off + 3);
    if (buf.length < off + 5 + len) return buf.length > MAX_HELLO ? { kind: "invalid" } : { kind: "incomplete" };
    hs.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0) {
      const first = Buffer.concat(hs);
      if (first.length < 4) continue;
      if (first[0] !== 0x01) return { kind: "invalid" };
      need = 4 + first.readUIntBE(1, 3);
      if (need > MAX_HELLO) return { kind: "invalid" };
    }
  }
  const h = Buffer.concat(hs).subarray(4, need);
  try {
    let p = 2 + 32; // version, random
    p += 1 + h[p]!; // session id
    p += 2 + h.readUInt16BE(p); // cipher suites
    p += 1 + h[p]!; // compression methods
    if (p >= h.length) return { kind: "hello", serverName: null };
    const end = p + 2 + h.readUInt16BE(p);
    p += 2;
    while (p + 4 <= end) {
      const type = h.readUInt16BE(p);
      const len = h.readUInt16BE(p + 2);
      const data = h.subarray(p + 4, p + 4 + len);
      p += 4 + len;
      if (type !== 0) continue;
      let q = 2;
      while (q + 3 <= data.length) {
        const nameType = data[q]!;
        const nameLen = data.readUInt16BE(q + 1);
        if (nameType === 0) return { kind: "hello", serverName: data.subarray(q + 3, q + 3 + nameLen).toString("ascii").toLowerCase() };
        q += 3 + nameLen;
      }
    }
    return { kind: "hello", serverName: null };
  } catch {
    return { kind: "invalid" };
  }
}
