/**
 * Answering ACME challenges on edgemux's own listeners.
 *
 * - HTTP-01 (RFC 8555 §8.3): a `redirect` listener answers
 *   `GET /.well-known/acme-challenge/TOKEN` with the key authorization, before it would
 *   redirect (or forward to an `acme_challenge` backend).
 * - TLS-ALPN-01 (RFC 8737): a TLS listener that sees a ClientHello offering `acme-tls/1` for a
 *   name being validated answers it with the challenge certificate, whatever route the name has
 *   (passthrough included). Every other connection, the same name's included, is routed as
 *   always; the route table never sees the validation connection.
 *
 * The challenge certificate is made by acme-client (certs/acme.ts) and served by
 * acme_tls13.ts, which speaks the server half of a TLS 1.3 handshake itself: Deno's TLS refuses
 * to serve a certificate with the critical acmeIdentifier extension (see there).
 *
 * Challenges live in memory and in the state directory: with `workers`, the CA's validation
 * connection may reach a worker other than the one that placed the order.
 *
 * @module
 */

import type { OpenAccessRecord } from "../observe/records.ts";
import { type AcmeState, isToken } from "./certs/acme_state.ts";
import { closeQuietly, writeAll } from "../net.ts";
import { HANDSHAKE_FAILURE_ALERT, parseClientHello, serverFlight } from "./acme_tls13.ts";

/** The ALPN protocol of TLS-ALPN-01 (RFC 8737 §6.2). */
export const ACME_TLS_ALPN = "acme-tls/1";
/** The path prefix of HTTP-01 (RFC 8555 §8.3). */
export const ACME_HTTP_PREFIX = "/.well-known/acme-challenge/";
/** How long a TLS-ALPN-01 validation connection may take, handshake and all. */
const ALPN_CONNECTION_TIMEOUT = 10_000;

/** The challenges this process (or another sharing the state directory) is answering. */
export class AcmeChallenges {
  readonly #http = new Map<string, string>();
  readonly #alpn = new Map<string, { cert: string; key: string }>();
  /** Names (lowercase) this edgemux orders for; only these get TLS-ALPN-01 answers. */
  #names = new Set<string>();

  constructor(readonly state: AcmeState) {}

  /** The names being managed, so an `acme-tls/1` hello for any other name costs no disk read. */
  setNames(names: readonly string[]): void {
    this.#names = new Set(names);
  }

  async addHttp(token: string, keyAuthorization: string): Promise<void> {
    this.#http.set(token, keyAuthorization);
    await this.state.writeHttpChallenge(token, keyAuthorization);
  }

  async removeHttp(token: string): Promise<void> {
    this.#http.delete(token);
    await this.state.removeHttpChallenge(token);
  }

  async addAlpn(name: string, cert: string, key: string): Promise<void> {
    this.#alpn.set(name, { cert, key });
    await this.state.writeAlpnChallenge(name, cert, key);
  }

  async removeAlpn(name: string): Promise<void> {
    this.#alpn.delete(name);
    await this.state.removeAlpnChallenge(name);
  }

  /** The key authorization for an HTTP-01 token, or null when it is not ours. */
  async httpAnswer(token: string): Promise<string | null> {
    if (!isToken(token)) return null;
    return this.#http.get(token) ?? await this.state.readHttpChallenge(token);
  }

  /** The TLS-ALPN-01 certificate for `name`, or null when it is not being validated. */
  async alpnCertificate(name: string): Promise<{ cert: string; key: string } | null> {
    const host = name.toLowerCase().replace(/\.$/, "");
    if (!this.#names.has(host)) return null;
    return this.#alpn.get(host) ?? await this.state.readAlpnChallenge(host);
  }
}

/**
 * Answers a TLS-ALPN-01 validation connection when `record` describes one for a name being
 * validated. Returns false, having read and written nothing more, when it is not one: the
 * caller then routes the connection as usual.
 */
export async function answerTlsAlpnChallenge(
  conn: Deno.TcpConn,
  challenges: AcmeChallenges,
  stopped: AbortSignal,
  record: OpenAccessRecord,
  first: Uint8Array,
): Promise<boolean> {
  if (record.sni === null || !record.alpn.includes(ACME_TLS_ALPN)) return false;
  const certificate = await challenges.alpnCertificate(record.sni);
  if (certificate === null) return false;
  record.route = "acme-tls-alpn-01";
  const offer = parseClientHello(first);
  const flight = offer === null
    ? null
    : serverFlight(offer, certificate.cert, certificate.key, ACME_TLS_ALPN);
  try {
    if (flight === null) {
      await writeAll(conn, HANDSHAKE_FAILURE_ALERT);
      record.down += HANDSHAKE_FAILURE_ALERT.length;
      record.end = "acme-tls-alpn-01-failed";
      record.detail = "the client offers no TLS 1.3 with X25519, AES-128-GCM and ECDSA P-256";
      return true;
    }
    await writeAll(conn, flight);
    record.down += flight.length;
    // The validator checks the certificate and closes; its Finished is read and dropped.
    record.up += await drain(conn, stopped);
    record.end = "acme-tls-alpn-01";
  } catch (e) {
    record.end = "acme-tls-alpn-01-failed";
    record.detail = e instanceof Error ? e.message : String(e);
  }
  return true;
}

/** Reads until the client closes or {@link ALPN_CONNECTION_TIMEOUT} passes; returns the count. */
async function drain(conn: Deno.Conn, stopped: AbortSignal): Promise<number> {
  const buf = new Uint8Array(4096);
  let total = 0;
  const timer = setTimeout(() => closeQuietly(conn), ALPN_CONNECTION_TIMEOUT);
  const stop = () => closeQuietly(conn);
  stopped.addEventListener("abort", stop, { once: true });
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return total;
      total += n;
    }
  } catch {
    return total;
  } finally {
    clearTimeout(timer);
    stopped.removeEventListener("abort", stop);
  }
}
