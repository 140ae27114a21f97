/**
 * Self-signed development certificates, made with WebCrypto and a small DER writer, so trying
 * edgemux out needs neither openssl nor a certificate authority.
 *
 * The certificate (RFC 5280) is ECDSA P-256 with SHA-256:
 *
 * ```
 * Certificate     = SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
 * tbsCertificate  = SEQUENCE { [0] EXPLICIT version 2 (v3), serialNumber (16 random bytes),
 *                   signature (ecdsa-with-SHA256), issuer, validity { notBefore, notAfter },
 *                   subject (= issuer), subjectPublicKeyInfo (WebCrypto's "spki" export),
 *                   [3] EXPLICIT extensions }
 * extensions      = subjectAltName (every name as dNSName), basicConstraints CA:FALSE
 *                   (critical), keyUsage digitalSignature (critical), extKeyUsage serverAuth,
 *                   subjectKeyIdentifier (SHA-1 of the public key, RFC 5280 §4.2.1.2 method 1)
 * signatureValue  = DER Ecdsa-Sig-Value SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3);
 *                   WebCrypto returns r||s as two fixed 32-byte halves instead
 * ```
 *
 * @module
 */

import {
  inspectCertificate,
  type InspectedCert,
  isCertificateName,
  normalizeName,
} from "./certificate.ts";
import {
  bitString,
  boolean,
  concat,
  explicit,
  octetString,
  oid,
  sequence,
  set,
  smallInteger,
  time,
  unsignedInteger,
  utf8String,
} from "./_der.ts";
import { encodePem } from "./pem.ts";
import { CertStore } from "./store.ts";

/** A certificate chain and its key, as PEM. */
export interface CertAndKeyPem {
  certPem: string;
  /** PKCS#8 (`-----BEGIN PRIVATE KEY-----`). */
  keyPem: string;
}

/** Options for {@linkcode createSelfSignedCertificate}. */
export interface SelfSignedOptions {
  /** How long the certificate is valid from `now`. Default 365. */
  days?: number;
  /** The moment the certificate is made. Default: now. */
  now?: Date;
}

/** The organisation in every development certificate's subject, so users can recognise it. */
export const DEVELOPMENT_ORGANIZATION = "edgemux development certificate";
const DAY_MS = 24 * 60 * 60 * 1000;
// Back-dated a little so a client whose clock lags the server's still accepts it.
const BACKDATE_MS = 60 * 60 * 1000;
// ub-common-name (RFC 5280 Appendix A); a longer first name is left out of the subject.
const MAX_CN_LENGTH = 64;

const OID = {
  commonName: "2.5.4.3",
  organizationName: "2.5.4.10",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
};

/**
 * Makes a self-signed certificate for `names` with a new ECDSA P-256 key.
 *
 * @param names DNS names, wildcards (`*.example.test`) allowed; the first is the subject CN
 * @param opts validity length and start
 * @returns the certificate and its PKCS#8 key, as PEM
 * @throws {TypeError} when `names` is empty or holds something that is not a DNS name
 * @example
 * ```ts
 * import { X509Certificate } from "node:crypto";
 * import assert from "node:assert/strict";
 *
 * const { certPem } = await createSelfSignedCertificate(["localhost", "*.example.test"]);
 * assert.equal(new X509Certificate(certPem).subjectAltName, "DNS:localhost, DNS:*.example.test");
 * ```
 */
export async function createSelfSignedCertificate(
  names: string[],
  opts: SelfSignedOptions = {},
): Promise<CertAndKeyPem> {
  const dnsNames = checkNames(names);
  const days = opts.days ?? 365;
  if (!(days > 0)) throw new RangeError(`days must be positive, got ${days}`);
  const now = opts.now ?? new Date();

  const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  const point = new Uint8Array(await crypto.subtle.exportKey("raw", keys.publicKey));
  const keyId = new Uint8Array(await crypto.subtle.digest("SHA-1", point)).subarray(0, 20);

  const serial = crypto.getRandomValues(new Uint8Array(16));
  // Positive (top bit clear) and minimal (first byte non-zero), still 126 random bits.
  serial[0] = (serial[0] & 0x7f) | 0x40;

  const rdns = [set([sequence([oid(OID.organizationName), utf8String(DEVELOPMENT_ORGANIZATION)])])];
  if (dnsNames[0].length <= MAX_CN_LENGTH) {
    rdns.push(set([sequence([oid(OID.commonName), utf8String(dnsNames[0])])]));
  }
  const name = sequence(rdns);
  const algorithm = sequence([oid(OID.ecdsaWithSha256)]);
  const extension = (id: string, critical: boolean, value: Uint8Array) =>
    // DER leaves out a field equal to its DEFAULT, and `critical` defaults to FALSE.
    sequence(
      critical ? [oid(id), boolean(true), octetString(value)] : [oid(id), octetString(value)],
    );
  const encoder = new TextEncoder();
  const extensions = sequence([
    extension(
      OID.subjectAltName,
      false,
      // dNSName is [2] IMPLICIT IA5String: the tag replaces IA5String's, primitive.
      sequence(dnsNames.map((n) => concat([Uint8Array.of(0x82, n.length), encoder.encode(n)]))),
    ),
    // cA defaults to FALSE, so CA:FALSE is an empty SEQUENCE.
    extension(OID.basicConstraints, true, sequence([])),
    // digitalSignature is bit 0, the top bit of the first byte; the other 7 bits are unused.
    extension(OID.keyUsage, true, bitString(Uint8Array.of(0x80), 7)),
    extension(OID.extKeyUsage, false, sequence([oid(OID.serverAuth)])),
    extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
  ]);

  const tbs = sequence([
    explicit(0, smallInteger(2)),
    unsignedInteger(serial),
    algorithm,
    name,
    sequence([
      time(new Date(now.getTime() - BACKDATE_MS)),
      time(new Date(now.getTime() + days * DAY_MS)),
    ]),
    name,
    spki,
    explicit(3, extensions),
  ]);
  const rawSignature = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, keys.privateKey, tbs),
  );
  const certificate = sequence([tbs, algorithm, bitString(ecdsaSigValue(rawSignature))]);
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return {
    certPem: encodePem("CERTIFICATE", certificate),
    keyPem: encodePem("PRIVATE KEY", pkcs8),
  };
}

/**
 * Converts WebCrypto's ECDSA signature (r and s as equal-length big-endian halves) into the
 * DER `Ecdsa-Sig-Value` X.509 carries. Each half may start with zero bytes (dropped) or with
 * its top bit set (a zero byte added), so the result is 70 to 72 bytes for P-256.
 */
export function ecdsaSigValue(raw: Uint8Array): Uint8Array {
  if (raw.length === 0 || raw.length % 2 !== 0) {
    throw new RangeError(`an ECDSA signature has two equal halves, got ${raw.length} bytes`);
  }
  const half = raw.length / 2;
  return sequence([unsignedInteger(raw.subarray(0, half)), unsignedInteger(raw.subarray(half))]);
}

function checkNames(names: string[]): string[] {
  if (names.length === 0) throw new TypeError("a development certificate needs at least one name");
  const out: string[] = [];
  for (const raw of names) {
    const name = normalizeName(raw);
    // 127 keeps the one-byte length form above; DNS labels are shorter anyway.
    if (!isCertificateName(name) || name.length > 127) {
      throw new TypeError(`"${raw}" is not a DNS name a certificate can carry`);
    }
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/** Options for {@linkcode ensureDevelopmentCertificate}. */
export interface EnsureOptions extends SelfSignedOptions {
  /** Make a new certificate when the kept one has fewer days left than this. Default 30. */
  renewBeforeDays?: number;
}

/** What {@linkcode ensureDevelopmentCertificate} returns. */
export interface DevelopmentCertificate extends CertAndKeyPem {
  /** True when a new certificate was made, false when the kept one was reused. */
  created: boolean;
  /** The certificate file, `DIR/development.crt`. */
  path: string;
  /** The key file, `DIR/development.key` (mode 0600). */
  keyPath: string;
}

/** The certificate file name inside the development directory. */
export const DEVELOPMENT_CERT_FILE = "development.crt";
/** The key file name inside the development directory. */
export const DEVELOPMENT_KEY_FILE = "development.key";

/**
 * Keeps one development certificate in `dir`: reuses the one there when it covers every name
 * and stays valid for more than `renewBeforeDays` (30) days, otherwise makes a new one (valid
 * `days`, default 365) and replaces the files. The directory is created with mode 0700 and
 * the key with mode 0600. The files are named `development.crt` and `development.key`, the
 * `NAME.crt` + `NAME.key` layout, so the directory can also be loaded like any other.
 *
 * @param dir the directory to keep the certificate in
 * @param names DNS names the certificate must cover
 * @param opts validity, the renewal margin and the clock
 * @returns the certificate and key, whether they are new, and where they are
 * @throws {TypeError} for invalid names, and file-system errors when `dir` cannot be written
 */
export async function ensureDevelopmentCertificate(
  dir: string,
  names: string[],
  opts: EnsureOptions = {},
): Promise<DevelopmentCertificate> {
  const wanted = checkNames(names);
  const now = opts.now ?? new Date();
  const path = `${dir}/${DEVELOPMENT_CERT_FILE}`;
  const keyPath = `${dir}/${DEVELOPMENT_KEY_FILE}`;
  const renewBefore = (opts.renewBeforeDays ?? 30) * DAY_MS;

  const kept = await readKept(path, keyPath);
  if (kept !== null) {
    const store = new CertStore([kept], { defaultName: null });
    const valid = kept.notBefore.getTime() <= now.getTime() &&
      kept.notAfter.getTime() - now.getTime() > renewBefore;
    if (valid && wanted.every((n) => store.covers(n, now) === kept)) {
      return { certPem: kept.certPem, keyPem: kept.keyPem, created: false, path, keyPath };
    }
  }

  const made = await createSelfSignedCertificate(wanted, { days: opts.days ?? 365, now });
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  // Key first: a reader that sees the new certificate also finds its key.
  await replaceFile(keyPath, made.keyPem, 0o600);
  await replaceFile(path, made.certPem, 0o644);
  return { ...made, created: true, path, keyPath };
}

async function readKept(path: string, keyPath: string): Promise<InspectedCert | null> {
  try {
    const [cert, key] = await Promise.all([Deno.readTextFile(path), Deno.readTextFile(keyPath)]);
    const inspected = inspectCertificate(cert, key, { cert: path, key: keyPath });
    return "problem" in inspected ? null : inspected;
  } catch {
    // Missing or unreadable: make a new one.
    return null;
  }
}

/** Writes beside the target and renames over it, so nobody reads a half-written file. */
async function replaceFile(target: string, text: string, mode: number): Promise<void> {
  const slash = target.lastIndexOf("/");
  const tmp = `${target.slice(0, slash)}/.${target.slice(slash + 1)}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeTextFile(tmp, text, { mode, createNew: true });
    // The umask may have narrowed the mode; 0600 must be exact for the key.
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, target);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
}
