/**
 * A test helper that serves certificates the way edgemux does, through Deno.listenTls's SNI
 * resolver, and tries verified TLS handshakes against them by server name.
 *
 * @module
 */

import { listenTlsWithResolver, SERVER_NAME } from "../../_deno_internals.ts";

/** A loopback TLS server that picks the certificate for each connection by its SNI name. */
export interface SniServer extends Disposable {
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number;
  /**
   * Connects with `name` in SNI and completes a handshake that verifies the certificate the
   * server presents against `caCerts` and `name`; the server takes this one connection.
   *
   * @returns "ok", or the message of the error the handshake failed with
   */
  handshake(name: string, caCerts: string[]): Promise<string>;
}

/**
 * Starts a TLS server that answers each handshake with `resolve(sni)`. Dispose of it to close
 * the listener.
 */
export function serveBySni(resolve: (sni: string) => { cert: string; key: string }): SniServer {
  const listener = listenTlsWithResolver("127.0.0.1", 0, [], resolve);
  const port = (listener.addr as Deno.NetAddr).port;
  return {
    port,
    async handshake(name, caCerts) {
      const server = listener.accept().then(async (conn) => {
        // The client refusing the certificate is a failure the tests expect.
        await conn.handshake().catch(() => {});
        conn.close();
      });
      try {
        // The name goes in SNI and is checked against the certificate while the socket dials
        // the loopback address, as docs/deno-runtime.md §2 describes; the test names do not resolve.
        const client = await Deno.connectTls({
          hostname: "127.0.0.1",
          port,
          caCerts,
          [SERVER_NAME]: name,
        } as Deno.ConnectTlsOptions);
        try {
          await client.handshake();
          return "ok";
        } finally {
          client.close();
        }
      } catch (error) {
        return error instanceof Error ? error.message : String(error);
      } finally {
        await server;
      }
    },
    [Symbol.dispose]() {
      listener.close();
    },
  };
}
