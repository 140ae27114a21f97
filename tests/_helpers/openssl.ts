/**
 * `openssl s_client` as a TLS client that reports what the server presented.
 *
 * @module
 */

import { run } from "./process.ts";
import { requireTool } from "./tools.ts";

/** Options for {@linkcode sClient}. */
export interface SClientOptions {
  port: number;
  /** Address to connect to. Default `127.0.0.1`. */
  host?: string;
  /**
   * SNI to send: a string sends it (exactly as given: openssl neither lowercases nor strips
   * a trailing dot) and also checks the certificate against it; `null` sends no SNI
   * (`-noservername`); omitted leaves openssl's default, which sends no SNI for an IP host.
   */
  servername?: string | null;
  /** ALPN protocols to offer, in preference order. */
  alpn?: string[];
  /** Trust anchors for the verification result. Without it the system store is used, which
   * does not know the test CA, so `verifyOk` is false. */
  caFile?: string;
  /** More s_client arguments, e.g. `["-cert", c, "-key", k]` or `["-tls1_2"]`. */
  extraArgs?: string[];
  /** Kill s_client and reject after this long. Default 10000. */
  timeoutMs?: number;
}

/** What {@linkcode sClient} saw. */
export interface SClientResult {
  /** The TCP connection was established. */
  connected: boolean;
  /** A TLS session was negotiated and the server sent a certificate. */
  handshakeOk: boolean;
  /** The subject CN of the server's leaf certificate. */
  peerCN: string | null;
  /** The issuer CN of that certificate (tells `untrusted` from `backend-internal`). */
  issuerCN: string | null;
  /** A certificate was presented and verified against `caFile` (and the servername, if any). */
  verifyOk: boolean;
  /** openssl's verification line, e.g. `0 (ok)` or `62 (hostname mismatch)`. */
  verifyResult: string | null;
  /** The negotiated ALPN protocol. */
  alpn: string | null;
  /** `TLSv1.3`, `TLSv1.2`, or null when no session was negotiated. */
  tlsVersion: string | null;
  /** The last TLS alert received, named as in RFC 8446 with spaces, e.g. `unrecognized name`. */
  alert: string | null;
  /** s_client's exit code (1 when the handshake failed). */
  code: number;
  /** stdout and stderr of s_client, for failure messages. */
  raw: string;
}

// RFC 8446 §6 and the TLS 1.2 registry; s_client prints only the number for some of them.
const ALERTS: Record<number, string> = {
  0: "close notify",
  10: "unexpected message",
  20: "bad record mac",
  22: "record overflow",
  40: "handshake failure",
  42: "bad certificate",
  43: "unsupported certificate",
  44: "certificate revoked",
  45: "certificate expired",
  46: "certificate unknown",
  47: "illegal parameter",
  48: "unknown ca",
  49: "access denied",
  50: "decode error",
  51: "decrypt error",
  70: "protocol version",
  71: "insufficient security",
  80: "internal error",
  86: "inappropriate fallback",
  90: "user canceled",
  109: "missing extension",
  110: "unsupported extension",
  112: "unrecognized name",
  113: "bad certificate status response",
  115: "unknown psk identity",
  116: "certificate required",
  120: "no application protocol",
};

function commonName(distinguishedName: string | undefined): string | null {
  if (distinguishedName === undefined) return null;
  // openssl 3 prints "O = edgemux tests, CN = vault.example.test".
  return /(?:^|, )CN = ([^,]+)/.exec(distinguishedName)?.[1] ?? null;
}

/**
 * Connects with `openssl s_client` (stdin at EOF, so it quits after the handshake) and parses
 * which certificate the server presented. Verification failures do not abort the handshake
 * (no `-verify_return_error`): the point is to read what was presented; `verifyOk` says
 * whether it would have been trusted.
 *
 * @returns the parsed result; a refused connection gives `connected: false`
 * @throws {Error} when openssl is missing or does not finish within `timeoutMs`
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startTlsHttpBackend } from "./backends.ts";
 * import { certPath } from "./certs.ts";
 *
 * await using vault = await startTlsHttpBackend("vault", "vault");
 * const seen = await sClient({
 *   port: vault.port,
 *   servername: "vault.example.test",
 *   caFile: certPath("ca"),
 * });
 * assert.equal(seen.peerCN, "vault.example.test");
 * assert.ok(seen.verifyOk);
 * ```
 */
export async function sClient(opts: SClientOptions): Promise<SClientResult> {
  const openssl = requireTool("openssl", "openssl");
  const host = opts.host ?? "127.0.0.1";
  const target = host.includes(":") ? `[${host}]:${opts.port}` : `${host}:${opts.port}`;
  const args = ["s_client", "-connect", target];
  if (opts.servername === null) {
    args.push("-noservername");
  } else if (opts.servername !== undefined) {
    args.push("-servername", opts.servername, "-verify_hostname", opts.servername);
  }
  if (opts.alpn) args.push("-alpn", opts.alpn.join(","));
  if (opts.caFile) args.push("-CAfile", opts.caFile);
  args.push(...(opts.extraArgs ?? []));

  const { code, stdout, stderr } = await run(openssl, args, {
    timeoutMs: opts.timeoutMs ?? 10_000,
  });
  const raw = `${stdout}\n${stderr}`;

  const subjectLine = /^subject=(.*)$/m.exec(stdout)?.[1];
  const issuerLine = /^issuer=(.*)$/m.exec(stdout)?.[1];
  const session = /^New, (\S+), Cipher is (\S+)$/m.exec(stdout);
  const tlsVersion = session && session[1] !== "(NONE)" ? session[1] : null;
  const verifyResult = /^Verify return code: (.*)$/m.exec(stdout)?.[1] ?? null;
  const alpn = /^ALPN protocol: (.*)$/m.exec(stdout)?.[1] ?? null;
  const alertNumbers = [...raw.matchAll(/SSL alert number (\d+)/g)].map((m) => Number(m[1]));
  const lastAlert = alertNumbers.at(-1);
  const hasCertificate = subjectLine !== undefined;

  return {
    connected: /^CONNECTED\(/m.test(stdout),
    handshakeOk: tlsVersion !== null && hasCertificate,
    peerCN: commonName(subjectLine),
    issuerCN: commonName(issuerLine),
    verifyOk: hasCertificate && verifyResult === "0 (ok)",
    verifyResult,
    alpn,
    tlsVersion,
    alert: lastAlert === undefined ? null : ALERTS[lastAlert] ?? `alert ${lastAlert}`,
    code,
    raw,
  };
}
