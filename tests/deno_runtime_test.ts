/**
 * The Deno 2.9.6 behaviours edgemux is built on, pinned one by one with the smallest program
 * that shows each. When an upgrade of Deno changes one of them, the test here names what moved,
 * and docs/deno-runtime.md says which part of edgemux leans on it.
 */

import { equal, match, ok } from "node:assert/strict";
import {
  connectTlsTo,
  listenTlsWithResolver,
  serveHttpOnConnection,
} from "../proxy/_deno_internals.ts";
import * as tls from "node:tls";
import { ClientSocketStream, TlsStreamConn } from "../proxy/tls/node_tls.ts";
import { readCert, readKey } from "./_helpers/certs.ts";
import { connectTlsByName } from "./_helpers/websocket.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("Deno runs the version edgemux pins", () => {
  equal(Deno.version.deno, "2.9.6");
});

Deno.test("Deno.listenTls chooses a certificate per server name and asks once per name", async () => {
  const asked: string[] = [];
  const listener = listenTlsWithResolver("127.0.0.1", 0, ["http/1.1"], (sni) => {
    asked.push(sni);
    const name = sni === "vault.example.test" ? "vault" : "edge-wildcard";
    return { cert: readCert(name), key: readKey(name) };
  });
  const port = (listener.addr as Deno.NetAddr).port;
  const served = (async () => {
    for (let i = 0; i < 3; i++) {
      const conn = await listener.accept();
      await conn.handshake().catch(() => {});
      conn.close();
    }
  })();
  try {
    for (const name of ["vault.example.test", "app.example.test", "vault.example.test"]) {
      const { conn } = await connectTlsByName({
        port,
        serverName: name,
        caCerts: [readCert("ca")],
      });
      conn.close();
    }
    await served;
    // The third connection reused the cached answer for its name.
    equal(asked.join(","), "vault.example.test,app.example.test");
  } finally {
    listener.close();
  }
});

Deno.test("Deno.connectTls verifies the name given by the server-name option, not the address", async () => {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: readCert("vault"),
    key: readKey("vault"),
  });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepting = (async () => {
    for (let i = 0; i < 2; i++) {
      const conn = await listener.accept();
      await conn.handshake().catch(() => {});
      conn.close();
    }
  })();
  try {
    const server = { address: { host: "127.0.0.1", port } } as Parameters<typeof connectTlsTo>[0];
    const tls = { caCerts: [readCert("ca")], cert: undefined, key: undefined };
    const good = await connectTlsTo(server, { ...tls, serverName: "vault.example.test" });
    await good.handshake();
    good.close();
    const bad = await connectTlsTo(server, { ...tls, serverName: "git.example.test" });
    let refused = false;
    await bad.handshake().catch(() => refused = true);
    bad.close();
    ok(refused, "a certificate for another name was accepted");
    await accepting;
  } finally {
    listener.close();
  }
});

Deno.test("serveHttpOnConnection serves HTTP on a connection edgemux accepted itself", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const ac = new AbortController();
  const serving = (async () => {
    const conn = await listener.accept();
    const served = serveHttpOnConnection(
      conn,
      ac.signal,
      (req) => new Response(`hello ${new URL(req.url).pathname}`),
      () => new Response("error", { status: 500 }),
      () => {},
    );
    await served.finished.catch(() => {});
  })();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(encoder.encode("GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n"));
    const buf = new Uint8Array(4096);
    let text = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n));
    }
    conn.close();
    match(text, /^HTTP\/1\.1 200 OK/);
    ok(text.endsWith("hello /x"), text);
    await serving;
  } finally {
    // Not aborted: aborting the signal of a connection that has ended throws BadResource from
    // inside Deno's abort listener, where nothing can catch it (docs/deno-runtime.md).
    listener.close();
  }
});

Deno.test("closing a TLS connection whose handshake is stalled leaves its socket open", async () => {
  // Why the handshake deadline of a terminated connection closes the client's socket at the
  // edge instead of the internal TLS connection (docs/deno-runtime.md).
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: readCert("edge-wildcard"),
    key: readKey("edge-wildcard"),
  });
  const port = (listener.addr as Deno.NetAddr).port;
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const server = await listener.accept();
    const handshake = server.handshake().catch(() => {});
    // A few bytes that start a TLS record, and then nothing.
    await client.write(new Uint8Array([22, 3, 1, 0, 200, 1]));
    await new Promise((r) => setTimeout(r, 100));
    server.close();
    const buf = new Uint8Array(16);
    const read = client.read(buf).then((n) => n === null ? "eof" : "data", () => "reset");
    const outcome = await Promise.race([
      read,
      new Promise<string>((r) => setTimeout(() => r("still open"), 500)),
    ]);
    equal(outcome, "still open");
    client.close();
    await handshake;
  } finally {
    try {
      client.close();
    } catch {
      // Closed above.
    }
    listener.close();
  }
});

Deno.test("node:tls ends TLS on a Deno.TcpConn already read from, and closes with close_notify", async () => {
  // The `node` termination path (proxy/tls/node_tls.ts, docs/deno-runtime.md §5): a server-side
  // TLSSocket over a plain node Duplex that replays the bytes the sniffer took, then the socket.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const served = (async () => {
    const conn = await listener.accept();
    // The sniffer's read: some of the ClientHello is consumed before TLS starts.
    const buf = new Uint8Array(8);
    const n = (await conn.read(buf))!;
    const stream = new ClientSocketStream(conn, buf.slice(0, n), undefined);
    const context = tls.createSecureContext({
      cert: readCert("edge-wildcard"),
      key: readKey("edge-wildcard"),
    });
    const socket = new tls.TLSSocket(stream as never, {
      isServer: true,
      secureContext: context,
      ALPNProtocols: ["http/1.1"],
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("secure", resolve);
      socket.once("error", reject);
    });
    const alpn = socket.alpnProtocol;
    const tlsConn = new TlsStreamConn(socket, stream);
    const got = new Uint8Array(64);
    const m = (await tlsConn.read(got))!;
    await tlsConn.write(encoder.encode(`echo ${decoder.decode(got.subarray(0, m))}`));
    tlsConn.close();
    await stream.socketClosed;
    return alpn;
  })();
  try {
    const { conn, alpn } = await connectTlsByName({
      port,
      serverName: "app.example.test",
      caCerts: [readCert("ca")],
      alpn: ["h2", "http/1.1"],
    });
    equal(alpn, "http/1.1");
    await conn.write(encoder.encode("ping"));
    const buf = new Uint8Array(64);
    const n = (await conn.read(buf))!;
    equal(decoder.decode(buf.subarray(0, n)), "echo ping");
    // close_notify, not a bare end of stream (which rustls reports as UnexpectedEof).
    equal(await conn.read(buf), null);
    conn.close();
    equal(await served, "http/1.1");
  } finally {
    listener.close();
  }
});

Deno.test("running out of descriptors is a plain Error with code EMFILE", async () => {
  // Why proxy/backends/local_errors.ts looks at `code`, not at a Deno.errors class.
  const script = `
    const held = [];
    try {
      for (;;) held.push(Deno.openSync("/dev/null"));
    } catch (e) {
      console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message }));
    }`;
  const out = await new Deno.Command("prlimit", {
    args: ["--nofile=32", Deno.execPath(), "eval", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  equal(out.code, 0, decoder.decode(out.stderr));
  const seen = JSON.parse(decoder.decode(out.stdout));
  equal(seen.code, "EMFILE");
  match(seen.message, /os error 24/);
});
