import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import {
  createSelfSignedCertificate,
  DEVELOPMENT_CERT_FILE,
  DEVELOPMENT_KEY_FILE,
  ecdsaSigValue,
  ensureDevelopmentCertificate,
} from "./dev_cert.ts";
import { oid, smallInteger, time, tlv, unsignedInteger } from "./_der.ts";
import { inspectCertificate } from "./certificate.ts";
import { openssl } from "./_testing.ts";
import { serveBySni } from "./_tls_testing.ts";
import { run } from "../../../tests/_helpers/process.ts";
import { makeTempDir } from "../../../tests/_helpers/tmp.ts";
import { requireTool } from "../../../tests/_helpers/tools.ts";

const DAY_MS = 24 * 60 * 60 * 1000;
const hex = (bytes: Uint8Array) => bytes.toHex();

Deno.test("DER INTEGER drops redundant leading zeros and adds one before a set top bit", () => {
  assert.equal(hex(unsignedInteger(Uint8Array.of(0, 0, 0x7f))), "02017f");
  assert.equal(hex(unsignedInteger(Uint8Array.of(0, 0, 0x80))), "02020080");
  assert.equal(hex(unsignedInteger(Uint8Array.of(0xff, 1))), "020300ff01");
  assert.equal(hex(unsignedInteger(Uint8Array.of(0, 0))), "020100");
  assert.equal(hex(smallInteger(2)), "020102");
  assert.equal(hex(smallInteger(256)), "02020100");
});

Deno.test("DER lengths switch to the long form at 128 bytes", () => {
  assert.equal(hex(tlv(0x04, new Uint8Array(127))).slice(0, 4), "047f");
  assert.equal(hex(tlv(0x04, new Uint8Array(128))).slice(0, 6), "048180");
  assert.equal(hex(tlv(0x04, new Uint8Array(300))).slice(0, 8), "0482012c");
});

Deno.test("DER OBJECT IDENTIFIER encodes multi-byte arcs base 128", () => {
  // ecdsa-with-SHA256, as it appears in every such certificate.
  assert.equal(hex(oid("1.2.840.10045.4.3.2")), "06082a8648ce3d040302");
  assert.equal(hex(oid("2.5.29.17")), "0603551d11");
});

Deno.test("DER times are UTCTime before 2050 and GeneralizedTime from 2050 on", () => {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes.subarray(2));
  const utc = time(new Date("2049-12-31T23:59:59.900Z"));
  assert.equal(utc[0], 0x17);
  assert.equal(text(utc), "491231235959Z");
  const generalized = time(new Date("2050-01-01T00:00:00Z"));
  assert.equal(generalized[0], 0x18);
  assert.equal(text(generalized), "20500101000000Z");
});

Deno.test("ecdsaSigValue() turns r||s into a DER SEQUENCE of two minimal INTEGERs", () => {
  const r = new Uint8Array(32).fill(0x11);
  const s = new Uint8Array(32).fill(0x22);
  assert.equal(
    hex(ecdsaSigValue(new Uint8Array([...r, ...s]))),
    "3044" + "0220" + hex(r) + "0220" + hex(s),
  );
  // Top bit set: a zero byte keeps the number positive.
  const high = new Uint8Array(32).fill(0x80);
  assert.equal(
    hex(ecdsaSigValue(new Uint8Array([...high, ...s]))),
    "3045" + "022100" + hex(high) + "0220" + hex(s),
  );
  // Leading zero bytes are dropped, and one comes back when the next byte has its top bit set.
  const small = new Uint8Array(32);
  small[31] = 5;
  const shortHigh = new Uint8Array(32);
  shortHigh[2] = 0x90;
  assert.equal(
    hex(ecdsaSigValue(new Uint8Array([...small, ...shortHigh]))),
    "3024" + "020105" + "021f00" + hex(shortHigh.subarray(2)),
  );
  assert.throws(() => ecdsaSigValue(new Uint8Array(3)), RangeError);
});

Deno.test("createSelfSignedCertificate() makes a certificate openssl parses, verifies and dates", async () => {
  await using dir = await makeTempDir("edgemux-dev-");
  const names = ["dev.example.test", "*.apps.example.test", "localhost"];
  const { certPem, keyPem } = await createSelfSignedCertificate(names, { days: 10 });
  const pem = `${dir.path}/self.pem`;
  await Deno.writeTextFile(pem, certPem);
  await Deno.writeTextFile(`${dir.path}/self.key`, keyPem);

  const text = await openssl(["x509", "-noout", "-text", "-in", pem]);
  assert.match(text, /Version: 3 \(0x2\)/);
  assert.match(text, /DNS:dev\.example\.test, DNS:\*\.apps\.example\.test, DNS:localhost/);
  assert.match(text, /Subject: O = edgemux development certificate, CN = dev\.example\.test/);
  assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
  assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature/);
  assert.match(text, /TLS Web Server Authentication/);
  assert.match(text, /X509v3 Subject Key Identifier/);
  assert.match(text, /ASN1 OID: prime256v1/);

  assert.match(await openssl(["verify", "-CAfile", pem, pem]), /self\.pem: OK/);
  // Strict DER: openssl's parser re-encodes and compares.
  await openssl(["asn1parse", "-in", pem, "-strictpem"]);
  await openssl(["pkey", "-in", `${dir.path}/self.key`, "-noout"]);
  const bin = requireTool("openssl", "openssl");
  const in9Days = await run(bin, ["x509", "-noout", "-checkend", String(9 * 86400), "-in", pem]);
  assert.equal(in9Days.code, 0, "still valid in 9 days");
  const in11Days = await run(bin, ["x509", "-noout", "-checkend", String(11 * 86400), "-in", pem]);
  assert.equal(in11Days.code, 1, "expired in 11 days");
});

Deno.test("createSelfSignedCertificate() output passes inspectCertificate as a self-signed leaf", async () => {
  const { certPem, keyPem } = await createSelfSignedCertificate(["A.Example.Test."]);
  const cert = inspectCertificate(certPem, keyPem, { cert: "c", key: "k" });
  if ("problem" in cert) assert.fail(cert.problem);
  assert.deepEqual(cert.names, ["a.example.test"]);
  assert.equal(cert.selfSigned, true);
  assert.equal(cert.ca, false);
  assert.equal(cert.keyPem, keyPem);
  assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
});

Deno.test("createSelfSignedCertificate() gives each certificate its own positive 16-byte serial", async () => {
  const serials = new Set<string>();
  for (let i = 0; i < 5; i++) {
    const { certPem } = await createSelfSignedCertificate(["s.example.test"]);
    const serial = new X509Certificate(certPem).serialNumber;
    assert.equal(serial.length, 32);
    assert.ok(parseInt(serial[0], 16) < 8, "top bit clear");
    serials.add(serial);
  }
  assert.equal(serials.size, 5);
});

Deno.test("createSelfSignedCertificate() encodes validity across 2050 as RFC 5280 asks", async () => {
  const now = new Date("2049-12-01T00:00:00Z");
  const { certPem } = await createSelfSignedCertificate(["y2050.example.test"], { now, days: 60 });
  const x509 = new X509Certificate(certPem);
  assert.equal(x509.validFromDate.toISOString(), "2049-11-30T23:00:00.000Z");
  assert.equal(x509.validToDate.toISOString(), "2050-01-30T00:00:00.000Z");
});

Deno.test("createSelfSignedCertificate() refuses names a certificate cannot carry", async () => {
  await assert.rejects(createSelfSignedCertificate([]), TypeError);
  await assert.rejects(createSelfSignedCertificate(["bad name"]), /"bad name" is not a DNS name/);
  await assert.rejects(createSelfSignedCertificate(["*.*.example.test"]), TypeError);
  await assert.rejects(createSelfSignedCertificate(["a.test"], { days: 0 }), RangeError);
});

/** Serves `cert` with Deno's TLS stack and tries a verified handshake for `name`. */
async function handshake(certPem: string, keyPem: string, name: string): Promise<string> {
  using server = serveBySni(() => ({ cert: certPem, key: keyPem }));
  return await server.handshake(name, [certPem]);
}

Deno.test({
  name: "createSelfSignedCertificate() output serves a TLS handshake for each name and no other",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn(t) {
    const { certPem, keyPem } = await createSelfSignedCertificate([
      "dev.example.test",
      "*.apps.example.test",
    ]);
    for (const name of ["dev.example.test", "grafana.apps.example.test"]) {
      await t.step(`succeeds for ${name}`, async () => {
        assert.equal(await handshake(certPem, keyPem, name), "ok");
      });
    }
    for (const name of ["other.example.test", "apps.example.test", "a.b.apps.example.test"]) {
      await t.step(`fails for ${name}`, async () => {
        assert.match(await handshake(certPem, keyPem, name), /not valid for name/i);
      });
    }
  },
});

Deno.test("ensureDevelopmentCertificate() creates the pair with private modes, then reuses it", async () => {
  await using tmp = await makeTempDir("edgemux-dev-");
  const dir = `${tmp.path}/state/dev-certs`;
  const first = await ensureDevelopmentCertificate(dir, ["dev.example.test", "*.dev.test"]);
  assert.equal(first.created, true);
  assert.equal(first.path, `${dir}/${DEVELOPMENT_CERT_FILE}`);
  assert.equal(first.keyPath, `${dir}/${DEVELOPMENT_KEY_FILE}`);
  assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
  assert.equal((await Deno.stat(first.keyPath)).mode! & 0o777, 0o600);
  assert.equal(await Deno.readTextFile(first.path), first.certPem);
  assert.equal(await Deno.readTextFile(first.keyPath), first.keyPem);
  // Nothing else is left in the directory (no temporary files).
  const entries = [];
  for await (const e of Deno.readDir(dir)) entries.push(e.name);
  assert.deepEqual(entries.sort(), [DEVELOPMENT_CERT_FILE, DEVELOPMENT_KEY_FILE]);

  const x509 = new X509Certificate(first.certPem);
  const days = (x509.validToDate.getTime() - Date.now()) / DAY_MS;
  assert.ok(days > 364 && days <= 365, `valid for a year, got ${days} days`);

  // The wildcard covers a new one-label name, so the same certificate is kept.
  const again = await ensureDevelopmentCertificate(dir, ["a.dev.test", "DEV.example.test."]);
  assert.equal(again.created, false);
  assert.equal(again.certPem, first.certPem);
  assert.equal(again.keyPem, first.keyPem);
});

Deno.test("ensureDevelopmentCertificate() makes a new certificate for a name the old one lacks", async () => {
  await using tmp = await makeTempDir("edgemux-dev-");
  const first = await ensureDevelopmentCertificate(tmp.path, ["dev.example.test"]);
  const second = await ensureDevelopmentCertificate(tmp.path, ["dev.example.test", "b.test"]);
  assert.equal(second.created, true);
  assert.notEqual(second.certPem, first.certPem);
  assert.equal(
    new X509Certificate(second.certPem).subjectAltName,
    "DNS:dev.example.test, DNS:b.test",
  );
  assert.equal(await Deno.readTextFile(second.path), second.certPem);
});

Deno.test("ensureDevelopmentCertificate() renews within 30 days of expiry, not before", async () => {
  await using tmp = await makeTempDir("edgemux-dev-");
  const first = await ensureDevelopmentCertificate(tmp.path, ["dev.example.test"]);
  const in300Days = new Date(Date.now() + 300 * DAY_MS);
  const kept = await ensureDevelopmentCertificate(tmp.path, ["dev.example.test"], {
    now: in300Days,
  });
  assert.equal(kept.created, false);
  const in340Days = new Date(Date.now() + 340 * DAY_MS);
  const renewed = await ensureDevelopmentCertificate(tmp.path, ["dev.example.test"], {
    now: in340Days,
  });
  assert.equal(renewed.created, true);
  assert.notEqual(renewed.certPem, first.certPem);
});

Deno.test("ensureDevelopmentCertificate() replaces a damaged or mismatched pair", async () => {
  await using tmp = await makeTempDir("edgemux-dev-");
  const first = await ensureDevelopmentCertificate(tmp.path, ["dev.example.test"]);
  const other = await createSelfSignedCertificate(["dev.example.test"]);
  await Deno.writeTextFile(first.keyPath, other.keyPem);
  const afterMismatch = await ensureDevelopmentCertificate(tmp.path, ["dev.example.test"]);
  assert.equal(afterMismatch.created, true);
  await Deno.writeTextFile(afterMismatch.path, "garbage");
  const afterGarbage = await ensureDevelopmentCertificate(tmp.path, ["dev.example.test"]);
  assert.equal(afterGarbage.created, true);
  const check = inspectCertificate(afterGarbage.certPem, afterGarbage.keyPem, {
    cert: afterGarbage.path,
    key: afterGarbage.keyPath,
  });
  assert.ok(!("problem" in check));
});

Deno.test("createSelfSignedCertificate() signatures verify whatever the shape of r and s", async () => {
  // About half of all r and s values have their top bit set and 1 in 128 lose a leading
  // byte, so a few hundred certificates walk through every INTEGER encoding case.
  const lengths = new Set<number>();
  for (let i = 0; i < 300; i++) {
    const { certPem } = await createSelfSignedCertificate(["sig.example.test"]);
    const x509 = new X509Certificate(certPem);
    assert.ok(x509.verify(x509.publicKey), `certificate ${i} verifies`);
    lengths.add(x509.raw.length);
  }
  assert.ok(lengths.size >= 2, "signatures of different lengths were produced");
});
