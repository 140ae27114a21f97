/**
 * TLS termination after peeking (docs/deno-runtime.md §5). Deno has no server-side TLS on a socket
 * it has already read from, so a terminated connection's bytes, ClientHello first, are relayed
 * into an internal `Deno.listenTls` on loopback whose SNI resolver picks the certificate. The
 * edge side registers who the real client is under the port of its loopback connection; the
 * internal side looks it up once the handshake is done.
 *
 * A socket whose TLS handshake has not finished cannot be closed from here: in Deno 2.9.6 closing a
 * `TlsConn` mid-handshake leaves the socket open until the handshake itself ends, and a client
 * that stalls after its ClientHello never ends it. So the handshake deadline that counts is the
 * edge side's (see terminate.ts): it closes the client and the loopback connection, and the
 * internal socket then sees end of stream and fails its handshake. Each registered client is
 * told when its handshake is done and when its internal connection has ended, so that the edge
 * side never outlives it.
 *
 * The resolver's answers are cached per name for the listener's life, so new certificates mean
 * a new terminator (the old one drains), and a client inventing names under a wildcard route
 * grows the cache: past {@link MAX_NAMES} distinct names the runtime starts a fresh one.
 *
 * @module
 */

import {
  type CertifiedKey,
  listenTlsWithResolver,
  setListenerNoDelay,
} from "../_deno_internals.ts";
import { log } from "../observe/log.ts";
import { localCause, noteLocalError } from "../backends/local_errors.ts";
import { closeQuietly, noDelay } from "../net.ts";
import { SecureContexts } from "./node_tls.ts";

/** How much longer than the edge side's handshake deadline the internal one waits. */
export const HANDSHAKE_BACKSTOP = 5_000;

/** Distinct SNI names one terminator serves before it asks to be replaced. */
export const MAX_NAMES = 10_000;

/** Picks the certificate for a server name ("" when the client sent none); null refuses. */
export type CertificateChooser = (sni: string | null) => CertifiedKey | null;

/** What the terminator tells the edge side of one connection. */
export interface TerminatorClient {
  /** The TLS handshake has finished; the edge side's handshake deadline can go. */
  handshaken?: () => void;
  /** The internal connection has ended, however it ended (it was served, failed or timed out). */
  ended?: () => void;
}

/** Handles one terminated connection once its handshake is done. */
export type TerminatedHandler<T> = (
  conn: Deno.TlsConn,
  alpn: string | null,
  info: T,
) => Promise<void>;

/** An internal TLS listener plus the table of connections waiting for it. */
export class Terminator<T extends TerminatorClient> {
  readonly #listener: Deno.TlsListener;
  readonly #waiting = new Map<number, T>();
  readonly #open = new Set<Deno.Conn>();
  readonly #names = new Set<string>();
  readonly #accepting: Promise<void>;
  #closed = false;
  /** `node:tls` contexts of the certificates `choose` gives (for terminate.ts's own path). */
  readonly contexts: SecureContexts = new SecureContexts();

  /**
   * @param choose Certificate selection; called once per distinct name.
   * @param handshakeTimeout How long a client may take to finish its handshake.
   * @param onConnection Runs each connection after the handshake.
   * @param onFull Called once when {@link MAX_NAMES} distinct names have been seen.
   */
  constructor(
    readonly choose: CertificateChooser,
    readonly handshakeTimeout: number,
    readonly onConnection: TerminatedHandler<T>,
    onFull: () => void,
  ) {
    this.#listener = listenTlsWithResolver("127.0.0.1", 0, ["h2", "http/1.1"], (sni) => {
      this.#names.add(sni);
      if (this.#names.size === MAX_NAMES) onFull();
      const chosen = choose(sni === "" ? null : sni);
      // Throwing fails the handshake with an alert; the edge side logs the connection.
      if (chosen === null) throw new Error(`no certificate for "${sni}"`);
      return chosen;
    });
    if (!setListenerNoDelay(this.port)) {
      log.debug("TCP_NODELAY is not set on the internal TLS listener (needs --allow-ffi)", {});
    }
    this.#accepting = this.#acceptLoop();
  }

  /** The internal listener's port on 127.0.0.1. */
  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /**
   * Opens a loopback connection to the internal listener for a client described by `info`.
   * The caller writes the client's bytes into it, ClientHello first, and relays.
   */
  async connect(info: T): Promise<Deno.TcpConn> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
    noDelay(conn);
    this.#waiting.set((conn.localAddr as Deno.NetAddr).port, info);
    return conn;
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.TlsConn;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (this.#closed) return;
        const cause = localCause(e);
        if (cause !== null) noteLocalError(cause, "accept", { listener: "internal TLS" });
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      this.#open.add(conn);
      this.#serve(conn).finally(() => {
        this.#open.delete(conn);
        closeQuietly(conn);
      });
    }
  }

  async #serve(conn: Deno.TlsConn): Promise<void> {
    const key = (conn.remoteAddr as Deno.NetAddr).port;
    let info: T | undefined;
    try {
      const alpn = await this.#handshake(conn);
      // A failed handshake leaves the entry alone: its loopback port may already belong to a
      // newer connection (the edge side closed this one at its deadline and the port was
      // reused), whose entry this is. The edge side forgets its own entry when it ends.
      if (alpn === undefined) return;
      // A finished handshake is this connection's: the client's hello was written after its
      // entry was made, so the entry under this port is the one for these bytes.
      info = this.#waiting.get(key);
      this.#waiting.delete(key);
      if (info === undefined) {
        // Only edgemux itself connects here, and it registers first; anything else is refused.
        log.warn("internal TLS connection with no registered client", { port: key });
        return;
      }
      info.handshaken?.();
      await this.onConnection(conn, alpn, info);
    } catch (e) {
      log.error("terminated connection failed", {
        error: e instanceof Error ? e.message : String(e),
      });
    } finally {
      info?.ended?.();
    }
  }

  /**
   * Drops the entry made by {@link connect} for `conn`, if it is still there and still `info`'s
   * (the edge side calls this when its connection ends, however the handshake went).
   */
  forget(conn: Deno.TcpConn, info: T): void {
    const key = (conn.localAddr as Deno.NetAddr).port;
    if (this.#waiting.get(key) === info) this.#waiting.delete(key);
  }

  /** The negotiated ALPN protocol, or undefined when the handshake failed or took too long. */
  async #handshake(conn: Deno.TlsConn): Promise<string | null | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const done = await Promise.race([
        conn.handshake(),
        new Promise<null>((r) => timer = setTimeout(() => r(null), this.handshakeTimeout)),
      ]);
      return done === null ? undefined : done.alpnProtocol;
    } catch {
      // A failed handshake (no certificate, a bad client): the client saw the alert.
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops accepting; connections already in progress continue. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#listener);
    await this.#accepting;
  }

  /** Closes every terminated connection still open (the end of a graceful stop). */
  closeConnections(): void {
    for (const c of this.#open) closeQuietly(c);
  }
}
