import assert from "node:assert/strict";
import { parseConfig } from "../config/parse.ts";
import { explainConnection, type ExplainQuery } from "./explain.ts";

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
