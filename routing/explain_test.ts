import assert from "node:assert/strict";
import { parseConfig } from "../config/parse.ts";
import { explainConnection } from "./explain.ts";

const { config } = parseConfig(
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
const listener = config.listeners[0];

function explain(sni: string): string[] {
  return explainConnection(listener, { protocol: "tls", sni, alpn: [], host: null, path: "/" });
}

Deno.test("explainConnection() says a **. wildcard matched, at any depth", () => {
  const lines = explain("a.b.example.test");
  assert.match(lines[1], /route "deep" .* matched by wildcard "\*\*\.example\.test"/);
});

Deno.test("explainConnection() routes a Unicode server name by its A-label, as clients are", () => {
  for (const sni of ["bücher.example.test", "xn--bcher-kva.example.test"]) {
    const lines = explain(sni);
    assert.match(lines[0], /with server name "xn--bcher-kva\.example\.test"/, sni);
    assert.match(
      lines[1],
      /route "books" .* matched by server name "xn--bcher-kva\.example\.test"/,
    );
  }
});
