import assert from "node:assert/strict";
import { ConfigError } from "../config/errors.ts";
import { parseConfig } from "../config/parse.ts";
import { prepareConfig } from "./prepare.ts";

const FILE = "/etc/edgemux/config.yaml";

async function prepared(routes: string, opts: { challenges?: string; redirect?: boolean } = {}) {
  const state = await Deno.makeTempDir({ prefix: "edgemux-prepare-acme-" });
  const text = `version: 1
certificates:
  acme:
    email: admin@example.test
    state_directory: ${state}
    challenges: ${opts.challenges ?? "[http-01, tls-alpn-01]"}
backends:
  b: { servers: ["127.0.0.1:9"] }
listeners:
${
    opts.redirect === false ? "" : `  http:
    bind: "127.0.0.1:0"
    routes:
      - redirect: https
`
  }  https:
    bind: "127.0.0.1:0"
    routes:
${routes}`;
  const parsed = parseConfig(text, FILE);
  try {
    return { state, result: await prepareConfig(parsed.config, { warnings: parsed.warnings }) };
  } catch (e) {
    return { state, error: e as ConfigError };
  } finally {
    // The development stand-in certificate is written there; nothing else is needed after.
    await Deno.remove(state, { recursive: true });
  }
}

Deno.test("prepareConfig() orders for exact terminated names only, never for passthrough names", async () => {
  const { result } = await prepared(
    `      - { name: vault, sni: vault.example.test, passthrough: b }
      - { name: app, sni: [app.example.test, www.example.test], edge: b }
      - { name: db, sni: db.example.test, edge: { tcp: b } }
`,
  );
  assert.ok(result);
  assert.deepEqual(result.acmeNames, ["app.example.test", "db.example.test", "www.example.test"]);
  // Until the first certificate arrives, the development certificate stands in.
  assert.deepEqual(result.devNames.toSorted(), result.acmeNames);
  assert.ok(result.devCert !== null);
});

Deno.test("prepareConfig() warns that a wildcard name needs DNS-01, naming the route", async () => {
  const { result, error } = await prepared(`      - { name: app, sni: app.example.test, edge: b }
      - { name: tenants, sni: "*.tenants.example.test", edge: b }
`);
  // Without development certificates, the wildcard has no certificate at all: an error too.
  assert.equal(result, undefined);
  const issues = error!.issues;
  const wildcard = issues.find((i) => i.message.includes("DNS-01"));
  assert.ok(wildcard, JSON.stringify(issues));
  assert.equal(wildcard.severity, "warning");
  assert.ok(wildcard.message.includes('route "tenants"'), wildcard.message);
  assert.ok(wildcard.message.includes("*.tenants.example.test"), wildcard.message);
  assert.equal(wildcard.path, "listeners.https.routes[1].sni");
});

Deno.test("prepareConfig() refuses a name no allowed challenge can reach", async () => {
  const { error } = await prepared(
    `      - { name: app, sni: app.example.test, edge: b }
`,
    { challenges: "[http-01]", redirect: false },
  );
  assert.ok(error instanceof ConfigError);
  const issue = error.issues.find((i) => i.message.includes("can never validate"));
  assert.ok(issue, JSON.stringify(error.issues));
  assert.equal(issue.severity, "error");
  assert.ok(issue.message.includes("app.example.test") && issue.message.includes('"app"'));
  assert.ok(issue.fix.includes("tls-alpn-01"));
});

Deno.test("prepareConfig() warns when neither port 80 nor 443 can take the validation", async () => {
  const { result } = await prepared(`      - { name: app, sni: app.example.test, edge: b }
`);
  const warning = result!.warnings.find((w) => w.message.includes("port 80"));
  assert.ok(warning, JSON.stringify(result!.warnings));
  assert.ok(warning.message.includes("app.example.test"));
});

Deno.test("the README's and docs' shortest ACME configs check clean", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const docs = await Deno.readTextFile(new URL("../docs/config.md", import.meta.url));
  const blocks = [readme, docs].map((text) =>
    [...text.matchAll(/^```yaml\n([\s\S]*?)^```/gm)].map((m) => m[1]).find((b) =>
      b.includes("acme:") && b.includes("version: 1")
    )
  );
  for (const block of blocks) {
    assert.ok(block, "no complete acme example found");
    const parsed = parseConfig(block, FILE);
    const result = await prepareConfig(parsed.config, {
      warnings: parsed.warnings,
      writeDevCert: false,
    });
    assert.deepEqual(result.acmeNames.length, 1);
    // The only warning: the name will be ordered, with a stand-in until then.
    assert.deepEqual(
      result.warnings.map((w) => w.path),
      ["certificates.acme"],
      JSON.stringify(result.warnings),
    );
    assert.match(result.warnings[0].message, /will be ordered from https:\/\/acme-v02/);
  }
});
