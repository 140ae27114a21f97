/**
 * Reading the configured certificate files and directories into checked certificates, with a
 * config issue for everything that is wrong or about to go wrong.
 *
 * Directory rules. In each configured directory (one level; symlinks are followed, since
 * certbot's `live/` is made of them; names starting with "." are skipped):
 *
 * - `NAME.pem` holding a certificate chain and its private key is one certificate;
 * - `NAME.crt`, or a `NAME.pem` holding only certificates, is paired with `NAME.key` (a
 *   `NAME.pem` holding only a key also serves as the key of a `NAME.crt`);
 * - a subdirectory `SUB/` with `fullchain.pem` and `privkey.pem` is one certificate (certbot's
 *   `live/DOMAIN/`; its `cert.pem` and `chain.pem` are not used). The same layout directly in
 *   the configured directory counts too, so pointing at `live/example.com` works;
 * - a `.pem` or `.crt` file with certificates but no key, and a certbot subdirectory with no
 *   `privkey.pem`, are reported as warnings and skipped;
 * - everything else (`README`, stray keys, DH parameters, deeper subdirectories) is ignored.
 *
 * Extensions are matched without regard to case. Explicit `files` entries name a chain and a
 * key, which may be the same file.
 *
 * @module
 */

import type { CertificatesConfig } from "../../../config/types.ts";
import type { ConfigIssue } from "../../../config/errors.ts";
import { missingPermission } from "../../../config/permission.ts";
import { inspectCertificate, type InspectedCert, KEY_LABELS } from "./certificate.ts";
import { PemError, splitPem } from "./pem.ts";
import { CertStore } from "./store.ts";

/** What {@linkcode loadCertificates} found. */
export interface LoadedCertificates {
  /** The usable certificates: directories in config order (files sorted by name), then files. */
  certs: InspectedCert[];
  /** Errors (a listed file or directory is unusable) and warnings, in the order found. */
  issues: ConfigIssue[];
  /**
   * Every directory and file whose change could change this result, for
   * {@linkcode FileWatcher}: the configured directories, their relevant entries and certbot
   * subdirectories, and the explicit files.
   */
  watched: string[];
}

/** Options for {@linkcode loadCertificates}. */
export interface LoadOptions {
  /** The moment expiry is judged at. Default: now. */
  now?: Date;
}

/** How close to its expiry a certificate in use is reported. */
export const EXPIRY_WARNING_MS = 14 * 24 * 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
// No certificate chain comes near this; a bigger file is something else with a .pem name.
const MAX_FILE_BYTES = 1024 * 1024;
const CERT_EXTENSIONS = new Set(["pem", "crt", "key"]);

interface Candidate {
  cert: string;
  key: string;
  /** The config key path for issues. */
  path: string;
}

/**
 * Loads every certificate the config names. Never throws for a bad file: each problem becomes
 * an issue. Expired certificates are still loaded (with a warning), because refusing to start
 * or reload over a certificate that just expired would turn a warning into an outage for every
 * other name; clients decide what to do with an expired certificate, as they would anyway.
 *
 * @param cfg the `certificates` section of the config
 * @param opts the moment expiry is judged at
 * @returns the usable certificates, the issues, and the paths worth watching
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = new URL("../../../testdata/certs/", import.meta.url).pathname;
 * const { certs, issues } = await loadCertificates({
 *   directories: [],
 *   files: [{ cert: `${dir}vault.pem`, key: `${dir}vault.key` }],
 *   defaultName: null,
 *   development: null,
 *   watchInterval: 0,
 *   acme: null,
 * });
 * assert.deepEqual(certs.map((c) => c.names), [["vault.example.test"]]);
 * assert.deepEqual(issues, []);
 * ```
 */
export async function loadCertificates(
  cfg: CertificatesConfig,
  opts: LoadOptions = {},
): Promise<LoadedCertificates> {
  const now = opts.now ?? new Date();
  const issues: ConfigIssue[] = [];
  const watched = new Set<string>();
  const reader = new FileReader();
  const candidates: Candidate[] = [];

  for (const [i, dir] of cfg.directories.entries()) {
    const path = `certificates.directory[${i}]`;
    const before = candidates.length;
    const errorsBefore = issues.length;
    await scanDirectory(dir, path, reader, candidates, issues, watched);
    if (candidates.length === before && issues.length === errorsBefore) {
      issues.push(warning(
        path,
        `directory "${dir}" holds no certificates`,
        "put NAME.pem (chain and key), NAME.crt with NAME.key, or certbot SUB/fullchain.pem " +
          "with SUB/privkey.pem in it, or remove it from the config",
      ));
    }
  }
  for (const [i, pair] of cfg.files.entries()) {
    watched.add(pair.cert);
    watched.add(pair.key);
    candidates.push({ cert: pair.cert, key: pair.key, path: `certificates.files[${i}]` });
  }

  const certs: InspectedCert[] = [];
  const byFingerprint = new Map<string, InspectedCert>();
  for (const candidate of candidates) {
    const chain = await reader.read(candidate.cert);
    if ("problem" in chain) {
      issues.push(error(candidate.path, chain.problem, chain.fix));
      continue;
    }
    const key = await reader.read(candidate.key);
    if ("problem" in key) {
      issues.push(error(candidate.path, key.problem, key.fix));
      continue;
    }
    const result = inspectCertificate(chain.text, key.text, candidate);
    if ("problem" in result) {
      issues.push(error(candidate.path, result.problem, result.fix));
      continue;
    }
    const twin = byFingerprint.get(result.fingerprint);
    if (twin !== undefined) {
      issues.push(warning(
        candidate.path,
        `"${candidate.cert}" is the same certificate as "${twin.origin.cert}" ` +
          `(SHA-256 ${shortFingerprint(result.fingerprint)}); the copy is ignored`,
        "remove one of the two, or list each file once",
      ));
      continue;
    }
    byFingerprint.set(result.fingerprint, result);
    certs.push(result);
  }

  const paths = new Map(candidates.map((c) => [c.cert + "\0" + c.key, c.path]));
  const store = new CertStore(certs, { defaultName: cfg.defaultName });
  for (const cert of certs) {
    const path = paths.get(cert.origin.cert + "\0" + cert.origin.key) ?? "certificates";
    issues.push(...datesIssues(cert, path, now, store));
    if (cert.ca) {
      issues.push(warning(
        path,
        `"${cert.origin.cert}" is a CA certificate (basicConstraints CA:TRUE) used as a ` +
          "server certificate; strict clients (rustls, and so Deno's own TLS client) reject that",
        "reissue it with `-addext basicConstraints=critical,CA:FALSE` (openssl req -x509 " +
          "makes CA certificates by default)",
      ));
    }
  }
  if (
    cfg.defaultName !== null && cfg.development === null &&
    store.covers(cfg.defaultName, now) === null
  ) {
    issues.push(warning(
      "certificates.default",
      `no loaded certificate covers the default name "${cfg.defaultName}", so clients that ` +
        "send no server name or an unknown one get no certificate",
      "name a host one of the certificates covers, or add a certificate for it",
    ));
  }
  for (const p of reader.seen) watched.add(p);
  return { certs, issues, watched: [...watched] };
}

function datesIssues(
  cert: InspectedCert,
  path: string,
  now: Date,
  store: CertStore,
): ConfigIssue[] {
  const t = now.getTime();
  const file = cert.origin.cert;
  const names = cert.names.join(", ");
  if (cert.notBefore.getTime() > t) {
    return [warning(
      path,
      `"${file}" (${names}) is not valid until ${formatDate(cert.notBefore)}; clients reject ` +
        "it until then",
      "check the system clock, or wait for the certificate's start date",
    )];
  }
  // A certificate a renewal has replaced for all its names is never presented; say nothing.
  if (!store.inUse(cert, now)) return [];
  const left = cert.notAfter.getTime() - t;
  if (left < 0) {
    const ago = Math.floor(-left / DAY_MS);
    return [warning(
      path,
      `"${file}" (${names}) expired on ${formatDate(cert.notAfter)} ` +
        `(${ago === 0 ? "today" : `${ago} day${ago === 1 ? "" : "s"} ago`}); it is still ` +
        "served, and clients will reject it",
      "renew the certificate (e.g. `certbot renew`) and replace the file",
    )];
  }
  if (left < EXPIRY_WARNING_MS) {
    const days = Math.floor(left / DAY_MS);
    return [warning(
      path,
      `"${file}" (${names}) expires on ${formatDate(cert.notAfter)} ` +
        `(${days === 0 ? "less than a day" : `${days} day${days === 1 ? "" : "s"}`} left)`,
      "renew the certificate (e.g. `certbot renew`) and replace the file",
    )];
  }
  return [];
}

/** `2026-12-01 12:00 UTC`. */
function formatDate(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

function shortFingerprint(fingerprint: string): string {
  return `${fingerprint.slice(0, 23)}...`;
}

async function scanDirectory(
  dir: string,
  path: string,
  reader: FileReader,
  out: Candidate[],
  issues: ConfigIssue[],
  watched: Set<string>,
): Promise<void> {
  watched.add(dir);
  let names: string[];
  try {
    names = [];
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.name.startsWith(".")) names.push(entry.name);
    }
  } catch (e) {
    issues.push(
      error(
        path,
        `certificate directory "${dir}" ${ioReason(e, "directory")}`,
        ioFix(e, dir, "directory"),
      ),
    );
    return;
  }
  names.sort();
  const add = (cert: string, key: string) => out.push({ cert, key, path });
  const noKey = (file: string, keyHint: string) =>
    issues.push(warning(
      path,
      `"${file}" holds a certificate but no private key (not in the file, and no ${keyHint}); ` +
        "it is ignored",
      `add the key as ${keyHint}, or move certificates that are not for serving (CA ` +
        "bundles, chain.pem) out of the directory",
    ));

  // certbot's live/DOMAIN layout placed directly in the configured directory.
  const consumed = new Set<string>();
  if (names.includes("fullchain.pem") && names.includes("privkey.pem")) {
    add(`${dir}/fullchain.pem`, `${dir}/privkey.pem`);
    for (const n of ["fullchain.pem", "privkey.pem", "cert.pem", "chain.pem"]) consumed.add(n);
  }

  const stems = new Map<string, { pem?: string; crt?: string; key?: string }>();
  for (const name of names) {
    if (consumed.has(name)) continue;
    const full = `${dir}/${name}`;
    const dot = name.lastIndexOf(".");
    const ext = dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(full);
    } catch (e) {
      // Only entries that would have mattered are worth an error (a dangling certbot link).
      if (CERT_EXTENSIONS.has(ext) || !name.includes(".")) {
        watched.add(full);
        issues.push(error(path, `"${full}" ${ioReason(e)}`, ioFix(e, full)));
      }
      continue;
    }
    if (info.isDirectory) {
      await scanCertbotDirectory(full, add, noKey, watched);
    } else if (info.isFile && CERT_EXTENSIONS.has(ext)) {
      watched.add(full);
      const stem = name.slice(0, dot);
      const group = stems.get(stem) ?? {};
      group[ext as "pem" | "crt" | "key"] = full;
      stems.set(stem, group);
    }
  }

  for (const group of stems.values()) {
    let pemKind: "chain+key" | "chain" | "key" | "other" | "broken" = "other";
    if (group.pem !== undefined) {
      pemKind = await pemContents(reader, group.pem);
      if (pemKind === "chain+key") add(group.pem, group.pem);
      else if (pemKind === "broken") add(group.pem, group.key ?? group.pem); // reports why
      else if (pemKind === "chain") {
        if (group.key !== undefined) add(group.pem, group.key);
        else noKey(group.pem, `"${stripExt(group.pem)}.key"`);
      }
    }
    if (group.crt !== undefined) {
      const key = group.key ?? (pemKind === "key" ? group.pem : undefined);
      if (key !== undefined) add(group.crt, key);
      else noKey(group.crt, `"${stripExt(group.crt)}.key"`);
    }
  }
}

async function scanCertbotDirectory(
  sub: string,
  add: (cert: string, key: string) => void,
  noKey: (file: string, keyHint: string) => void,
  watched: Set<string>,
): Promise<void> {
  const isFile = async (p: string) => {
    try {
      return (await Deno.stat(p)).isFile;
    } catch {
      return false;
    }
  };
  const fullchain = `${sub}/fullchain.pem`;
  const privkey = `${sub}/privkey.pem`;
  const [hasChain, hasKey] = await Promise.all([isFile(fullchain), isFile(privkey)]);
  if (!hasChain) return;
  watched.add(sub);
  watched.add(fullchain);
  watched.add(privkey);
  if (hasKey) add(fullchain, privkey);
  else noKey(fullchain, `"${privkey}"`);
}

async function pemContents(
  reader: FileReader,
  file: string,
): Promise<"chain+key" | "chain" | "key" | "other" | "broken"> {
  const read = await reader.read(file);
  if ("problem" in read) return "broken";
  let labels: string[];
  try {
    labels = splitPem(read.text).map((b) => b.label);
  } catch (e) {
    if (e instanceof PemError) return "broken";
    throw e;
  }
  const chain = labels.includes("CERTIFICATE");
  const key = labels.some((l) => KEY_LABELS.has(l) || l === "ENCRYPTED PRIVATE KEY");
  return chain ? (key ? "chain+key" : "chain") : key ? "key" : "other";
}

function stripExt(file: string): string {
  return file.slice(0, file.lastIndexOf("."));
}

/** Reads each file once per load, so a chain+key file is not read twice. */
class FileReader {
  readonly seen = new Set<string>();
  #cache = new Map<string, Promise<{ text: string } | { problem: string; fix: string }>>();

  read(file: string): Promise<{ text: string } | { problem: string; fix: string }> {
    this.seen.add(file);
    let entry = this.#cache.get(file);
    if (entry === undefined) {
      entry = readCertFile(file);
      this.#cache.set(file, entry);
    }
    return entry;
  }
}

async function readCertFile(
  file: string,
): Promise<{ text: string } | { problem: string; fix: string }> {
  try {
    const info = await Deno.stat(file);
    if (info.isDirectory) {
      return {
        problem: `"${file}" is a directory, not a certificate or key file`,
        fix: "name the PEM file itself, or list the directory under `directory:`",
      };
    }
    if (info.size > MAX_FILE_BYTES) {
      return {
        problem: `"${file}" is ${info.size} bytes, too large to be a certificate or key file`,
        fix: "name the PEM certificate chain or key file",
      };
    }
    return { text: await Deno.readTextFile(file) };
  } catch (e) {
    return { problem: `"${file}" ${ioReason(e)}`, fix: ioFix(e, file) };
  }
}

function ioReason(e: unknown, kind: "file" | "directory" = "file"): string {
  const denied = missingPermission(e);
  if (denied !== null) return `cannot be read: ${denied.message}`;
  if (e instanceof Deno.errors.NotFound) {
    return kind === "directory" ? "does not exist" : "does not exist (or is a dangling symlink)";
  }
  if (e instanceof Deno.errors.PermissionDenied) return "cannot be read: permission denied";
  if (e instanceof Deno.errors.NotADirectory) return "is not a directory";
  if (e instanceof Deno.errors.IsADirectory) return "is a directory";
  return `cannot be read: ${e instanceof Error ? e.message : String(e)}`;
}

function ioFix(e: unknown, file: string, kind: "file" | "directory" = "file"): string {
  const denied = missingPermission(e);
  if (denied !== null) return denied.fix;
  if (kind === "directory") {
    if (e instanceof Deno.errors.PermissionDenied) {
      return `let the user edgemux runs as list and enter "${file}" (r-x, e.g. root:edgemux ` +
        "0750) and every directory above it";
    }
    if (e instanceof Deno.errors.NotFound) {
      return `create the directory (mkdir -p ${file}; it may stay empty while development ` +
        "certificates are on), or correct the path";
    }
    if (e instanceof Deno.errors.NotADirectory) {
      return "name a directory under `directory:`; list single certificate files under `files:`";
    }
    return "correct the path in the config";
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    return `let the user edgemux runs as read "${file}" (e.g. add it to the file's group, ` +
      "or `setfacl -m u:edgemux:r`) and every directory above it";
  }
  if (e instanceof Deno.errors.NotFound) {
    return "correct the path, or create the file (a symlink must point at an existing file)";
  }
  return "correct the path in the config";
}

function error(path: string, message: string, fix: string): ConfigIssue {
  return { severity: "error", position: null, path, message, fix };
}

function warning(path: string, message: string, fix: string): ConfigIssue {
  return { severity: "warning", position: null, path, message, fix };
}
