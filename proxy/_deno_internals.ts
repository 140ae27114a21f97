/**
 * Everything edgemux takes from Deno beyond its documented API, in one place. Each piece was
 * verified on Deno 2.9.6 and is pinned by tests/deno_runtime_test.ts; docs/deno-runtime.md lists
 * them with what depends on each. Nothing is looked up when this module loads.
 *
 * @module
 */

import type { ServerConfig } from "../config/types.ts";

/** `Deno.listenTls` option: a function choosing the certificate by SNI (cached per name). */
export const SNI_RESOLVER: unique symbol = Symbol.for("unstableSniResolver") as never;
/** `Deno.connectTls` option: the name to send as SNI and verify, when dialling an address. */
export const SERVER_NAME: unique symbol = Symbol.for("unstableServerName") as never;

/** The handle `serveHttpOnConnection` returns. */
export interface ServedConnection {
  finished: Promise<void>;
  /**
   * Stops taking new requests and closes once the ones in flight have been answered in full.
   * Never abort the connection's signal after calling it (Deno 2.9.6 then throws an uncaught
   * BadResource from inside the abort listener; docs/deno-runtime.md).
   */
  shutdown(): Promise<void>;
}

type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: (req: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>,
  onError: (error: unknown) => Response | Promise<Response>,
  onListen: () => void,
) => ServedConnection;

let serveOnConnection: ServeOnConnection | undefined;

/**
 * Deno's HTTP server (h2 and HTTP/1.1) on a connection we accepted ourselves, stopped by
 * `signal`. Deno.serve has no such option and no timeouts; this is how edgemux gets both.
 *
 * The internal function is looked up on first use, not when this module loads, so the library's
 * pure parts (`parseConfig`) work on any Deno; a Deno without it fails the first HTTP/2
 * connection with an error that says what is missing (docs/deno-runtime.md).
 */
export function serveHttpOnConnection(...args: Parameters<ServeOnConnection>): ServedConnection {
  serveOnConnection ??= lookUpServeOnConnection();
  return serveOnConnection(...args);
}

function lookUpServeOnConnection(): ServeOnConnection {
  const internals = (Deno as unknown as Record<symbol, Record<string, unknown> | undefined>)[
    (Deno as unknown as { internal: symbol }).internal
  ];
  const fn = internals?.serveHttpOnConnection;
  if (typeof fn !== "function") {
    throw new Error(
      `this Deno (${Deno.version.deno}) lacks Deno[Deno.internal].serveHttpOnConnection, which ` +
        "edgemux uses to serve HTTP on connections it accepted; run edgemux on Deno 2.9.6",
    );
  }
  return fn as ServeOnConnection;
}

/** The certificate and key a TLS listener presents. */
export interface CertifiedKey {
  cert: string;
  key: string;
}

/** `Deno.listenTls` with a certificate chosen per SNI name. */
export function listenTlsWithResolver(
  hostname: string,
  port: number,
  alpnProtocols: string[],
  resolve: (sni: string) => CertifiedKey,
): Deno.TlsListener {
  return Deno.listenTls(
    {
      hostname,
      port,
      alpnProtocols,
      [SNI_RESOLVER]: resolve,
    } as unknown as Deno.ListenTlsOptions & Deno.TlsCertifiedKeyPem,
  );
}

/** TLS options for dialling one backend server. */
export interface TlsDialOptions {
  caCerts: string[] | undefined;
  serverName: string | null;
  cert: string | undefined;
  key: string | undefined;
}

/** `Deno.connectTls` to a server's address, verifying `serverName` (default: the host). */
export function connectTlsTo(server: ServerConfig, tls: TlsDialOptions): Promise<Deno.TlsConn> {
  return Deno.connectTls({
    hostname: server.address.host,
    port: server.address.port,
    caCerts: tls.caCerts,
    alpnProtocols: ["http/1.1"],
    [SERVER_NAME]: tls.serverName ?? server.address.host,
    ...(tls.cert !== undefined ? { cert: tls.cert, key: tls.key } : {}),
  } as unknown as Deno.ConnectTlsOptions);
}

type Libc = Deno.DynamicLibrary<{
  getsockname: { parameters: ["i32", "buffer", "buffer"]; result: "i32" };
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"]; result: "i32" };
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"]; result: "i32" };
}>;

let libc: Libc | null | undefined;

/**
 * Where glibc lives on Debian/Ubuntu (x86-64, arm64) and Fedora/RHEL. They are tried in this
 * order; the compile task grants `--allow-ffi` for exactly these paths and nothing else.
 */
export const LIBC_PATHS = [
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/aarch64-linux-gnu/libc.so.6",
  "/lib64/libc.so.6",
];

function loadLibc(): Libc | null {
  for (const path of LIBC_PATHS) {
    try {
      return Deno.dlopen(path, {
        getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
        getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
        setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
      });
    } catch {
      // Not there, or no --allow-ffi for it: try the next one.
    }
  }
  return null;
}

const AF_INET = 2;
const SOL_SOCKET = 1;
const SO_ACCEPTCONN = 30;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;

/**
 * Sets TCP_NODELAY on the IPv4 listening socket bound to `port`, so every socket it accepts
 * inherits it (Linux copies the option from the listener). Deno offers no way to set it on a
 * TLS listener or on the connections one accepts, and without it the internal TLS hop meets
 * Nagle's algorithm: a small TLS record written while the previous one waits for a delayed ACK
 * is held back for up to 40 ms, which shows as stalls in streamed responses.
 *
 * The listener's file descriptor is found with getsockname(2) over the process's descriptors
 * (the kernel hands out the lowest free one, so the search is short). Returns false when it
 * cannot be done (no `--allow-ffi`, another libc); edgemux then works, with those stalls.
 */
export function setListenerNoDelay(port: number): boolean {
  if (libc === undefined) libc = loadLibc();
  if (libc === null) return false;
  const addr = new Uint8Array(128);
  const len = new Uint32Array(1);
  const value = new Int32Array(1);
  const valueLen = new Uint32Array(1);
  const { getsockname, getsockopt, setsockopt } = libc.symbols;
  for (let fd = 3, misses = 0; fd < 1 << 20 && misses < 4096; fd++) {
    len[0] = addr.length;
    if (getsockname(fd, addr, new Uint8Array(len.buffer)) !== 0) {
      misses++;
      continue;
    }
    misses = 0;
    if ((addr[0] | (addr[1] << 8)) !== AF_INET || ((addr[2] << 8) | addr[3]) !== port) continue;
    valueLen[0] = 4;
    getsockopt(
      fd,
      SOL_SOCKET,
      SO_ACCEPTCONN,
      new Uint8Array(value.buffer),
      new Uint8Array(valueLen.buffer),
    );
    if (value[0] !== 1) continue;
    value[0] = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, new Uint8Array(value.buffer), 4) === 0;
  }
  return false;
}
