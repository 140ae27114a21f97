import assert, { equal } from "node:assert/strict";
import { parseConfig } from "../config/parse.ts";
import { explainConnection, type ExplainQuery, inferProtocol } from "./explain.ts";

const CONFIG = `version: 1
certificates: { development: true }
backends:
  admin: { servers: ["127.0.0.1:9001"] }
  app: { servers: ["127.0.0.1:9002"] }
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - sni: a.example.test
        edge:
          http:
            - { path_prefix: /admin, backend: admin }
            - { backend: app }
`;

function explain(path: string, mode?: "strict" | "pass"): string {
  const listener = parseConfig(CONFIG).config.listeners[0];
  const q: ExplainQuery = {
    protocol: "tls",
    sni: "a.example.test",
    alpn: [],
    host: "a.example.test",
    path,
    pathNormalization: mode,
  };
  return explainConnection(listener, q).join("\n");
}

Deno.test("explain routes on the normalised path, as requests are", () => {
  assert.match(explain("//admin/./x"), /sent to backend "admin" as \/admin\/x/);
  // Near miss: with pass, repeated slashes are kept, and "//admin" is not under "/admin".
  assert.match(explain("//admin", "pass"), /sent to backend "app" as \/\/admin/);
});

Deno.test("explain says why a path is refused, and under which mode", () => {
  assert.match(
    explain("/public%2f..%2fadmin"),
    /refused with 400 \(its path has an encoded slash \(%2F\); http.path_normalization is strict\)/,
  );
  assert.match(explain("/public%2f..%2fadmin", "pass"), /sent to backend "app"/);
});

/** Each listener parsed from a config of its own (redirects need a single https listener). */
function listeners(routes: Record<string, string>) {
  return new Map(
    Object.entries(routes).map(([name, r]) => {
      const yaml = `version: 1
certificates: { development: true }
backends:
  b: { servers: ["127.0.0.1:9"] }
listeners:
  ${name}:
    bind: "127.0.0.1:1000"
    routes:
${r}`;
      return [name, parseConfig(yaml).config.listeners[0]];
    }),
  );
}

Deno.test("inferProtocol() takes the protocol a listener's routes are written for", () => {
  const ls = listeners({
    redirect: "      - redirect: https\n",
    httpOnly: "      - { protocol: http, forward: b }\n",
    sni: "      - { sni: a.example.test, passthrough: b }\n",
    edge: "      - { sni: a.example.test, edge: b }\n",
    mixed:
      "      - { protocol: http, redirect: https }\n      - { sni: a.example.test, edge: b }\n",
    sshFirst:
      "      - { protocol: [ssh, silent], forward: b }\n      - { protocol: http, redirect: https }\n",
    plain: "      - forward: b\n",
    alpn: "      - { alpn: [h2], passthrough: b }\n",
  });
  const expected: Record<string, string> = {
    redirect: "http",
    httpOnly: "http",
    sni: "tls",
    edge: "tls",
    mixed: "tls",
    sshFirst: "ssh",
    plain: "unknown",
    alpn: "tls",
  };
  for (const [name, protocol] of Object.entries(expected)) {
    equal(inferProtocol(ls.get(name)!), protocol, name);
  }
});

Deno.test("explaining a plain-HTTP listener with its inferred protocol finds its redirect", () => {
  const l = listeners({ http: "      - redirect: https\n" }).get("http")!;
  const lines = explainConnection(l, {
    protocol: inferProtocol(l),
    sni: null,
    alpn: [],
    host: "a.example.test",
    path: "/",
  });
  equal(lines[0], "listener http: an http connection");
  equal(lines.at(-1), "  answered with a 308 redirect to https");
});

const { config: namesConfig } = parseConfig(
  `version: 1
backends:
  a: { servers: ["127.0.0.1:9001"] }
  b: { servers: ["127.0.0.1:9002"] }
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - { name: books, sni: bücher.example.test, passthrough: a }
      - { name: deep, sni: "**.example.test", passthrough: b }
`,
  "explain_test.yaml",
);
const namesListener = namesConfig.listeners[0];

function explainSni(sni: string): string[] {
  return explainConnection(namesListener, {
    protocol: "tls",
    sni,
    alpn: [],
    host: null,
    path: "/",
  });
}

Deno.test("explainConnection() says a **. wildcard matched, at any depth", () => {
  const lines = explainSni("a.b.example.test");
  assert.match(lines[1], /route "deep" .* matched by wildcard "\*\*\.example\.test"/);
});

Deno.test("explainConnection() routes a Unicode server name by its A-label, as clients are", () => {
  for (const sni of ["bücher.example.test", "xn--bcher-kva.example.test"]) {
    const lines = explainSni(sni);
    assert.match(lines[0], /with server name "xn--bcher-kva\.example\.test"/, sni);
    assert.match(
      lines[1],
      /route "books" .* matched by server name "xn--bcher-kva\.example\.test"/,
    );
  }
});
