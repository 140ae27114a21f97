/**
 * Checking one certificate chain and its private key, and reading what selection needs from
 * them. Pure apart from the parsing done by `node:crypto`: text in, a value or a problem out.
 *
 * @module
 */

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { type PemBlock, PemError, splitPem } from "./pem.ts";

/** A usable certificate: a chain, its key, and the facts selection and warnings need. */
export interface InspectedCert {
  /** The whole chain as PEM, leaf first; what the SNI resolver returns as `cert`. */
  certPem: string;
  /** The private key of the leaf as PEM; what the SNI resolver returns as `key`. */
  keyPem: string;
  /**
   * DNS names the leaf covers, lowercased, without a trailing dot, e.g. `*.example.test` and
   * `example.test`. Taken from the subjectAltName extension; the subject CN is used only when
   * the certificate has no subjectAltName extension at all (as clients do, RFC 6125 §6.4.4).
   */
  names: string[];
  notBefore: Date;
  notAfter: Date;
  /** The leaf's subject, e.g. `O=edgemux tests, CN=vault.example.test`. */
  subject: string;
  issuer: string;
  /** SHA-256 of the leaf's DER, as colon-separated upper-case hex (openssl's format). */
  fingerprint: string;
  /** The leaf is signed by its own key. */
  selfSigned: boolean;
  /**
   * The leaf says it is a CA (basicConstraints CA:TRUE), as `openssl req -x509` makes by
   * default. Usable, but strict clients (rustls, Deno's own `connectTls`) refuse a CA
   * certificate as a server certificate, so the loader warns about it.
   */
  ca: boolean;
  /** The files the chain and key came from, for messages. */
  origin: { cert: string; key: string };
}

/** Why a chain and key cannot be used, and what to do about it. */
export interface CertProblem {
  /** One sentence naming the file. */
  problem: string;
  fix: string;
}

/** PEM labels of the unencrypted private keys edgemux reads. */
export const KEY_LABELS: ReadonlySet<string> = new Set([
  "PRIVATE KEY",
  "EC PRIVATE KEY",
  "RSA PRIVATE KEY",
]);
// The key types rustls can sign a TLS 1.2/1.3 handshake with.
const KEY_TYPES = new Set(["ec", "rsa", "ed25519"]);
// A DNS name as it may appear in a certificate: labels of letters, digits, "-" and "_"
// (the latter occurs in real internal names), optionally with a whole-label "*" first.
const DNS_NAME =
  /^(?:\*\.)?(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Checks a certificate chain against its private key and extracts what selecting it by SNI
 * needs. The chain may be in any order; the certificate the key belongs to becomes the leaf
 * and is put first. Validity dates are not judged here (the loader warns about them).
 *
 * @param chainPem the text of the certificate file (the chain, possibly with the key)
 * @param keyPem the text of the key file (the same text when both are in one file)
 * @param origin the file paths, used in messages and kept in the result
 * @returns the inspected certificate, or a problem whose message names the file and a fix
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = new URL("../../../testdata/certs/", import.meta.url);
 * const result = inspectCertificate(
 *   Deno.readTextFileSync(new URL("edge-wildcard.pem", dir)),
 *   Deno.readTextFileSync(new URL("edge-wildcard.key", dir)),
 *   { cert: "edge-wildcard.pem", key: "edge-wildcard.key" },
 * );
 * assert.ok(!("problem" in result));
 * assert.deepEqual(result.names, ["*.example.test", "example.test"]);
 * ```
 */
export function inspectCertificate(
  chainPem: string,
  keyPem: string,
  origin: { cert: string; key: string },
): InspectedCert | CertProblem {
  const sameFile = origin.cert === origin.key;
  const chainBlocks = readBlocks(chainPem, origin.cert);
  if ("problem" in chainBlocks) return chainBlocks;
  const keyBlocks = sameFile ? chainBlocks : readBlocks(keyPem, origin.key);
  if ("problem" in keyBlocks) return keyBlocks;

  const certBlocks = chainBlocks.filter((b) => b.label === "CERTIFICATE");
  if (certBlocks.length === 0) return noCertificate(chainBlocks, origin.cert);
  const certs: X509Certificate[] = [];
  for (const [i, block] of certBlocks.entries()) {
    try {
      certs.push(new X509Certificate(block.der));
    } catch (error) {
      return {
        problem: `certificate ${i + 1} of ${certBlocks.length} in "${origin.cert}" cannot be ` +
          `parsed as X.509 (${errorText(error)})`,
        fix: "replace the file with the chain your certificate authority issued " +
          "(check it with `openssl x509 -noout -text -in FILE`)",
      };
    }
  }

  const key = readKey(keyBlocks, origin.key, sameFile);
  if ("problem" in key) return key;

  const leafIndex = certs.findIndex((cert) => keyMatches(cert, key.key));
  if (leafIndex === -1) {
    const first = certs[0];
    return {
      problem: `the private key in "${origin.key}" does not belong to ${
        certs.length === 1 ? "the certificate" : "any certificate"
      } in "${origin.cert}" (${describe(first)})`,
      fix: "pair the certificate with the key it was issued for; the two public keys must be " +
        `equal: compare \`openssl x509 -noout -pubkey -in ${origin.cert}\` with ` +
        `\`openssl pkey -pubout -in ${origin.key}\``,
    };
  }
  const leaf = certs[leafIndex];
  const ordered = [leafIndex, ...certBlocks.map((_, i) => i).filter((i) => i !== leafIndex)];

  const names = certificateNames(leaf);
  if (names.length === 0) {
    if (leaf.ca) {
      return {
        problem: `"${origin.cert}" holds a CA certificate (${describe(leaf)}) that names no ` +
          "server, so no client name can select it",
        fix: "point at the server (leaf) certificate the CA issued, with the CA appended after " +
          "it if clients need it, not at the CA certificate itself",
      };
    }
    return {
      problem: `the certificate in "${origin.cert}" (${describe(leaf)}) names no DNS server ` +
        "name (no DNS subjectAltName, and no subject CN to fall back on), so no client name " +
        "can select it",
      fix: "issue the certificate with the server names as subjectAltName DNS entries, e.g. " +
        "`-addext subjectAltName=DNS:example.tld,DNS:www.example.tld`",
    };
  }

  return {
    certPem: ordered.map((i) => certBlocks[i].text).join(""),
    keyPem: key.block.text,
    names,
    notBefore: leaf.validFromDate,
    notAfter: leaf.validToDate,
    subject: formatName(leaf.subject),
    issuer: formatName(leaf.issuer),
    fingerprint: leaf.fingerprint256,
    selfSigned: isSelfSigned(leaf),
    ca: leaf.ca,
    origin: { cert: origin.cert, key: origin.key },
  };
}

function readBlocks(text: string, path: string): PemBlock[] | CertProblem {
  try {
    return splitPem(text);
  } catch (error) {
    if (!(error instanceof PemError)) throw error;
    return {
      problem: `"${path}" is not a valid PEM file: ${error.message}`,
      fix: "copy the file again from its source; a PEM block must keep its BEGIN and END " +
        "lines and every base64 line in between",
    };
  }
}

function noCertificate(blocks: PemBlock[], path: string): CertProblem {
  if (blocks.some((b) => b.label === "TRUSTED CERTIFICATE")) {
    return {
      problem: `"${path}" holds an OpenSSL "TRUSTED CERTIFICATE" block, not a plain certificate`,
      fix: `convert it: \`openssl x509 -in ${path} -out ${path}.pem\``,
    };
  }
  if (blocks.some((b) => KEY_LABELS.has(b.label) || b.label === "ENCRYPTED PRIVATE KEY")) {
    return {
      problem: `"${path}" holds a private key but no certificate`,
      fix: "name the certificate chain file as the certificate and this file as the key",
    };
  }
  return {
    problem: `"${path}" holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" line)`,
    fix: "use the PEM chain your certificate authority issued (certbot: fullchain.pem); a " +
      `binary DER certificate converts with \`openssl x509 -inform der -in ${path} -out ` +
      `${path}.pem\``,
  };
}

function readKey(
  blocks: PemBlock[],
  path: string,
  sameFile: boolean,
): { block: PemBlock; key: KeyObject } | CertProblem {
  const encryptedFix = `decrypt it once and protect the file with permissions instead: ` +
    `\`openssl pkey -in ${path} -out ${path}.plain\` (edgemux cannot ask for a passphrase)`;
  if (blocks.some((b) => b.label === "ENCRYPTED PRIVATE KEY")) {
    return { problem: `the private key in "${path}" is encrypted`, fix: encryptedFix };
  }
  const keys = blocks.filter((b) => KEY_LABELS.has(b.label));
  if (keys.length === 0) {
    return {
      problem: sameFile
        ? `"${path}" holds a certificate but no private key`
        : `"${path}" holds no PEM private key (no "-----BEGIN PRIVATE KEY-----" line)`,
      fix: sameFile
        ? "append the private key to the file, or name the key file separately"
        : "name the file that holds the certificate's private key (certbot: privkey.pem)",
    };
  }
  if (keys.length > 1) {
    return {
      problem: `"${path}" holds ${keys.length} private keys, so it is unclear which one to use`,
      fix: "keep only the private key of the certificate in the file",
    };
  }
  const block = keys[0];
  if ((block.headers["Proc-Type"] ?? "").includes("ENCRYPTED")) {
    return { problem: `the private key in "${path}" is encrypted`, fix: encryptedFix };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(block.text);
  } catch (error) {
    return {
      problem: `the private key in "${path}" cannot be read (${errorText(error)})`,
      fix: "use an unencrypted PKCS#8, SEC1 (EC) or PKCS#1 (RSA) PEM key; check it with " +
        `\`openssl pkey -noout -in ${path}\``,
    };
  }
  const type = key.asymmetricKeyType ?? "unknown";
  if (!KEY_TYPES.has(type)) {
    return {
      problem: `the private key in "${path}" is of type ${type}, which TLS servers here ` +
        "cannot sign with",
      fix: "use an ECDSA (P-256 or P-384), RSA or Ed25519 key",
    };
  }
  return { block, key };
}

function keyMatches(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    // Mismatched algorithms can throw rather than answer false.
    return false;
  }
}

/**
 * DNS names from subjectAltName, else (only without that extension) the subject CN.
 * Node prints the extension as `DNS:a, DNS:b, IP Address:1.2.3.4`, quoting a value as a JSON
 * string when it holds a comma or quote; such a value is never a valid DNS name and is
 * dropped, like everything that is not one.
 */
function certificateNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  const raw: string[] = [];
  if (san === undefined) {
    // A CA's CN names the authority, not a server.
    const cn = cert.ca ? null : commonName(cert.subject);
    if (cn !== null) raw.push(cn);
  } else {
    for (const entry of san.split(", ")) {
      if (entry.startsWith("DNS:")) raw.push(entry.slice(4));
    }
  }
  const names: string[] = [];
  for (const name of raw) {
    const normal = normalizeName(name);
    if (isCertificateName(normal) && !names.includes(normal)) {
      names.push(normal);
    }
  }
  return names;
}

function commonName(subject: string): string | null {
  let cn: string | null = null;
  // One attribute per line; the most specific CN is the last one (RFC 6125 §6.4.4 says to use
  // "the" CN, and multi-CN subjects are rare enough that this choice is only a tie-break).
  for (const line of subject.split("\n")) {
    if (line.startsWith("CN=")) cn = line.slice(3);
  }
  return cn;
}

/**
 * Whether `name` (already normalised) can stand in a certificate as a DNS name: labels of
 * letters, digits, "-" and "_", at most 253 characters, optionally `*.` first.
 */
export function isCertificateName(name: string): boolean {
  return name.length <= 253 && DNS_NAME.test(name);
}

/**
 * Lowercases a server name and removes one trailing dot, the form certificates, SNI and
 * lookups are compared in.
 */
export function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

function isSelfSigned(cert: X509Certificate): boolean {
  if (cert.subject !== cert.issuer) return false;
  try {
    return cert.verify(cert.publicKey);
  } catch {
    return false;
  }
}

function formatName(name: string): string {
  return name.split("\n").join(", ");
}

function describe(cert: X509Certificate): string {
  return `subject ${formatName(cert.subject)}`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
