// The Hangar CA: an ECDSA P-256 certificate authority kept in the data directory (key mode 0600,
// never mounted into sandboxes — only its certificate is), and server certificates minted from it
// on the fly for intercepted destinations, cached as TLS contexts.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from "node:crypto";
import { promises as fs } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import * as x509 from "@peculiar/asn1-x509";

const ECDSA_SHA256 = "1.2.840.10045.4.3.2";
const OID_CN = "2.5.4.3";
const OID_O = "2.5.4.10";
const DAY = 86_400_000;

function dn(cn: string, org?: string): x509.Name {
  const rdn = (type: string, value: string) =>
    new x509.RelativeDistinguishedName([new x509.AttributeTypeAndValue({ type, value: new x509.AttributeValue({ utf8String: value }) })]);
  return new x509.Name([...(org ? [rdn(OID_O, org)] : []), rdn(OID_CN, cn)]);
}

function ext(id: string, critical: boolean, value: object): x509.Extension {
  return new x509.Extension({ extnID: id, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

interface CertInput {
  subject: x509.Name;
  issuer: x509.Name;
  publicKey: KeyObject;
  signingKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  extensions: x509.Extension[];
}

/** A DER X.509 v3 certificate signed with ECDSA-SHA256 by `signingKey`. */
function makeCertificate(c: CertInput): Buffer {
  const tbs = new x509.TBSCertificate({
    version: x509.Version.v3,
    // positive 16-byte serial
    serialNumber: new Uint8Array([0x01, ...randomBytes(15)]).buffer,
    signature: new x509.AlgorithmIdentifier({ algorithm: ECDSA_SHA256 }),
    issuer: c.issuer,
    subject: c.subject,
    validity: new x509.Validity({ notBefore: c.notBefore, notAfter: c.notAfter }),
    subjectPublicKeyInfo: AsnConvert.parse(c.publicKey.export({ type: "spki", format: "der" }), x509.SubjectPublicKeyInfo),
    extensions: new x509.Extensions(c.extensions),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const signature = sign("sha256", tbsDer, { key: c.signingKey, dsaEncoding: "der" });
  const cert = new x509.Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: new x509.AlgorithmIdentifier({ algorithm: ECDSA_SHA256 }),
    signatureValue: new Uint8Array(signature).buffer,
  });
  return Buffer.from(AsnConvert.serialize(cert));
}

export function derToPem(der: Buffer): string {
  return `-----BEGIN CERTIFICATE-----\n${der.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n")}-----END CERTIFICATE-----\n`;
}

export interface LeafCertificate {
  certPem: string;
  keyPem: string;
}

export interface CaOptions {
  /** Validity of minted server certificates. Default 7 days (re-minted after half of it). */
  leafDays?: number;
  /** Cached TLS contexts. Default 2,000. */
  cacheSize?: number;
}

export class CertificateAuthority {
  readonly certPem: string;
  private readonly name: x509.Name;
  private readonly leafKey: KeyObject;
  private readonly leafPub: KeyObject;
  private readonly leafKeyPem: string;
  private readonly leafDays: number;
  private readonly cacheSize: number;
  private readonly contexts = new Map<string, { ctx: SecureContext; renewAt: number }>();
  private readonly keyIdentifier: ArrayBuffer;

  private constructor(
    private readonly key: KeyObject,
    certPem: string,
    opts: CaOptions,
  ) {
    this.certPem = certPem;
    this.name = AsnConvert.parse(new X509Certificate(certPem).raw, x509.Certificate).tbsCertificate.subject;
    // one key for every minted certificate; it lives in memory only
    const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
    this.leafKey = pair.privateKey;
    this.leafPub = pair.publicKey;
    this.leafKeyPem = pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    this.leafDays = opts.leafDays ?? 7;
    this.cacheSize = opts.cacheSize ?? 2000;
    this.keyIdentifier = keyId(createPublicKey(key));
  }

  /** A new CA held in memory (tests' own CAs). */
  static create(commonName = "Hangar egress CA", opts: CaOptions = {}): CertificateAuthority {
    const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const name = dn(commonName, "Hangar");
    const now = Date.now();
    const der = makeCertificate({
      subject: name,
      issuer: name,
      publicKey: pair.publicKey,
      signingKey: pair.privateKey,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 3650 * DAY),
      extensions: [
        ext(x509.id_ce_basicConstraints, true, new x509.BasicConstraints({ cA: true, pathLenConstraint: 0 })),
        ext(x509.id_ce_keyUsage, true, new x509.KeyUsage(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)),
        ext(x509.id_ce_subjectKeyIdentifier, false, new x509.SubjectKeyIdentifier(keyId(pair.publicKey))),
      ],
    });
    return new CertificateAuthority(pair.privateKey, derToPem(der), opts);
  }

  /**
   * The CA of a data directory: `<dir>/ca.key` (0600) and `<dir>/ca.crt`, created on first use.
   * The directory is made 0700.
   */
  static async loadOrCreate(dir: string, opts: CaOptions = {}): Promise<CertificateAuthority> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.chmod(dir, 0o700);
    const keyFile = join(dir, "ca.key");
    const certFile = join(dir, "ca.crt");
    try {
      const [keyPem, certPem] = await Promise.all([fs.readFile(keyFile, "utf8"), fs.readFile(certFile, "utf8")]);
      await fs.chmod(keyFile, 0o600);
      const key = createPrivateKey(keyPem);
      const cert = new X509Certificate(certPem);
      if (!cert.checkPrivateKey(key)) throw new Error(`${certFile} does not belong to ${keyFile}`);
      return new CertificateAuthority(key, certPem, opts);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    const ca = CertificateAuthority.create("Hangar egress CA", opts);
    const keyPem = ca.key.export({ type: "pkcs8", format: "pem" }).toString();
    // key first, each written to a temporary name with its final mode, then renamed
    await fs.writeFile(`${keyFile}.tmp`, keyPem, { mode: 0o600 });
    await fs.rename(`${keyFile}.tmp`, keyFile);
    await fs.writeFile(`${certFile}.tmp`, ca.certPem, { mode: 0o644 });
    await fs.rename(`${certFile}.tmp`, certFile);
    return ca;
  }

  /** A server certificate for `host` — or for several names (DNS names, "*.name" wildcards, IPv4 addresses). */
  issue(host: string | string[], days = this.leafDays): LeafCertificate {
    const names = Array.isArray(host) ? host : [host];
    const now = Date.now();
    const der = makeCertificate({
      subject: dn(names[0]!.length <= 64 ? names[0]! : "hangar-intercepted"),
      issuer: this.name,
      publicKey: this.leafPub,
      signingKey: this.key,
      notBefore: new Date(now - 3600_000),
      notAfter: new Date(now + days * DAY),
      extensions: [
        ext(x509.id_ce_basicConstraints, true, new x509.BasicConstraints({ cA: false })),
        ext(x509.id_ce_keyUsage, true, new x509.KeyUsage(x509.KeyUsageFlags.digitalSignature)),
        ext(x509.id_ce_extKeyUsage, false, new x509.ExtendedKeyUsage([x509.id_kp_serverAuth])),
        ext(x509.id_ce_subjectAltName, false, new x509.SubjectAlternativeName(names.map((n) => new x509.GeneralName(isIP(n) === 4 ? { iPAddress: n } : { dNSName: n })))),
        ext(x509.id_ce_authorityKeyIdentifier, false, new x509.AuthorityKeyIdentifier({ keyIdentifier: new x509.KeyIdentifier(this.keyIdentifier) })),
      ],
    });
    return { certPem: derToPem(der), keyPem: this.leafKeyPem };
  }

  /** A TLS server context presenting a minted certificate for `host`; cached. */
  contextFor(host: string): SecureContext {
    const now = Date.now();
    const hit = this.contexts.get(host);
    if (hit && hit.renewAt > now) {
      // refresh its place in the LRU order
      this.contexts.delete(host);
      this.contexts.set(host, hit);
      return hit.ctx;
    }
    const leaf = this.issue(host);
    const ctx = createSecureContext({ cert: leaf.certPem + this.certPem, key: leaf.keyPem });
    this.contexts.set(host, { ctx, renewAt: now + (this.leafDays * DAY) / 2 });
    if (this.contexts.size > this.cacheSize) this.contexts.delete(this.contexts.keys().next().value!);
    return ctx;
  }

  /** Minted contexts held in the cache (tests). */
  get cached(): number {
    return this.contexts.size;
  }
}

/** SHA-1 of the public key's bits, the usual key identifier. */
function keyId(pub: KeyObject): ArrayBuffer {
  const spki = AsnConvert.parse(pub.export({ type: "spki", format: "der" }), x509.SubjectPublicKeyInfo);
  return new Uint8Array(createHash("sha1").update(Buffer.from(spki.subjectPublicKey)).digest()).buffer;
}
