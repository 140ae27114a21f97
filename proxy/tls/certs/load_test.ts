import assert from "node:assert/strict";
import type { CertificatesConfig } from "../../../config/types.ts";
import type { ConfigIssue } from "../../../config/errors.ts";
import { loadCertificates } from "./load.ts";
import { CertStore } from "./store.ts";
import { makeCert } from "./_testing.ts";
import { serveBySni } from "./_tls_testing.ts";
import { makeTempDir } from "../../../tests/_helpers/tmp.ts";
import { certPath, keyPath, readCert, readKey } from "../../../tests/_helpers/certs.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

function config(partial: Partial<CertificatesConfig>): CertificatesConfig {
  return {
    directories: [],
    files: [],
    defaultName: null,
    development: null,
    watchInterval: 0,
    acme: null,
    ...partial,
  };
}

function only(issues: ConfigIssue[], severity: "error" | "warning"): ConfigIssue[] {
  return issues.filter((i) => i.severity === severity);
}

function namesOf(result: { certs: { names: string[] }[] }): string[][] {
  return result.certs.map((c) => c.names);
}

Deno.test("loadCertificates() loads NAME.pem holding both a chain and its key", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  await Deno.writeTextFile(`${dir.path}/vault.pem`, readCert("vault") + readKey("vault"));
  const result = await loadCertificates(config({ directories: [dir.path] }));
  assert.deepEqual(result.issues, []);
  assert.deepEqual(namesOf(result), [["vault.example.test"]]);
  assert.deepEqual(result.certs[0].origin, {
    cert: `${dir.path}/vault.pem`,
    key: `${dir.path}/vault.pem`,
  });
  assert.ok(result.watched.includes(dir.path));
  assert.ok(result.watched.includes(`${dir.path}/vault.pem`));
});

Deno.test("loadCertificates() pairs NAME.crt, or a NAME.pem without a key, with NAME.key", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  await Deno.copyFile(certPath("git"), `${dir.path}/git.crt`);
  await Deno.copyFile(keyPath("git"), `${dir.path}/git.key`);
  await Deno.copyFile(certPath("prometheus"), `${dir.path}/prometheus.PEM`);
  await Deno.copyFile(keyPath("prometheus"), `${dir.path}/prometheus.key`);
  const result = await loadCertificates(config({ directories: [dir.path] }));
  assert.deepEqual(result.issues, []);
  assert.deepEqual(namesOf(result), [["git.example.test"], ["prometheus.example.test"]]);
  assert.deepEqual(result.certs[0].origin, {
    cert: `${dir.path}/git.crt`,
    key: `${dir.path}/git.key`,
  });
});

Deno.test("loadCertificates() reads certbot's live/DOMAIN symlinks and skips cert.pem and chain.pem", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  const archive = `${dir.path}/archive/example.test`;
  const live = `${dir.path}/live`;
  await Deno.mkdir(archive, { recursive: true });
  await Deno.mkdir(`${live}/example.test`, { recursive: true });
  await Deno.writeTextFile(`${archive}/cert1.pem`, readCert("edge-wildcard"));
  await Deno.writeTextFile(`${archive}/chain1.pem`, readCert("ca"));
  await Deno.writeTextFile(`${archive}/fullchain1.pem`, readCert("edge-wildcard") + readCert("ca"));
  await Deno.writeTextFile(`${archive}/privkey1.pem`, readKey("edge-wildcard"));
  for (const f of ["cert", "chain", "fullchain", "privkey"]) {
    await Deno.symlink(`../../archive/example.test/${f}1.pem`, `${live}/example.test/${f}.pem`);
  }
  await Deno.writeTextFile(`${live}/README`, "This directory contains your keys.\n");

  await Deno.mkdir(`${live}/.hidden`);
  await Deno.writeTextFile(`${live}/.hidden/fullchain.pem`, readCert("vault"));

  const result = await loadCertificates(config({ directories: [live] }));
  assert.deepEqual(result.issues, []);
  assert.deepEqual(namesOf(result), [["*.example.test", "example.test"]]);
  assert.equal(result.certs[0].certPem, readCert("edge-wildcard") + readCert("ca"));
  assert.deepEqual(result.certs[0].origin, {
    cert: `${live}/example.test/fullchain.pem`,
    key: `${live}/example.test/privkey.pem`,
  });
  assert.ok(result.watched.includes(`${live}/example.test`));
  assert.ok(result.watched.includes(`${live}/example.test/fullchain.pem`));

  // Pointing at live/DOMAIN itself works the same way.
  const direct = await loadCertificates(config({ directories: [`${live}/example.test`] }));
  assert.deepEqual(direct.issues, []);
  assert.deepEqual(namesOf(direct), [["*.example.test", "example.test"]]);
});

Deno.test("loadCertificates() ignores hidden files, stray keys and other files silently", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  await Deno.writeTextFile(`${dir.path}/.old.pem`, readCert("git"));
  await Deno.copyFile(keyPath("git"), `${dir.path}/lonely.key`);
  await Deno.writeTextFile(`${dir.path}/notes.txt`, readCert("git"));
  await Deno.writeTextFile(
    `${dir.path}/dhparam.pem`,
    "-----BEGIN DH PARAMETERS-----\nAAEC\n-----END DH PARAMETERS-----\n",
  );
  await Deno.writeTextFile(`${dir.path}/vault.pem`, readCert("vault") + readKey("vault"));
  const result = await loadCertificates(config({ directories: [dir.path] }));
  assert.deepEqual(result.issues, []);
  assert.deepEqual(namesOf(result), [["vault.example.test"]]);
});

Deno.test("loadCertificates() warns about a certificate file in a directory that has no key", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  await Deno.copyFile(certPath("ca"), `${dir.path}/ca.pem`);
  await Deno.copyFile(certPath("git"), `${dir.path}/git.crt`);
  await Deno.mkdir(`${dir.path}/half`);
  await Deno.writeTextFile(`${dir.path}/half/fullchain.pem`, readCert("vault"));
  await Deno.writeTextFile(`${dir.path}/vault.pem`, readCert("vault") + readKey("vault"));
  const result = await loadCertificates(config({ directories: ["/nonexistent-x", dir.path] }));
  assert.deepEqual(namesOf(result), [["vault.example.test"]]);
  const warnings = only(result.issues, "warning");
  assert.deepEqual(warnings.map((w) => w.path), [
    "certificates.directory[1]",
    "certificates.directory[1]",
    "certificates.directory[1]",
  ]);
  assert.match(
    warnings[0].message,
    /".*\/half\/fullchain\.pem" holds a certificate but no private key .*privkey\.pem/,
  );
  assert.match(
    warnings[1].message,
    /".*\/ca\.pem" holds a certificate but no private key .*ca\.key".*ignored/,
  );
  assert.match(warnings[2].message, /".*\/git\.crt" holds a certificate but no private key/);
  assert.ok(warnings.every((w) => w.position === null));
});

Deno.test("loadCertificates() reports a missing or unreadable directory as an error", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  const file = `${dir.path}/file`;
  await Deno.writeTextFile(file, "x");
  const result = await loadCertificates(config({ directories: [`${dir.path}/missing`, file] }));
  assert.deepEqual(result.certs, []);
  assert.deepEqual(result.issues.map((i) => [i.severity, i.path]), [
    ["error", "certificates.directory[0]"],
    ["error", "certificates.directory[1]"],
  ]);
  assert.match(result.issues[0].message, /certificate directory ".*\/missing" does not exist/);
  assert.match(result.issues[1].message, /certificate directory ".*\/file" is not a directory/);
  // A directory is not a file: the fix says to make the directory.
  assert.match(result.issues[0].fix, /create the directory \(mkdir -p .*\/missing/);
  assert.doesNotMatch(result.issues[0].fix, /file/);
  assert.match(result.issues[1].fix, /name a directory under `directory:`/);
});

Deno.test("loadCertificates() warns about a directory with no certificates at all", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  const result = await loadCertificates(config({ directories: [dir.path] }));
  assert.deepEqual(result.issues.map((i) => [i.severity, i.path]), [
    ["warning", "certificates.directory[0]"],
  ]);
  assert.match(result.issues[0].message, /holds no certificates/);
});

Deno.test("loadCertificates() reports a key that does not match its certificate as an error", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  await Deno.copyFile(certPath("git"), `${dir.path}/git.crt`);
  await Deno.copyFile(keyPath("vault"), `${dir.path}/git.key`);
  const result = await loadCertificates(config({ directories: [dir.path] }));
  assert.deepEqual(result.certs, []);
  assert.equal(result.issues.length, 1);
  assert.equal(result.issues[0].severity, "error");
  assert.equal(result.issues[0].path, "certificates.directory[0]");
  assert.match(
    result.issues[0].message,
    /".*\/git\.key" does not belong to the certificate in ".*\/git\.crt"/,
  );
});

Deno.test("loadCertificates() loads explicit files, with the key in the chain file or apart", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  const both = `${dir.path}/both.pem`;
  await Deno.writeTextFile(both, readCert("vault") + readKey("vault"));
  const result = await loadCertificates(config({
    files: [
      { cert: both, key: both },
      { cert: certPath("git"), key: keyPath("git") },
    ],
  }));
  assert.deepEqual(result.issues, []);
  assert.deepEqual(namesOf(result), [["vault.example.test"], ["git.example.test"]]);
  assert.deepEqual(result.watched.sort(), [both, certPath("git"), keyPath("git")].sort());
});

Deno.test("loadCertificates() reports an explicit file that is missing or a directory", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  const result = await loadCertificates(config({
    files: [
      { cert: `${dir.path}/nope.pem`, key: keyPath("git") },
      { cert: certPath("git"), key: dir.path },
      { cert: certPath("vault"), key: keyPath("vault") },
    ],
  }));
  assert.deepEqual(namesOf(result), [["vault.example.test"]]);
  assert.deepEqual(result.issues.map((i) => [i.severity, i.path]), [
    ["error", "certificates.files[0]"],
    ["error", "certificates.files[1]"],
  ]);
  assert.match(result.issues[0].message, /".*\/nope\.pem" does not exist/);
  assert.match(result.issues[1].message, /".*" is a directory, not a certificate or key file/);
});

Deno.test("loadCertificates() reports a dangling symlink in a directory as an error", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  await Deno.symlink(`${dir.path}/gone.pem`, `${dir.path}/site.pem`);
  const result = await loadCertificates(config({ directories: [dir.path] }));
  assert.deepEqual(result.issues.map((i) => i.severity), ["error"]);
  assert.match(
    result.issues[0].message,
    /".*\/site\.pem" does not exist \(or is a dangling symlink\)/,
  );
});

Deno.test("loadCertificates() warns with the date and days left when a certificate expires soon", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  const files = await makeCert(dir.path, "soon", ["soon.example.test"], { days: 5 });
  const result = await loadCertificates(config({ directories: [dir.path] }));
  assert.deepEqual(namesOf(result), [["soon.example.test"]]);
  assert.deepEqual(result.issues.map((i) => [i.severity, i.path]), [
    ["warning", "certificates.directory[0]"],
  ]);
  const date = result.certs[0].notAfter.toISOString().slice(0, 10);
  assert.match(
    result.issues[0].message,
    new RegExp(
      `"${files.cert}" \\(soon\\.example\\.test\\) expires on ${date} \\d\\d:\\d\\d UTC \\(4 days left\\)`,
    ),
  );
  assert.match(result.issues[0].fix, /renew/);
});

Deno.test("loadCertificates() still loads an expired certificate and warns when it expired", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  await makeCert(dir.path, "soon", ["soon.example.test"], { days: 5 });
  const later = new Date(Date.now() + 12 * DAY_MS);
  const result = await loadCertificates(config({ directories: [dir.path] }), { now: later });
  assert.deepEqual(namesOf(result), [["soon.example.test"]]);
  assert.equal(result.issues.length, 1);
  assert.equal(result.issues[0].severity, "warning");
  const date = result.certs[0].notAfter.toISOString().slice(0, 10);
  assert.match(
    result.issues[0].message,
    new RegExp(`expired on ${date} .*\\(7 days ago\\); it is still served`),
  );
});

Deno.test("loadCertificates() says nothing about an old certificate that a renewal replaced", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  await makeCert(dir.path, "old", ["renew.example.test"], { days: 3 });
  await makeCert(dir.path, "new", ["renew.example.test"], { days: 90 });
  const result = await loadCertificates(config({ directories: [dir.path] }));
  assert.equal(result.certs.length, 2);
  assert.deepEqual(result.issues, []);
});

Deno.test("loadCertificates() warns about a certificate that is not valid yet", async () => {
  const result = await loadCertificates(
    config({ files: [{ cert: certPath("vault"), key: keyPath("vault") }] }),
    { now: new Date("2020-01-01T00:00:00Z") },
  );
  assert.equal(result.certs.length, 1);
  assert.equal(result.issues.length, 1);
  assert.match(result.issues[0].message, /is not valid until 2026-11-/);
});

Deno.test("loadCertificates() loads one copy of a certificate found twice and warns", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  await Deno.writeTextFile(`${dir.path}/vault.pem`, readCert("vault") + readKey("vault"));
  const result = await loadCertificates(config({
    directories: [dir.path],
    files: [{ cert: certPath("vault"), key: keyPath("vault") }],
  }));
  assert.equal(result.certs.length, 1);
  assert.deepEqual(result.issues.map((i) => [i.severity, i.path]), [
    ["warning", "certificates.files[0]"],
  ]);
  assert.match(
    result.issues[0].message,
    /is the same certificate as ".*\/vault\.pem" .*the copy is ignored/,
  );
});

Deno.test("loadCertificates() warns about a CA certificate used as a server certificate", async () => {
  await using dir = await makeTempDir("edgemux-load-");
  await makeCert(dir.path, "selfca", ["selfca.example.test"], { ca: true });
  const result = await loadCertificates(config({ directories: [dir.path] }));
  assert.equal(result.certs.length, 1);
  assert.equal(result.issues.length, 1);
  assert.match(result.issues[0].message, /is a CA certificate \(basicConstraints CA:TRUE\)/);
  assert.match(result.issues[0].fix, /CA:FALSE/);
});

Deno.test("loadCertificates() warns when no certificate covers the default name", async () => {
  const files = [{ cert: certPath("vault"), key: keyPath("vault") }];
  const missing = await loadCertificates(config({ files, defaultName: "default.example.test" }));
  assert.deepEqual(missing.issues.map((i) => [i.severity, i.path]), [
    ["warning", "certificates.default"],
  ]);
  const covered = await loadCertificates(config({ files, defaultName: "vault.example.test" }));
  assert.deepEqual(covered.issues, []);
  // Development certificates will cover it.
  const dev = await loadCertificates(
    config({ files, defaultName: "default.example.test", development: { directory: "/x" } }),
  );
  assert.deepEqual(dev.issues, []);
});

Deno.test({
  name: "certificates loaded into a CertStore are served by Deno.listenTls's SNI resolver",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn(t) {
    const names = ["vault", "git", "edge-wildcard", "default-backend"] as const;
    const { certs, issues } = await loadCertificates(config({
      files: names.map((n) => ({ cert: certPath(n), key: keyPath(n) })),
    }));
    assert.deepEqual(issues, []);
    const store = new CertStore(certs, { defaultName: "default.example.test" });
    using server = serveBySni((sni) => store.resolve(sni));
    // Each server name is sent in SNI and checked against the certificate presented.
    const presented = (serverName: string) => server.handshake(serverName, [readCert("ca")]);
    for (const name of ["vault.example.test", "git.example.test", "prometheus.example.test"]) {
      // prometheus.example.test is covered by the *.example.test wildcard.
      await t.step(`a verified handshake for ${name}`, async () => {
        assert.equal(await presented(name), "ok");
      });
    }
    await t.step("an unknown name gets the default certificate", async () => {
      // The default certificate does not name a.b.example.test, so verification fails on the
      // name, which proves a certificate was presented and it was not a wildcard match.
      assert.match(await presented("a.b.example.test"), /not valid for name/i);
    });
  },
});
