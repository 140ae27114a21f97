/**
 * The step between a parsed config and a running one: read what the config points at
 * (certificates, backend CAs and client keys) and check what only the files can tell (does a
 * certificate cover every name that is terminated here?). `edgemux check`, start and reload all
 * run it, so a config that checks clean also starts.
 *
 * @module
 */

import { type Config, isTerminating, type RouteConfig } from "../config/types.ts";
import type { ConfigIssue } from "../config/errors.ts";
import { ConfigError } from "../config/errors.ts";
import { missingPermission } from "../config/permission.ts";
import { entryPath } from "../config/_reader.ts";
import { adminTokenProblem } from "../config/parse.ts";
import type { TlsDialOptions } from "./_deno_internals.ts";
import type { InspectedCert } from "./tls/certs/certificate.ts";
import { inspectCertificate } from "./tls/certs/certificate.ts";
import { ensureDevelopmentCertificate } from "./tls/certs/dev_cert.ts";
import { loadCertificates } from "./tls/certs/load.ts";
import { AcmeState, isStateName } from "./tls/certs/acme_state.ts";
import { CertStore } from "./tls/certs/store.ts";

/** A config with everything it refers to loaded and checked. */
export interface PreparedConfig {
  /** The config it was prepared from. */
  readonly config: Config;
  /**
   * Real certificates (null when the config has no `certificates`); for the runtime only.
   *
   * @ignore
   */
  readonly certs: CertStore | null;
  /**
   * The development certificate, when names needed one; it only answers names `certs` lacks.
   * For the runtime only.
   *
   * @ignore
   */
  readonly devCert: InspectedCert | null;
  /** Names served with the development certificate. */
  readonly devNames: readonly string[];
  /**
   * Names whose certificates edgemux orders from the ACME CA (`certificates.acme`): every
   * exact name a terminating route serves that no configured certificate covers.
   */
  readonly acmeNames: readonly string[];
  /**
   * TLS options per backend that has `tls`; for the runtime only.
   *
   * @ignore
   */
  readonly backendTls: ReadonlyMap<string, TlsDialOptions>;
  /** Every file and directory whose change means "reload the certificates". */
  readonly watched: readonly string[];
  /**
   * TLS options for backends' `tls` and `http` health checks (null: plain TCP); for the runtime
   * only.
   *
   * @ignore
   */
  readonly healthTls: ReadonlyMap<string, TlsDialOptions | null>;
  /** The admin listener's bearer token (`admin.token`, or read from `admin.token_file`). */
  readonly adminToken: string | null;
  /** Every warning, from parsing and from the files. */
  readonly warnings: readonly ConfigIssue[];
}

/** Options for {@link prepareConfig}. */
export interface PrepareOptions {
  /** Warnings already found while parsing. */
  warnings?: readonly ConfigIssue[];
  /** Create or renew the development certificate (off for `check`, which only reports). */
  writeDevCert?: boolean;
  /** The time certificates are checked against (expiry, renewal); the current time by default. */
  now?: Date;
}

/**
 * Loads and checks what `config` refers to.
 *
 * @throws {ConfigError} With every problem found.
 */
export async function prepareConfig(
  config: Config,
  opts: PrepareOptions = {},
): Promise<PreparedConfig> {
  const issues: ConfigIssue[] = [...(opts.warnings ?? [])];
  const backendTls = await loadBackendTls(config, issues);
  const healthTls = await loadHealthTls(config, backendTls, issues);
  const adminToken = await loadAdminToken(config, issues);
  let certs: CertStore | null = null;
  let devCert: InspectedCert | null = null;
  let devNames: string[] = [];
  let watched: string[] = [];
  let acmeNames: string[] = [];
  if (config.certificates !== null) {
    const loaded = await loadCertificates(config.certificates, { now: opts.now });
    issues.push(...loaded.issues);
    watched = loaded.watched;
    const defaultName = config.certificates.defaultName;
    const acme = config.certificates.acme;
    const issued: InspectedCert[] = [];
    if (acme !== null) {
      const files = new CertStore(loaded.certs, { defaultName });
      acmeNames = acmeCandidates(config, files, issues);
      // Certificates ordered earlier are reused; the manager renews them when due.
      const state = new AcmeState(acme.stateDirectory);
      for (const name of acmeNames) {
        const cert = await state.readCert(name);
        if (cert !== null) issued.push(cert);
      }
      watched = [...watched, state.certsDir];
    }
    certs = new CertStore([...loaded.certs, ...issued], { defaultName });
    devNames = checkCoverage(config, certs, issues, acmeNames);
    if (devNames.length > 0 && !issues.some((i) => i.severity === "error")) {
      // Names waiting for their first ACME certificate get the development one meanwhile.
      const dir = config.certificates.development?.directory ??
        `${acme!.stateDirectory}/development`;
      if (opts.writeDevCert === false) {
        const ordered = devNames.filter((n) => acmeNames.includes(n));
        const plain = devNames.filter((n) => !acmeNames.includes(n));
        if (ordered.length > 0) {
          issues.push(warning(
            "certificates.acme",
            `certificates will be ordered from ${acme!.directoryUrl} for: ${
              ordered.join(", ")
            }; until each arrives, its name gets a self-signed development certificate`,
            "nothing to do if DNS points here; the status page shows each order's progress",
          ));
        }
        if (plain.length > 0) {
          issues.push(warning(
            "certificates.development",
            `names without a certificate will get a self-signed development certificate: ${
              plain.join(", ")
            }`,
            "browsers warn about it; add a real certificate for these names before going live",
          ));
        }
      } else {
        try {
          const dev = await ensureDevelopmentCertificate(dir, devNames, { now: opts.now });
          const inspected = inspectCertificate(dev.certPem, dev.keyPem, {
            cert: dev.path,
            key: dev.keyPath,
          });
          if ("problem" in inspected) throw new Error(inspected.problem);
          devCert = inspected;
        } catch (e) {
          issues.push({
            severity: "error",
            position: null,
            path: "certificates.development",
            message: `cannot create a development certificate in ${dir}: ${
              missingPermission(e)?.message ?? (e instanceof Error ? e.message : String(e))
            }`,
            fix: missingPermission(e)?.fix ??
              "make the directory writable, or set certificates.development.directory",
          });
        }
      }
    }
  }
  if (issues.some((i) => i.severity === "error")) throw new ConfigError(issues);
  return {
    config,
    certs,
    devCert,
    devNames,
    acmeNames,
    backendTls,
    healthTls,
    watched,
    adminToken,
    warnings: issues.filter((i) => i.severity === "warning"),
  };
}

/** `admin.token`, or the contents of `admin.token_file` without surrounding whitespace. */
async function loadAdminToken(config: Config, issues: ConfigIssue[]): Promise<string | null> {
  const admin = config.admin;
  if (admin === null || admin.tokenFile === null) return admin?.token ?? null;
  const fail = (message: string, fix: string) => {
    issues.push({
      severity: "error",
      position: admin.position,
      path: "admin.token_file",
      message,
      fix,
    });
    return null;
  };
  let text: string;
  try {
    text = await Deno.readTextFile(admin.tokenFile);
  } catch (e) {
    return fail(
      `cannot read ${admin.tokenFile}: ${readFailure(e)}`,
      missingPermission(e)?.fix ?? "create it (openssl rand -hex 32 > FILE) or fix the path",
    );
  }
  const token = text.trim();
  const problem = adminTokenProblem(token);
  if (problem !== null) {
    return fail(
      `the token in ${admin.tokenFile} ${problem}`,
      "write a new one with: openssl rand -hex 32 > FILE",
    );
  }
  return token;
}

function warning(path: string, message: string, fix: string): ConfigIssue {
  return { severity: "warning", position: null, path, message, fix };
}

/** Every route that terminates TLS, with its index in its listener. */
function terminatingRoutes(config: Config): { route: RouteConfig; path: string }[] {
  const out: { route: RouteConfig; path: string }[] = [];
  for (const l of config.listeners) {
    l.routes.forEach((route, i) => {
      if (isTerminating(route.action)) {
        out.push({ route, path: `${entryPath("listeners", l.name)}.routes[${i}].sni` });
      }
    });
  }
  return out;
}

/**
 * Checks that a certificate covers every terminated name. Returns the names that will use the
 * development certificate (only when it is enabled; otherwise a missing certificate is an
 * error).
 */
function checkCoverage(
  config: Config,
  certs: CertStore,
  issues: ConfigIssue[],
  acmeNames: readonly string[],
): string[] {
  const dev = config.certificates?.development ?? null;
  const devNames: string[] = [];
  const need = (name: string, route: RouteConfig, path: string, shownAs: string) => {
    if (certs.covers(name) !== null) return;
    if (dev !== null || acmeNames.includes(name)) {
      if (!devNames.includes(shownAs)) devNames.push(shownAs);
      return;
    }
    issues.push({
      severity: "error",
      position: route.position,
      path,
      message: `no certificate covers ${shownAs}, which route "${route.name}" terminates`,
      fix: "add a certificate for it to the certificates directory, or list it under " +
        "certificates.files (or set certificates.development: true to try it out)",
    });
  };
  for (const { route, path } of terminatingRoutes(config)) {
    if (route.match.sni === null) {
      const name = config.certificates?.defaultName ?? null;
      if (name === null && dev === null) {
        issues.push({
          severity: "error",
          position: route.position,
          path,
          message: `route "${route.name}" terminates TLS for any server name, ` +
            "but no default certificate is configured",
          fix: "set certificates.default to a name one certificate covers, or give the route sni:",
        });
      } else if (name !== null) need(name, route, path, name);
      continue;
    }
    for (const p of route.match.sni) {
      // A wildcard route needs a wildcard certificate: probe it with a label no real name has.
      // An any-depth route (`**.`) is checked one label deep: no certificate name covers every
      // depth (RFC 6125 §6.4.3), so names further down need certificates of their own.
      if (p.kind === "exact") need(p.name, route, path, p.name);
      else need(`edgemux-probe.${p.suffix}`, route, path, `*.${p.suffix}`);
    }
  }
  return devNames;
}

/**
 * The names edgemux orders certificates for: every exact name a terminating route serves (and
 * the default name of a route without `sni`) that no configured certificate covers. Reports
 * wildcard names (they need DNS-01, which edgemux does not do) and names no allowed challenge
 * can reach. Passthrough names are never ordered: edgemux does not end their TLS.
 */
function acmeCandidates(config: Config, files: CertStore, issues: ConfigIssue[]): string[] {
  const acme = config.certificates!.acme!;
  const names: string[] = [];
  const redirects = config.listeners.filter((l) =>
    l.routes.some((r) => r.action.kind === "redirect")
  );
  const http01 = acme.challenges.includes("http-01") && redirects.length > 0;
  const tlsAlpn01 = acme.challenges.includes("tls-alpn-01");
  const on80 = redirects.some((l) => l.binds.some((b) => b.port === 80));
  for (const l of config.listeners) {
    const on443 = l.binds.some((b) => b.port === 443);
    l.routes.forEach((route, i) => {
      if (!isTerminating(route.action)) return;
      const path = `${entryPath("listeners", l.name)}.routes[${i}].sni`;
      const wanted: string[] = [];
      const defaultName = config.certificates!.defaultName;
      if (route.match.sni === null) {
        if (defaultName !== null) wanted.push(defaultName);
      } else {
        for (const p of route.match.sni) {
          if (p.kind === "exact") {
            wanted.push(p.name);
            continue;
          }
          if (files.covers(`edgemux-probe.${p.suffix}`) !== null) continue;
          issues.push({
            severity: "warning",
            position: route.position,
            path,
            message: `route "${route.name}" terminates *.${p.suffix}, which ACME cannot ` +
              "issue here: a wildcard certificate needs the DNS-01 challenge, which edgemux " +
              "does not answer",
            fix: `get a wildcard certificate for *.${p.suffix} another way (e.g. certbot with ` +
              "a DNS plugin) and put it in the certificates directory, or list the exact names",
          });
        }
      }
      for (const name of wanted) {
        if (files.covers(name) !== null || names.includes(name)) continue;
        if (!isStateName(name)) {
          issues.push({
            severity: "warning",
            position: route.position,
            path,
            message: `${name} (route "${route.name}") is not a name a public CA issues for`,
            fix: "use a DNS name made of letters, digits and hyphens, or give it a certificate",
          });
          continue;
        }
        if (!http01 && !tlsAlpn01) {
          issues.push({
            severity: "error",
            position: route.position,
            path,
            message: `route "${route.name}" terminates ${name}, whose certificate ACME can ` +
              "never validate: only http-01 is allowed and no listener has a redirect route " +
              "to answer it",
            fix: "add a listener on port 80 with `redirect: https`, or add tls-alpn-01 to " +
              "certificates.acme.challenges",
          });
          continue;
        }
        if (!(http01 && on80) && !(tlsAlpn01 && on443)) {
          issues.push({
            severity: "warning",
            position: route.position,
            path,
            message: `the CA validates ${name} (route "${route.name}") on port 80 (http-01) ` +
              "or 443 (tls-alpn-01), and no listener that could answer binds either port here",
            fix: "bind the redirect listener to port 80 or this listener to port 443 (a port " +
              "forwarded to edgemux from those works too)",
          });
        }
        names.push(name);
      }
    });
  }
  return names.sort();
}

async function loadBackendTls(
  config: Config,
  issues: ConfigIssue[],
): Promise<Map<string, TlsDialOptions>> {
  const out = new Map<string, TlsDialOptions>();
  for (const b of config.backends.values()) {
    if (b.tls === null) continue;
    const read = async (file: string | null, key: string): Promise<string | undefined> => {
      if (file === null) return undefined;
      try {
        return await Deno.readTextFile(file);
      } catch (e) {
        issues.push({
          severity: "error",
          position: b.position,
          path: `${entryPath("backends", b.name)}.tls.${key}`,
          message: `cannot read ${file}: ${readFailure(e)}`,
          fix: missingPermission(e)?.fix ??
            "check the path (relative paths start at the config file's directory)",
        });
        return undefined;
      }
    };
    const ca = await read(b.tls.caFile, "ca");
    const cert = await read(b.tls.certFile, "cert");
    const key = await read(b.tls.keyFile, "key");
    if (ca !== undefined && !ca.includes("-----BEGIN CERTIFICATE-----")) {
      issues.push({
        severity: "error",
        position: b.position,
        path: `${entryPath("backends", b.name)}.tls.ca`,
        message: `${b.tls.caFile} holds no PEM certificate`,
        fix:
          "point ca at a PEM file with the CA certificate(s) that signed the backend's certificate",
      });
    }
    out.set(b.name, {
      caCerts: ca === undefined ? undefined : [ca],
      serverName: b.tls.serverName,
      cert,
      key,
    });
  }
  return out;
}

/**
 * How health checks speak TLS: a `tls` or `http` check of a backend with `tls` uses the
 * backend's settings; otherwise a check's own `ca` and `server_name` (a `tls` check of a
 * passthrough backend, whose TLS edgemux never terminates), else the system roots.
 */
async function loadHealthTls(
  config: Config,
  backendTls: Map<string, TlsDialOptions>,
  issues: ConfigIssue[],
): Promise<Map<string, TlsDialOptions | null>> {
  const out = new Map<string, TlsDialOptions | null>();
  for (const b of config.backends.values()) {
    const check = b.healthCheck;
    if (check === null) continue;
    if (check.kind === "tcp") {
      out.set(b.name, null);
      continue;
    }
    const own = backendTls.get(b.name);
    if (check.tls === null) {
      out.set(b.name, own ?? (check.kind === "tls" ? systemRoots() : null));
      continue;
    }
    let ca: string | undefined;
    if (check.tls.caFile !== null) {
      try {
        ca = await Deno.readTextFile(check.tls.caFile);
      } catch (e) {
        issues.push({
          severity: "error",
          position: b.position,
          path: `${entryPath("backends", b.name)}.health_check.ca`,
          message: `cannot read ${check.tls.caFile}: ${readFailure(e)}`,
          fix: missingPermission(e)?.fix ??
            "check the path (relative paths start at the config file's directory)",
        });
      }
    }
    out.set(b.name, {
      caCerts: ca === undefined ? own?.caCerts : [ca],
      serverName: check.tls.serverName ?? own?.serverName ?? null,
      cert: own?.cert,
      key: own?.key,
    });
  }
  return out;
}

/** TLS checked against the system's root certificates, for the name dialled. */
function systemRoots(): TlsDialOptions {
  return { caCerts: undefined, serverName: null, cert: undefined, key: undefined };
}

/** Why a file could not be read, for a config error's message. */
function readFailure(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "it does not exist";
  return missingPermission(e)?.message ?? (e instanceof Error ? e.message : String(e));
}
