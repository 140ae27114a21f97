/**
 * TLS ended on the client's own socket with `node:tls` (docs/deno-runtime.md §5): no loopback
 * hop, no internal listener. The accepted `Deno.TcpConn`, with the bytes the sniffer already
 * read put back in front, becomes a node `Duplex`; a server-side `tls.TLSSocket` runs on it; and
 * the decrypted side is given back to the engines as the small part of `Deno.Conn` they use
 * (read, write, closeWrite, close).
 *
 * Used, when the `node` termination path is chosen (terminate.ts), for clients whose ClientHello
 * does not offer h2: `node:http2` serves nothing on such a socket, so HTTP/2 stays on the
 * internal listener.
 *
 * @module
 */

import * as tls from "node:tls";
import { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import type { CertifiedKey } from "../_deno_internals.ts";
import type { PendingRead } from "../relay.ts";

/** How much one read from the client's socket takes at most. */
const READ_SIZE = 16 * 1024;

/**
 * Decrypted bytes queued for the engine before the socket is paused: the engine reads in its own
 * time, and a client must not be able to fill memory while it does not.
 */
const QUEUE_LIMIT = 64 * 1024;

/** How long a close waits for close_notify to be written before it closes the socket anyway. */
const CLOSE_NOTIFY_WAIT = 1_000;

/**
 * The client's socket as a node stream: first the bytes the sniffer took (and the read it may
 * have left running), then reads from the socket. Counts the raw bytes both ways for the access
 * record, and never throws into node: errors end the stream.
 */
export class ClientSocketStream extends Duplex {
  /** Raw bytes read from the client (after `first`). */
  up = 0;
  /** Raw bytes written to the client. */
  down = 0;
  /** The first error the socket gave, if any. */
  failure: unknown = null;
  readonly #conn: Deno.TcpConn;
  #first: Uint8Array | null;
  #pending: PendingRead | undefined;
  #buf: Uint8Array | null = null;
  #closed = false;
  #lastWrite: Promise<void> = Promise.resolve();
  #onClosed!: () => void;
  /** Resolves once the client's socket has been closed. */
  readonly socketClosed: Promise<void> = new Promise((r) => this.#onClosed = r);

  constructor(conn: Deno.TcpConn, first: Uint8Array, pending: PendingRead | undefined) {
    super({ allowHalfOpen: true });
    // Failures are seen through `failure` and the TLS socket; an 'error' event with no
    // listener would be thrown.
    this.on("error", () => {});
    this.#conn = conn;
    this.#first = first.length > 0 ? first : null;
    this.#pending = pending;
  }

  override _read(): void {
    if (this.#first !== null) {
      const f = this.#first;
      this.#first = null;
      this.push(Buffer.from(f.buffer, f.byteOffset, f.length));
      return;
    }
    let buf: Uint8Array;
    let read: Promise<number | null>;
    if (this.#pending !== undefined) {
      buf = this.#pending.buffer;
      read = this.#pending.promise;
      this.#pending = undefined;
    } else {
      // Allocated only once the first read is due, and kept: reads are one at a time.
      buf = this.#buf ??= new Uint8Array(READ_SIZE);
      read = this.#conn.read(buf);
    }
    read.then((n) => {
      if (n === null) {
        this.push(null);
        return;
      }
      this.up += n;
      this.push(Buffer.from(buf.slice(0, n).buffer));
    }, (e) => this.#fail(e));
  }

  override _write(chunk: Uint8Array, _enc: string, done: (e?: Error | null) => void): void {
    const writing = this.#writeAll(chunk);
    this.#lastWrite = writing;
    writing.then(() => done(), (e) => {
      this.#fail(e);
      done(e instanceof Error ? e : new Error(String(e)));
    });
  }

  async #writeAll(data: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < data.length) offset += await this.#conn.write(data.subarray(offset));
    this.down += data.length;
  }

  override _final(done: (e?: Error | null) => void): void {
    this.#conn.closeWrite().then(() => done(), () => done());
  }

  override _destroy(e: Error | null, done: (e?: Error | null) => void): void {
    this.close();
    done(e);
  }

  /** Closes the client's socket (a pending read then fails, and the stream ends). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
    this.#onClosed();
  }

  /**
   * Closes the client's socket once what node has queued for it (close_notify, after
   * `TLSSocket#end`) has been written: node hands the encrypted bytes over a tick after it
   * reports the end as done.
   */
  async closeAfterWrites(): Promise<void> {
    await new Promise((r) => setTimeout(r, 0));
    await this.#lastWrite.catch(() => {});
    this.close();
  }

  #fail(e: unknown): void {
    this.failure ??= e;
    this.destroy();
  }
}

/** The options of a server-side `TLSSocket` that presents `cert` and offers `alpn`. */
export function serverOptions(
  secureContext: tls.SecureContext,
  alpn: string[],
): tls.TLSSocketOptions {
  return { isServer: true, secureContext, ALPNProtocols: alpn };
}

/**
 * Secure contexts by certificate, so that each certificate's PEM is parsed once per
 * terminator (a new terminator, and so a new cache, comes with every certificate change).
 */
export class SecureContexts {
  readonly #byCert = new Map<string, tls.SecureContext>();

  get(pair: CertifiedKey): tls.SecureContext {
    let c = this.#byCert.get(pair.cert);
    if (c === undefined) {
      c = tls.createSecureContext({ cert: pair.cert, key: pair.key });
      this.#byCert.set(pair.cert, c);
    }
    return c;
  }
}

/**
 * The decrypted side of a `TLSSocket` whose handshake has finished, as the part of `Deno.Conn` that the HTTP/1.1 engine and
 * the relay use. Errors are Deno's: `BadResource` after a local close, `ConnectionReset` when the
 * client failed, so `isClosedLocally` and `isPeerGone` (proxy/net.ts) read them as before.
 */
export class TlsStreamConn {
  readonly #socket: tls.TLSSocket;
  readonly #stream: ClientSocketStream;
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #closed = false;
  #endedByClient = false;
  #failed = false;
  #wake: (() => void) | null = null;
  #drained: (() => void) | null = null;

  constructor(socket: tls.TLSSocket, stream: ClientSocketStream) {
    this.#socket = socket;
    this.#stream = stream;
    // Built once the handshake is done; the client may have ended its side already.
    if (socket.readableEnded) this.#ended = this.#endedByClient = true;
    socket.on("data", (chunk: Uint8Array) => {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued >= QUEUE_LIMIT) socket.pause();
      this.#notify();
    });
    socket.on("end", () => {
      if (!this.#closed) this.#endedByClient = true;
      this.#ended = true;
      this.#notify();
    });
    socket.on("error", () => {
      this.#failed = true;
      this.#notify();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("drain", () => this.#notifyDrain());
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
    this.#notifyDrain();
  }

  #notifyDrain(): void {
    const d = this.#drained;
    this.#drained = null;
    d?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#closed) throw new Deno.errors.BadResource("the connection was closed");
      if (this.#queue.length > 0) return this.#take(p);
      if (this.#failed) throw new Deno.errors.ConnectionReset("the client's TLS stream failed");
      if (this.#ended) return null;
      await new Promise<void>((r) => this.#wake = r);
    }
  }

  #take(p: Uint8Array): number {
    const head = this.#queue[0];
    const n = Math.min(head.length, p.length);
    p.set(n === head.length ? head : head.subarray(0, n));
    if (n === head.length) this.#queue.shift();
    else this.#queue[0] = head.subarray(n);
    this.#queued -= n;
    if (this.#queued < QUEUE_LIMIT && this.#socket.isPaused()) this.#socket.resume();
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    if (this.#closed) throw new Deno.errors.BadResource("the connection was closed");
    if (this.#failed || this.#socket.destroyed) {
      throw new Deno.errors.ConnectionReset("the client's TLS stream failed");
    }
    // Copied: the caller may reuse its buffer as soon as this returns, and node keeps the chunk
    // until it has been encrypted and written.
    if (this.#socket.write(Buffer.from(p))) return p.length;
    await new Promise<void>((r) => this.#drained = r);
    if (this.#closed) throw new Deno.errors.BadResource("the connection was closed");
    if (this.#failed || this.#socket.destroyed) {
      throw new Deno.errors.ConnectionReset("the client's TLS stream failed");
    }
    return p.length;
  }

  /** Sends close_notify and the TCP half-close once everything written has gone out. */
  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("closed"));
    this.#socket.end();
    return Promise.resolve();
  }

  /** Closes the client's socket at once; throws `BadResource` if closed already, as Deno does. */
  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("the connection was closed");
    this.#closed = true;
    this.#notify();
    const socket = this.#socket;
    const stream = this.#stream;
    if (socket.destroyed || !socket.writable || stream.destroyed) {
      stream.close();
      return;
    }
    // A TLS close: close_notify (RFC 8446 §6.1) and whatever was written before it go out
    // first, then the socket closes; a client that does not read them is closed anyway.
    const timer = setTimeout(() => stream.close(), CLOSE_NOTIFY_WAIT);
    try {
      socket.end(() => {
        clearTimeout(timer);
        void stream.closeAfterWrites();
      });
    } catch {
      clearTimeout(timer);
      stream.close();
    }
  }

  /** Whether the client ended its side before edgemux closed the connection. */
  get endedByClient(): boolean {
    return this.#endedByClient;
  }

  /** Whether {@link close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }
}
