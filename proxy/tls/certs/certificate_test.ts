import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { type CertProblem, inspectCertificate, type InspectedCert } from "./certificate.ts";
import { makeCert, openssl } from "./_testing.ts";
import { makeTempDir } from "../../../tests/_helpers/tmp.ts";
import {
  type CertName,
  certPath,
  keyPath,
  readCert,
  readKey,
} from "../../../tests/_helpers/certs.ts";

function inspectTestCert(name: CertName, keyName: CertName = name): InspectedCert | CertProblem {
  return inspectCertificate(readCert(name), readKey(keyName), {
    cert: certPath(name),
    key: keyPath(keyName),
  });
}

/** Inspects the certificate and key that makeCert() wrote to `files`. */
async function inspectFiles(files: { cert: string; key: string }) {
  const certText = await Deno.readTextFile(files.cert);
  return inspectCertificate(certText, await Deno.readTextFile(files.key), files);
}

function ok(result: InspectedCert | CertProblem): InspectedCert {
  if ("problem" in result) assert.fail(`unexpected problem: ${result.problem}`);
  return result;
}

function problem(result: InspectedCert | CertProblem): CertProblem {
  if (!("problem" in result)) assert.fail(`expected a problem, got a certificate`);
  return result;
}

Deno.test("inspectCertificate() reads names, dates, subject and fingerprint of a leaf", () => {
  const cert = ok(inspectTestCert("edge-wildcard"));
  const x509 = new X509Certificate(readCert("edge-wildcard"));
  assert.deepEqual(cert.names, ["*.example.test", "example.test"]);
  assert.equal(cert.subject, "O=edgemux tests, CN=*.example.test");
  assert.equal(cert.issuer, "O=edgemux tests, CN=edgemux test CA");
  assert.equal(cert.fingerprint, x509.fingerprint256);
  assert.equal(cert.notBefore.getTime(), x509.validFromDate.getTime());
  assert.equal(cert.notAfter.getTime(), x509.validToDate.getTime());
  assert.equal(cert.selfSigned, false);
  assert.equal(cert.ca, false);
  assert.equal(cert.certPem, readCert("edge-wildcard"));
  assert.equal(cert.keyPem, readKey("edge-wildcard"));
  assert.deepEqual(cert.origin, { cert: certPath("edge-wildcard"), key: keyPath("edge-wildcard") });
});

Deno.test("inspectCertificate() keeps only the DNS names of a subjectAltName with an IP", () => {
  assert.deepEqual(ok(inspectTestCert("backend-internal")).names, ["backend.internal"]);
});

Deno.test("inspectCertificate() puts the leaf first when the chain lists the CA first", () => {
  const chain = readCert("ca") + "\n# a comment\n" + readCert("vault");
  const cert = ok(inspectCertificate(chain, readKey("vault"), { cert: "chain.pem", key: "k" }));
  assert.equal(cert.certPem, readCert("vault") + readCert("ca"));
  assert.deepEqual(cert.names, ["vault.example.test"]);
});

Deno.test("inspectCertificate() reads a chain and key kept in one file", () => {
  const both = readCert("git") + readCert("ca") + readKey("git");
  const cert = ok(inspectCertificate(both, both, { cert: "git.pem", key: "git.pem" }));
  assert.equal(cert.certPem, readCert("git") + readCert("ca"));
  assert.equal(cert.keyPem, readKey("git"));
});

Deno.test("inspectCertificate() says which files do not match when the key is another one", () => {
  const p = problem(inspectTestCert("vault", "git"));
  assert.match(p.problem, /the private key in ".*\/git\.key" does not belong to the certificate/);
  assert.match(p.problem, /".*\/vault\.pem" \(subject O=edgemux tests, CN=vault\.example\.test\)/);
  assert.match(p.fix, /openssl x509 -noout -pubkey/);
});

Deno.test("inspectCertificate() refuses a CA certificate that names no server", () => {
  const p = problem(inspectTestCert("ca"));
  assert.match(p.problem, /holds a CA certificate .* that names no server/);
  assert.match(p.fix, /server \(leaf\) certificate/);
});

Deno.test("inspectCertificate() falls back to the subject CN only without subjectAltName", async (t) => {
  await using dir = await makeTempDir("edgemux-certs-");
  await t.step("no extension: the CN is the name", async () => {
    const files = await makeCert(dir.path, "cn", [], { cn: "CN-Only.Example.Test", san: [] });
    const cert = ok(await inspectFiles(files));
    assert.deepEqual(cert.names, ["cn-only.example.test"]);
  });
  await t.step("with the extension: the CN is ignored", async () => {
    const files = await makeCert(dir.path, "san", ["san.example.test"], { cn: "cn.example.test" });
    const cert = ok(await inspectFiles(files));
    assert.deepEqual(cert.names, ["san.example.test"]);
  });
  await t.step("an IP-only subjectAltName leaves no name to select it by", async () => {
    const files = await makeCert(dir.path, "ip", [], {
      cn: "ip.example.test",
      san: ["IP:10.0.0.1"],
    });
    const p = problem(await inspectFiles(files));
    assert.match(p.problem, /names no DNS server name/);
    assert.match(p.fix, /subjectAltName=DNS:/);
  });
});

Deno.test("inspectCertificate() lowercases names and drops a trailing dot", async () => {
  await using dir = await makeTempDir("edgemux-certs-");
  const files = await makeCert(dir.path, "upper", [], {
    cn: "x",
    san: ["DNS:Upper.Example.Test.", "DNS:*.Upper.Example.Test"],
  });
  const cert = ok(await inspectFiles(files));
  assert.deepEqual(cert.names, ["upper.example.test", "*.upper.example.test"]);
});

Deno.test("inspectCertificate() accepts SEC1 EC and PKCS#1 RSA keys", async () => {
  await using dir = await makeTempDir("edgemux-certs-");
  for (const key of ["ec-sec1", "rsa-pkcs1"] as const) {
    const files = await makeCert(dir.path, key, [`${key}.example.test`], { key });
    const keyText = await Deno.readTextFile(files.key);
    assert.match(keyText, key === "ec-sec1" ? /BEGIN EC PRIVATE KEY/ : /BEGIN RSA PRIVATE KEY/);
    const cert = ok(inspectCertificate(await Deno.readTextFile(files.cert), keyText, files));
    assert.equal(cert.keyPem, keyText);
  }
});

Deno.test("inspectCertificate() marks a certificate openssl req -x509 made as a self-signed CA", async () => {
  await using dir = await makeTempDir("edgemux-certs-");
  const files = await makeCert(dir.path, "ca", ["selfca.example.test"], { ca: true });
  const cert = ok(await inspectFiles(files));
  assert.equal(cert.ca, true);
  assert.equal(cert.selfSigned, true);
  assert.deepEqual(cert.names, ["selfca.example.test"]);
});

Deno.test("inspectCertificate() refuses an encrypted key and says how to decrypt it", async () => {
  await using dir = await makeTempDir("edgemux-certs-");
  const encrypted = `${dir.path}/enc.key`;
  await openssl([
    "pkcs8",
    "-topk8",
    "-in",
    keyPath("vault"),
    "-passout",
    "pass:x",
    "-out",
    encrypted,
  ]);
  const p = problem(inspectCertificate(readCert("vault"), await Deno.readTextFile(encrypted), {
    cert: certPath("vault"),
    key: encrypted,
  }));
  assert.match(p.problem, /the private key in ".*enc\.key" is encrypted/);
  assert.match(p.fix, /openssl pkey -in/);
});

Deno.test("inspectCertificate() says what is missing when a file holds no certificate", () => {
  const origin = { cert: "/x/only.key", key: "/x/only.key" };
  assert.match(
    problem(inspectCertificate(readKey("vault"), readKey("vault"), origin)).problem,
    /"\/x\/only\.key" holds a private key but no certificate/,
  );
  const empty = problem(inspectCertificate("nothing here\n", readKey("vault"), origin));
  assert.match(empty.problem, /holds no PEM certificate/);
  assert.match(empty.fix, /-inform der/);
});

Deno.test("inspectCertificate() says what is missing when a file holds no key", () => {
  const both = problem(
    inspectCertificate(readCert("vault"), readCert("vault"), { cert: "/a.pem", key: "/a.pem" }),
  );
  assert.match(both.problem, /"\/a\.pem" holds a certificate but no private key/);
  const separate = problem(
    inspectCertificate(readCert("vault"), "", { cert: "/a.pem", key: "/a.key" }),
  );
  assert.match(separate.problem, /"\/a\.key" holds no PEM private key/);
});

Deno.test("inspectCertificate() refuses a key file with two keys", () => {
  const p = problem(inspectCertificate(readCert("vault"), readKey("vault") + readKey("git"), {
    cert: "/v.pem",
    key: "/v.key",
  }));
  assert.match(p.problem, /"\/v\.key" holds 2 private keys/);
});

Deno.test("inspectCertificate() reports broken PEM and unparsable certificates with the file", () => {
  const cut = readCert("vault").split("\n").slice(0, 4).join("\n");
  const broken = problem(inspectCertificate(cut, readKey("vault"), { cert: "/c.pem", key: "/k" }));
  assert.match(broken.problem, /"\/c\.pem" is not a valid PEM file: .*no END line/);

  const junk = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
  const bad = problem(inspectCertificate(junk, readKey("vault"), { cert: "/c.pem", key: "/k" }));
  assert.match(bad.problem, /certificate 1 of 1 in "\/c\.pem" cannot be parsed as X\.509/);

  const badKey = "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n";
  const key = problem(inspectCertificate(readCert("vault"), badKey, { cert: "/c", key: "/k.key" }));
  assert.match(key.problem, /the private key in "\/k\.key" cannot be read/);
});
