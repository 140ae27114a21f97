import assert from "node:assert/strict";
import { encodePem, PemError, splitPem } from "./pem.ts";

const testCerts = new URL("../../../testdata/certs/", import.meta.url);
const vaultPem = Deno.readTextFileSync(new URL("vault.pem", testCerts));
const vaultKey = Deno.readTextFileSync(new URL("vault.key", testCerts));

Deno.test("splitPem() returns every block in file order with its label and decoded bytes", () => {
  const blocks = splitPem(vaultPem + vaultKey);
  assert.deepEqual(blocks.map((b) => b.label), ["CERTIFICATE", "PRIVATE KEY"]);
  // A DER certificate is a SEQUENCE with a two-byte long-form length.
  assert.deepEqual([...blocks[0].der.subarray(0, 2)], [0x30, 0x82]);
  assert.equal(blocks[0].text, vaultPem);
  assert.equal(blocks[1].text, vaultKey);
});

Deno.test("splitPem() skips text around blocks and accepts CRLF line ends and indentation", () => {
  const messy = "Bag Attributes\r\n    friendlyName: vault\r\n" +
    vaultPem.replaceAll("\n", "\r\n").replace(/^/gm, "  ") + "\r\nsubject=... trailing notes\r\n" +
    vaultKey;
  const blocks = splitPem(messy);
  assert.deepEqual(blocks.map((b) => b.text), [vaultPem, vaultKey]);
});

Deno.test("splitPem() returns no blocks for text without any", () => {
  assert.deepEqual(splitPem(""), []);
  assert.deepEqual(splitPem("just a README\n"), []);
});

Deno.test("splitPem() re-encodes a block with long lines in 64-character lines", () => {
  const der = new Uint8Array(100).map((_, i) => i);
  const oneLine = `-----BEGIN CERTIFICATE-----\n${der.toBase64()}\n-----END CERTIFICATE-----\n`;
  const [block] = splitPem(oneLine);
  assert.deepEqual(block.der, der);
  assert.equal(block.text, encodePem("CERTIFICATE", der));
  assert.ok(block.text.split("\n").every((line) => line.length <= 64));
});

Deno.test("splitPem() reads the RFC 1421 headers of a legacy encrypted key", () => {
  const text = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n" +
    "DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAEC\n" +
    "-----END RSA PRIVATE KEY-----\n";
  const [block] = splitPem(text);
  assert.equal(block.headers["Proc-Type"], "4,ENCRYPTED");
  assert.deepEqual([...block.der], [0, 1, 2]);
});

Deno.test("splitPem() rejects a block whose END line is missing", () => {
  assert.throws(
    () => splitPem(vaultPem.replace("-----END CERTIFICATE-----\n", "")),
    (e: unknown) => e instanceof PemError && /opened on line 1 has no END line/.test(e.message),
  );
  // A second BEGIN before the first block ended.
  assert.throws(
    () => splitPem(vaultPem.replace("-----END CERTIFICATE-----\n", "") + vaultKey),
    /"CERTIFICATE" block opened on line 1 has no END line/,
  );
});

Deno.test("splitPem() rejects an END line with another label", () => {
  assert.throws(
    () => splitPem("-----BEGIN CERTIFICATE-----\nAAEC\n-----END PRIVATE KEY-----\n"),
    /closed by "-----END PRIVATE KEY-----" on line 3/,
  );
});

Deno.test("splitPem() rejects a broken boundary line and a stray END", () => {
  assert.throws(() => splitPem("-----BEGIN CERTIFICATE----\nAAEC\n"), /line 1 is a broken PEM/);
  assert.throws(() => splitPem("-----END CERTIFICATE-----\n"), /line 1 is a broken PEM/);
});

Deno.test("splitPem() accepts only strict base64", async (t) => {
  const wrap = (body: string) =>
    `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
  await t.step("valid with one and two padding characters", () => {
    assert.deepEqual([...splitPem(wrap("AAE="))[0].der], [0, 1]);
    assert.deepEqual([...splitPem(wrap("AA=="))[0].der], [0]);
  });
  for (
    const [what, body] of [
      ["a character outside the alphabet", "AA*C"],
      ["url-safe characters", "AA-_"],
      ["padding in the middle", "AA==AAAA"],
      ["a truncated last group", "AAECA"],
      ["missing padding", "AAE"],
      ["non-zero padding bits", "AB=="],
      ["an empty body", ""],
    ]
  ) {
    await t.step(`rejects ${what}`, () => {
      assert.throws(() => splitPem(wrap(body)), PemError);
    });
  }
});

Deno.test("encodePem() output splits back into the same bytes", () => {
  const der = crypto.getRandomValues(new Uint8Array(1000));
  const [block] = splitPem(encodePem("PRIVATE KEY", der));
  assert.equal(block.label, "PRIVATE KEY");
  assert.deepEqual(block.der, der);
});
