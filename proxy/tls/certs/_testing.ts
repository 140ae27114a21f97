/**
 * Test helpers for the certificate modules: certificates made on the spot with `openssl`, and
 * synthetic {@linkcode InspectedCert} values for the pure code.
 *
 * @module
 */

import type { InspectedCert } from "./certificate.ts";
import { run } from "../../../tests/_helpers/process.ts";
import { requireTool } from "../../../tests/_helpers/tools.ts";

/** Options for {@linkcode makeCert}. */
export interface MakeCertOptions {
  /** Subject CN. Default: the first DNS name. */
  cn?: string;
  /** subjectAltName entries such as `DNS:a.test` or `IP:127.0.0.1`; [] for no extension. */
  san?: string[];
  /** Validity in days from now. Default 90. */
  days?: number;
  /** Leave basicConstraints as `openssl req -x509` makes it (CA:TRUE). Default false. */
  ca?: boolean;
  /** `ec` (P-256, PKCS#8), `ec-sec1` (P-256, `EC PRIVATE KEY`), `rsa-pkcs1`. Default `ec`. */
  key?: "ec" | "ec-sec1" | "rsa-pkcs1";
}

/** Runs openssl and fails the test with its stderr when it fails. */
export async function openssl(args: string[], cwd?: string): Promise<string> {
  const bin = requireTool("openssl", "openssl");
  const result = await run(bin, args, { cwd });
  if (result.code !== 0) {
    throw new Error(`openssl ${args.join(" ")} failed (${result.code}):\n${result.stderr}`);
  }
  return result.stdout;
}

/**
 * Makes a self-signed certificate `stem.crt` and its key `stem.key` in `dir` with openssl.
 *
 * @returns the paths of the two files
 */
export async function makeCert(
  dir: string,
  stem: string,
  names: string[],
  opts: MakeCertOptions = {},
): Promise<{ cert: string; key: string }> {
  const cert = `${dir}/${stem}.crt`;
  const key = `${dir}/${stem}.key`;
  const san = opts.san ?? names.map((n) => `DNS:${n}`);
  const keyType = opts.key ?? "ec";
  if (keyType === "ec") {
    await openssl([
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-out",
      key,
    ]);
  } else if (keyType === "ec-sec1") {
    await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
  } else {
    await openssl(["genrsa", "-traditional", "-out", key, "2048"]);
  }
  const args = [
    "req",
    "-x509",
    "-key",
    key,
    "-days",
    String(opts.days ?? 90),
    "-subj",
    `/CN=${opts.cn ?? names[0]}`,
    "-out",
    cert,
  ];
  if (san.length > 0) args.push("-addext", `subjectAltName=${san.join(",")}`);
  if (!opts.ca) args.push("-addext", "basicConstraints=critical,CA:FALSE");
  await openssl(args);
  return { cert, key };
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * A synthetic certificate for selection tests: only names and dates are meaningful.
 *
 * @param names the names it covers
 * @param validDays `[from, to]` in days relative to `base` (default: the Unix epoch + 1e4 days)
 */
export function fakeCert(
  names: string[],
  validDays: [number, number] = [-30, 60],
  label = names.join(","),
  base = new Date(1e4 * DAY_MS),
): InspectedCert {
  return {
    certPem: `cert ${label}`,
    keyPem: `key ${label}`,
    names,
    notBefore: new Date(base.getTime() + validDays[0] * DAY_MS),
    notAfter: new Date(base.getTime() + validDays[1] * DAY_MS),
    subject: `CN=${names[0] ?? ""}`,
    issuer: "CN=fake",
    fingerprint: label,
    selfSigned: false,
    ca: false,
    origin: { cert: `/fake/${label}.crt`, key: `/fake/${label}.key` },
  };
}

/** The moment {@linkcode fakeCert} dates are relative to, moved by `days`. */
export function fakeNow(days = 0): Date {
  return new Date(1e4 * DAY_MS + days * DAY_MS);
}
