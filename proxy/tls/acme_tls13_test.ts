import assert from "node:assert/strict";
import fc from "fast-check";
import acme from "acme-client";
import { parseClientHello, serverFlight } from "./acme_tls13.ts";
import { run } from "../../tests/_helpers/process.ts";
import { requireTool } from "../../tests/_helpers/tools.ts";

const OPENSSL = requireTool("openssl", "openssl");

/** Runs `openssl s_client` against a listener that hands its first bytes to `answer`. */
async function withClient(
  args: string[],
  answer: (hello: Uint8Array, conn: Deno.Conn) => Promise<void>,
): Promise<string> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const served = (async () => {
    const conn = await listener.accept();
    try {
      const buf = new Uint8Array(16384);
      let length = 0;
      // Read until the ClientHello is complete (it may take more than one read).
      for (;;) {
        const n = await conn.read(buf.subarray(length));
        if (n === null) break;
        length += n;
        if (parseClientHello(buf.subarray(0, length)) !== null) break;
      }
      await answer(buf.slice(0, length), conn);
    } finally {
      conn.close();
    }
  })();
  const result = await run(OPENSSL, [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "app.example.test",
    "-alpn",
    "acme-tls/1",
    ...args,
  ], { stdin: "", timeoutMs: 10_000 });
  await served;
  listener.close();
  return result.stdout + result.stderr;
}

const key = (await acme.crypto.createPrivateEcdsaKey("P-256")).toString();
const [, cert] = await acme.crypto.createAlpnCertificate(
  {
    identifier: { type: "dns", value: "app.example.test" },
    url: "",
    status: "pending",
    challenges: [],
    expires: "",
  },
  "token.thumbprint",
  key,
);

Deno.test("serverFlight() completes a TLS 1.3 handshake with openssl, negotiating acme-tls/1", async () => {
  const out = await withClient([], async (hello, conn) => {
    const offer = parseClientHello(hello);
    assert.ok(offer);
    const flight = serverFlight(offer, cert.toString(), key, "acme-tls/1");
    assert.ok(flight);
    await conn.write(flight);
    // The client's Finished arrives; then it closes.
    await conn.read(new Uint8Array(1024));
  });
  assert.match(out, /TLSv1\.3/);
  assert.match(out, /ALPN protocol: acme-tls\/1/);
  assert.match(out, /Cipher is TLS_AES_128_GCM_SHA256/);
  // openssl, verifying, notices the certificate is the challenge certificate.
  assert.match(out, /unhandled critical extension/);
  assert.match(out, /subject=CN ?= ?app\.example\.test/);
});

Deno.test("serverFlight() refuses clients it cannot answer: no TLS 1.3, or no X25519 share", async () => {
  for (const args of [["-tls1_2"], ["-groups", "P-256"]]) {
    await withClient(args, (hello) => {
      const offer = parseClientHello(hello);
      assert.ok(offer, args.join(" "));
      assert.equal(serverFlight(offer, cert.toString(), key, "acme-tls/1"), null, args.join(" "));
      return Promise.resolve();
    });
  }
});

Deno.test("parseClientHello() never throws, and wants the whole hello", async () => {
  let hello: Uint8Array | null = null;
  await withClient([], (h) => {
    hello = h;
    return Promise.resolve();
  });
  const full = hello as unknown as Uint8Array;
  assert.ok(parseClientHello(full));
  for (let n = 0; n < full.length; n++) {
    assert.equal(parseClientHello(full.subarray(0, n)), null, `prefix of ${n} bytes`);
  }
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(full.length - 1), (noise, at) => {
      parseClientHello(noise);
      // Corrupting one byte of a real hello gives an offer or null, never an exception.
      const bent = full.slice();
      bent[at] ^= noise[0] ?? 0xff;
      parseClientHello(bent);
    }),
    { numRuns: 500 },
  );
});
