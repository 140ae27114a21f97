import assert from "node:assert/strict";
import fc from "fast-check";
import type { InspectedCert } from "./certificate.ts";
import { CertStore } from "./store.ts";
import { fakeCert, fakeNow } from "./_testing.ts";

const now = fakeNow();
const clock = () => now.getTime();

Deno.test("CertStore.select() finds a certificate by an exact name, in any case or with a dot", () => {
  const vault = fakeCert(["vault.example.test"]);
  const store = new CertStore([vault], { defaultName: null, now: clock });
  assert.equal(store.select("vault.example.test"), vault);
  assert.equal(store.select("VAULT.Example.TEST"), vault);
  assert.equal(store.select("vault.example.test."), vault);
  assert.equal(store.select("vault.example.test.."), null);
  assert.equal(store.select("ault.example.test"), null);
  assert.equal(store.select("vault.example.tes"), null);
});

Deno.test("CertStore.select() matches a wildcard to exactly one more label", () => {
  const wildcard = fakeCert(["*.example.test"]);
  const store = new CertStore([wildcard], { defaultName: null, now: clock });
  assert.equal(store.select("a.example.test"), wildcard);
  assert.equal(store.select("A-B.Example.Test."), wildcard);
  assert.equal(store.select("example.test"), null, "the apex is not covered");
  assert.equal(store.select("a.b.example.test"), null, "two extra labels are not covered");
  assert.equal(store.select(".example.test"), null, "an empty label is not covered");
  assert.equal(store.select("aexample.test"), null);
  assert.equal(store.select("*.example.test"), wildcard, "the literal wildcard is one label");
});

Deno.test("CertStore.select() covers the apex and one label with *.example.test plus example.test", () => {
  const edge = fakeCert(["*.example.test", "example.test"]);
  const store = new CertStore([edge], { defaultName: null, now: clock });
  assert.equal(store.select("example.test"), edge);
  assert.equal(store.select("git.example.test"), edge);
  assert.equal(store.select("a.git.example.test"), null);
});

Deno.test("CertStore.select() ignores partial wildcards such as f*.example.test", () => {
  const partial = fakeCert(["f*.example.test"]);
  const store = new CertStore([partial], { defaultName: null, now: clock });
  assert.equal(store.select("foo.example.test"), null);
  assert.equal(store.select("f*.example.test"), null);
});

Deno.test("CertStore.select() prefers an exact name over a wildcard", () => {
  const wildcard = fakeCert(["*.example.test"], [-30, 300]);
  const git = fakeCert(["git.example.test"], [-30, 60]);
  for (const order of [[wildcard, git], [git, wildcard]]) {
    const store = new CertStore(order, { defaultName: null, now: clock });
    assert.equal(store.select("git.example.test"), git);
    assert.equal(store.select("vault.example.test"), wildcard);
  }
});

Deno.test("CertStore.select() prefers a renewed certificate (later notAfter) over the old one", () => {
  const old = fakeCert(["git.example.test"], [-80, 10], "old");
  const renewed = fakeCert(["git.example.test"], [-1, 89], "renewed");
  for (const order of [[old, renewed], [renewed, old]]) {
    const store = new CertStore(order, { defaultName: null, now: clock });
    assert.equal(store.select("git.example.test"), renewed);
  }
});

Deno.test("CertStore.select() prefers any valid certificate over an expired or future one", () => {
  const expiredExact = fakeCert(["git.example.test"], [-100, -1], "expired");
  const futureExact = fakeCert(["git.example.test"], [1, 400], "future");
  const wildcard = fakeCert(["*.example.test"], [-10, 50], "wildcard");
  const store = new CertStore([expiredExact, futureExact, wildcard], {
    defaultName: null,
    now: clock,
  });
  assert.equal(store.select("git.example.test"), wildcard);
  // When nothing is valid, the latest notAfter is the least bad.
  const none = new CertStore([expiredExact, futureExact], { defaultName: null, now: clock });
  assert.equal(none.select("git.example.test"), futureExact);
  // The time of the question decides.
  assert.equal(none.select("git.example.test", fakeNow(-50)), expiredExact);
});

Deno.test("CertStore.select() answers no or an unknown name with the default certificate", () => {
  const fallback = fakeCert(["default.example.test"]);
  const vault = fakeCert(["vault.example.test"]);
  const store = new CertStore([vault, fallback], {
    defaultName: "Default.Example.Test.",
    now: clock,
  });
  assert.equal(store.defaultName, "default.example.test");
  assert.equal(store.select(null), fallback);
  assert.equal(store.select(""), fallback);
  assert.equal(store.select("unknown.example.test"), fallback);
  assert.equal(store.select("vault.example.test"), vault);
});

Deno.test("CertStore.select() answers null without a default, or with one nothing covers", () => {
  const vault = fakeCert(["vault.example.test"]);
  assert.equal(new CertStore([vault], { defaultName: null, now: clock }).select(null), null);
  assert.equal(new CertStore([vault], { defaultName: null, now: clock }).select("x.test"), null);
  const orphan = new CertStore([vault], { defaultName: "nobody.example.test", now: clock });
  assert.equal(orphan.select("x.test"), null);
  assert.equal(new CertStore([], { defaultName: "x.test" }).select("x.test"), null);
});

Deno.test("CertStore.select() finds the default name through a wildcard", () => {
  const wildcard = fakeCert(["*.example.test"]);
  const store = new CertStore([wildcard], { defaultName: "www.example.test", now: clock });
  assert.equal(store.select(null), wildcard);
});

Deno.test("CertStore.covers() never falls back to the default", () => {
  const fallback = fakeCert(["default.example.test"]);
  const store = new CertStore([fallback], { defaultName: "default.example.test", now: clock });
  assert.equal(store.covers("default.example.test"), fallback);
  assert.equal(store.covers("other.example.test"), null);
});

Deno.test("CertStore.certs keeps the given order and cannot be changed", () => {
  const a = fakeCert(["a.test"]);
  const b = fakeCert(["b.test"]);
  const given = [a, b];
  const store = new CertStore(given, { defaultName: null });
  given.pop();
  assert.deepEqual(store.certs, [a, b]);
  assert.ok(Object.isFrozen(store.certs));
});

Deno.test("CertStore.expiringWithin() lists certificates in use that expire soon, soonest first", () => {
  const soon = fakeCert(["soon.test"], [-80, 5], "soon");
  const expired = fakeCert(["gone.test"], [-80, -2], "expired");
  const later = fakeCert(["later.test"], [-10, 80], "later");
  const replaced = fakeCert(["renewed.test"], [-80, 3], "replaced");
  const renewal = fakeCert(["renewed.test"], [-1, 89], "renewal");
  const wildcardSoon = fakeCert(["*.apps.test"], [-80, 7], "wildcard");
  const store = new CertStore([soon, expired, later, replaced, renewal, wildcardSoon], {
    defaultName: null,
  });
  const day = 24 * 60 * 60 * 1000;
  assert.deepEqual(
    store.expiringWithin(14 * day, now).map((c) => c.fingerprint),
    ["expired", "soon", "wildcard"],
  );
  assert.deepEqual(store.expiringWithin(0, now).map((c) => c.fingerprint), ["expired"]);
});

/** The specification, written as plainly as possible: every certificate, every name. */
function referenceSelect(
  certs: InspectedCert[],
  defaultName: string | null,
  sni: string | null,
  at: number,
): InspectedCert | null {
  const norm = (n: string) => n.toLowerCase().replace(/\.$/, "");
  const coverage = (cert: InspectedCert, host: string): "exact" | "wildcard" | null => {
    let found: "exact" | "wildcard" | null = null;
    for (const name of cert.names.map(norm)) {
      if (name === host) return "exact";
      if (name.startsWith("*.")) {
        const labels = host.split(".");
        if (labels.length >= 2 && labels[0] !== "" && labels.slice(1).join(".") === name.slice(2)) {
          found = "wildcard";
        }
      }
    }
    return found;
  };
  const pick = (host: string): InspectedCert | null => {
    let chosen: InspectedCert | null = null;
    let chosenKey: [number, number, number] = [-1, -1, -1];
    for (const cert of certs) {
      const how = coverage(cert, host);
      if (how === null) continue;
      const valid = cert.notBefore.getTime() <= at && at <= cert.notAfter.getTime();
      const key: [number, number, number] = [
        valid ? 1 : 0,
        how === "exact" ? 1 : 0,
        cert.notAfter.getTime(),
      ];
      const better = key[0] !== chosenKey[0]
        ? key[0] > chosenKey[0]
        : key[1] !== chosenKey[1]
        ? key[1] > chosenKey[1]
        : key[2] > chosenKey[2];
      if (better) {
        chosen = cert;
        chosenKey = key;
      }
    }
    return chosen;
  };
  const fromSni = sni ? pick(norm(sni)) : null;
  return fromSni ?? (defaultName === null ? null : pick(norm(defaultName)));
}

Deno.test("CertStore.select() agrees with a plain reference matcher on random tables", () => {
  const label = fc.constantFrom("a", "b", "www", "git", "x-1");
  const suffix = fc.constantFrom("example.test", "other.test", "test", "a.example.test");
  const host = fc.tuple(fc.array(label, { maxLength: 2 }), suffix).map(([ls, s]) =>
    [...ls, s].join(".")
  );
  const certName = fc.oneof(host, host.map((h) => `*.${h}`), host.map((h) => h.toUpperCase()));
  const cert = fc.record({
    names: fc.array(certName, { minLength: 1, maxLength: 3 }),
    from: fc.integer({ min: -50, max: 10 }),
    length: fc.integer({ min: 1, max: 100 }),
  });
  fc.assert(
    fc.property(
      fc.array(cert, { maxLength: 6 }),
      fc.option(host, { nil: null }),
      fc.option(fc.oneof(host, host.map((h) => `${h.toUpperCase()}.`)), { nil: null }),
      (specs, defaultName, sni) => {
        const certs = specs.map((s, i) => fakeCert(s.names, [s.from, s.from + s.length], `c${i}`));
        const store = new CertStore(certs, { defaultName, now: clock });
        assert.equal(
          store.select(sni)?.fingerprint ?? null,
          referenceSelect(certs, defaultName, sni, now.getTime())?.fingerprint ?? null,
        );
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("CertStore.resolve() answers the SNI resolver with PEM strings, or throws", () => {
  const vault = fakeCert(["vault.example.test"]);
  const store = new CertStore([vault], { defaultName: null, now: clock });
  assert.deepEqual(store.resolve("vault.example.test"), { cert: vault.certPem, key: vault.keyPem });
  assert.throws(() => store.resolve(""), /no certificate for server name "" and no default/);
  const withDefault = new CertStore([vault], { defaultName: "vault.example.test", now: clock });
  assert.equal(withDefault.resolve("").cert, vault.certPem);
});
