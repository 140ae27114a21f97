/**
 * Everything edgemux takes from Deno beyond its documented API, in one place. Each piece was
 * verified on Deno 2.9.6 (DENO-FACTS.md); a check at load time turns a missing piece into a
 * clear startup error instead of a failure on the first connection.
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
}

type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: (req: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>,
  onError: (error: unknown) => Response | Promise<Response>,
  onListen: () => void,
) => ServedConnection;

const internals = (Deno as unknown as Record<symbol, Record<string, unknown>>)[
  (Deno as unknown as { internal: symbol }).internal
];

/**
 * Deno's HTTP server (h2 and HTTP/1.1) on a connection we accepted ourselves, stopped by
 * `signal`. Deno.serve has no such option and no timeouts; this is how edgemux gets both.
 */
export const serveHttpOnConnection: ServeOnConnection = (() => {
  const fn = internals?.serveHttpOnConnection;
  if (typeof fn !== "function") {
    throw new Error(
      `this Deno (${Deno.version.deno}) lacks the internal serveHttpOnConnection that edgemux ` +
        "uses to serve HTTP/2; run edgemux on Deno 2.9.6",
    );
  }
  return fn as ServeOnConnection;
})();

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
