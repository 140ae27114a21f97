/**
 * A real ACME CA for tests: Debian's `pebble`, with `pebble-challtestsrv` as its DNS server
 * answering 127.0.0.1 for every name, so that pebble validates challenges against edgemux's
 * listeners on loopback (its `httpPort` and `tlsPort` set to their ports).
 *
 * Debian's package ships no certificate for pebble's own HTTPS, so one is made here with
 * openssl: a throwaway CA and a `localhost` certificate it signs.
 *
 * @module
 */

import { run, startProcess } from "./process.ts";
import { pickFreePort } from "./ports.ts";
import { requireTool } from "./tools.ts";

/** A running pebble. */
export interface Pebble extends AsyncDisposable {
  /** The ACME directory URL. */
  readonly directoryUrl: string;
  /** The CA file that makes pebble's own HTTPS trusted (`certificates.acme.ca`). */
  readonly caFile: string;
  /** The root of the certificates pebble issues, as PEM (from its management interface). */
  issuingRoot(): Promise<string>;
  /** Pebble's log so far. */
  output(): string;
  stop(): Promise<void>;
}

/** Options for {@link startPebble}. */
export interface PebbleOptions {
  /** The directory for pebble's config and certificates (the caller removes it). */
  dir: string;
  /** Where pebble connects for HTTP-01 (edgemux's redirect listener). */
  httpPort: number;
  /** Where pebble connects for TLS-ALPN-01 (edgemux's TLS listener). */
  tlsPort: number;
  /** The lifetime of issued certificates, in seconds. Default: pebble's own (5 years). */
  validitySeconds?: number;
  /** Names pebble refuses to issue for (`rejectedIdentifier`). */
  blocklist?: string[];
}

/** Starts pebble-challtestsrv and pebble; both are stopped by disposing the result. */
export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const pebbleBin = requireTool("pebble", "pebble");
  const challBin = requireTool("pebble-challtestsrv", "pebble");
  const openssl = requireTool("openssl", "openssl");
  const dir = opts.dir;
  const ossl = async (args: string[]) => {
    const r = await run(openssl, args);
    if (r.code !== 0) throw new Error(`openssl ${args.join(" ")} failed:\n${r.stderr}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await ossl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    `${dir}/ca.pem`,
    "-days",
    "2",
    "-subj",
    "/CN=edgemux test pebble CA",
  ]);
  await ossl([
    "req",
    ...ec,
    "-keyout",
    `${dir}/wfe.key`,
    "-out",
    `${dir}/wfe.csr`,
    "-subj",
    "/CN=localhost",
  ]);
  await Deno.writeTextFile(
    `${dir}/wfe.ext`,
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n" +
      "extendedKeyUsage=serverAuth\n",
  );
  await ossl([
    "x509",
    "-req",
    "-in",
    `${dir}/wfe.csr`,
    "-CA",
    `${dir}/ca.pem`,
    "-CAkey",
    `${dir}/ca.key`,
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    `${dir}/wfe.ext`,
    "-out",
    `${dir}/wfe.pem`,
  ]);

  const dnsPort = pickFreePort();
  const chall = startProcess(challBin, [
    "-dns01",
    `127.0.0.1:${dnsPort}`,
    "-http01",
    "",
    "-https01",
    "",
    "-tlsalpn01",
    "",
    "-management",
    `127.0.0.1:${pickFreePort()}`,
    // Only A records: edgemux's test listeners are on 127.0.0.1.
    "-defaultIPv6",
    "",
  ]);
  try {
    await chall.waitForOutput("Starting management server", 10_000);
  } catch (e) {
    await chall.stop();
    throw e;
  }
  const listenPort = pickFreePort();
  const managementPort = pickFreePort();
  await Deno.writeTextFile(
    `${dir}/pebble.json`,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${listenPort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: `${dir}/wfe.pem`,
        privateKey: `${dir}/wfe.key`,
        httpPort: opts.httpPort,
        tlsPort: opts.tlsPort,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
        ...(opts.validitySeconds ? { certificateValidityPeriod: opts.validitySeconds } : {}),
        ...(opts.blocklist ? { domainBlocklist: opts.blocklist } : {}),
      },
    }),
  );
  const pebble = startProcess(
    pebbleBin,
    ["-config", `${dir}/pebble.json`, "-dnsserver", `127.0.0.1:${dnsPort}`],
    {
      env: {
        // No random sleeps before validation, no rejected nonces, and every order validated
        // afresh (no reuse of an earlier authorization), so each test sees its challenge.
        PEBBLE_VA_NOSLEEP: "1",
        PEBBLE_WFE_NONCEREJECT: "0",
        PEBBLE_AUTHZREUSE: "0",
      },
    },
  );
  try {
    await pebble.waitForOutput("Listening on", 20_000);
  } catch (e) {
    await pebble.stop();
    await chall.stop();
    throw e;
  }
  const caFile = `${dir}/ca.pem`;
  const stop = async () => {
    await pebble.stop();
    await chall.stop();
  };
  return {
    directoryUrl: `https://localhost:${listenPort}/dir`,
    caFile,
    async issuingRoot() {
      const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(caFile)] });
      try {
        const res = await fetch(`https://localhost:${managementPort}/roots/0`, { client });
        if (!res.ok) throw new Error(`pebble /roots/0: ${res.status}`);
        return await res.text();
      } finally {
        client.close();
      }
    },
    output: () => pebble.output(),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
