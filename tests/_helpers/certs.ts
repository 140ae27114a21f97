/**
 * The committed test certificates in `testdata/certs/` (see its README for what each one is).
 *
 * @module
 */

import { createHash, X509Certificate } from "node:crypto";
import { fileURLToPath } from "node:url";

/** Names of the certificates in `testdata/certs/`; each has `NAME.pem` and `NAME.key`. */
export type CertName =
  | "ca"
  | "other-ca"
  | "vault"
  | "git"
  | "apps-wildcard"
  | "default-backend"
  | "prometheus"
  | "edge-wildcard"
  | "backend-internal"
  | "client"
  | "wrong-name"
  | "untrusted";

/** Absolute path of `testdata/certs/`, without a trailing slash. */
export const CERTS_DIR: string = fileURLToPath(new URL("../../testdata/certs", import.meta.url));

/**
 * The `certificates:` block of the edge tests: the wildcard certificate for `*.example.test` and
 * `example.test`, never re-read. Top-level YAML: place it at the start of a line.
 */
export const EDGE_CERTIFICATES = `certificates:
  files: [{ cert: testdata/certs/edge-wildcard.pem, key: testdata/certs/edge-wildcard.key }]
  watch_interval: 0s`;

/** Absolute path of the PEM certificate `NAME.pem`. */
export function certPath(name: CertName): string {
  return `${CERTS_DIR}/${name}.pem`;
}

/** Absolute path of the PKCS#8 PEM private key `NAME.key`. */
export function keyPath(name: CertName): string {
  return `${CERTS_DIR}/${name}.key`;
}

/** The PEM text of the certificate `NAME.pem`. */
export function readCert(name: CertName): string {
  return Deno.readTextFileSync(certPath(name));
}

/** The PEM text of the private key `NAME.key`. */
export function readKey(name: CertName): string {
  return Deno.readTextFileSync(keyPath(name));
}

/**
 * The base64 SHA-256 of a certificate's SubjectPublicKeyInfo, the form Chromium's
 * `--ignore-certificate-errors-spki-list` and HPKP-style pins use.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const pin = spkiPinBase64("edge-wildcard");
 * assert.match(pin, /^[A-Za-z0-9+/]{43}=$/); // a SHA-256 digest in base64
 * const flag = `--ignore-certificate-errors-spki-list=${pin}`;
 * ```
 */
export function spkiPinBase64(name: CertName): string {
  const spki = new X509Certificate(readCert(name)).publicKey.export({
    type: "spki",
    format: "der",
  });
  return createHash("sha256").update(spki).digest("base64");
}
