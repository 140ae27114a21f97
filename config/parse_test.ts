import assert from "node:assert/strict";
import { ConfigError, type ConfigIssue } from "./errors.ts";
import { loadConfig } from "./load.ts";
import { parseConfig, parseConfigSources, type ParsedConfig } from "./parse.ts";
import { BOUNDS, DEFAULTS } from "./defaults.ts";
import type { ListenerConfig, RedirectAction } from "./types.ts";

// Golden tests: a YAML snippet in, the exact issue out. Snippets start at line 1, column 1, so
// the line numbers below can be counted in the snippet itself.

const FILE = "edge.yaml";

/** What an issue must be: position and path exactly, message and fix by the facts they name. */
interface Expected {
  severity?: "error" | "warning";
  file?: string;
  line: number;
  column: number;
  path: string;
  /** Substrings the message must contain: the bad value, the conflicting place. */
  message: string[];
  /** Substrings the fix must contain. */
  fix: string[];
}

function issuesOf(text: string, file = FILE): ConfigIssue[] {
  return issuesOfSources([{ file, text }]);
}

function issuesOfSources(sources: { file: string; text: string }[]): ConfigIssue[] {
  try {
    parseConfigSources(sources);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  assert.fail("expected a ConfigError, but the config was accepted");
}

function assertIssue(actual: ConfigIssue | undefined, expected: Expected): void {
  assert.ok(actual, "expected an issue, found none");
  const context = JSON.stringify(actual);
  assert.equal(actual.severity, expected.severity ?? "error", context);
  assert.deepEqual(
    actual.position,
    { file: expected.file ?? FILE, line: expected.line, column: expected.column },
    context,
  );
  assert.equal(actual.path, expected.path, context);
  for (const fact of expected.message) {
    assert.ok(actual.message.includes(fact), `message lacks ${JSON.stringify(fact)}: ${context}`);
  }
  for (const fact of expected.fix) {
    assert.ok(actual.fix.includes(fact), `fix lacks ${JSON.stringify(fact)}: ${context}`);
  }
}

/** The config must be refused with exactly this one issue. */
function assertOnlyIssue(text: string, expected: Expected): void {
  const issues = issuesOf(text);
  assert.equal(issues.length, 1, JSON.stringify(issues, null, 1));
  assertIssue(issues[0], expected);
}

/** The config must be accepted with exactly this one warning. */
function assertOnlyWarning(text: string, expected: Omit<Expected, "severity">): ParsedConfig {
  const parsed = parseConfig(text, FILE);
  assert.equal(parsed.warnings.length, 1, JSON.stringify(parsed.warnings, null, 1));
  assertIssue(parsed.warnings[0], { ...expected, severity: "warning" });
  return parsed;
}

function accepted(text: string): ParsedConfig {
  const parsed = parseConfig(text, FILE);
  assert.deepEqual(parsed.warnings, []);
  return parsed;
}

function redirectOf(listener: ListenerConfig, index = 0): RedirectAction {
  const action = listener.routes[index].action;
  assert.equal(action.kind, "redirect");
  return action as RedirectAction;
}

// A backend and a listener that use each other, for snippets that test something else.
const MINIMAL = `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - forward: b
`;

// ---------------------------------------------------------------------------------------------
// Unknown keys and wrong types

Deno.test("parseConfig() names an unknown top-level key and suggests the one it resembles", () => {
  assertOnlyIssue(
    `version: 1
backnd:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - reject: true
`,
    {
      line: 2,
      column: 1,
      path: "backnd",
      message: ['unknown key "backnd"'],
      fix: ['did you mean "backends"?'],
    },
  );
});

Deno.test("parseConfig() suggests the route key that a one-letter slip resembles", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - sni: a.example.test
        pasthrough: b
        passthrough: b
`,
    {
      line: 10,
      column: 9,
      path: "listeners.l.routes[0].pasthrough",
      message: ['unknown key "pasthrough"'],
      fix: ['did you mean "passthrough"?'],
    },
  );
});

Deno.test('parseConfig() suggests "sni" for the transposed key "sin"', () => {
  // Swapped letters are the commonest typo; a plain edit distance counts them as two edits,
  // which is over the limit for a three-letter key.
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - sin: a.example.test
        passthrough: b
`,
    {
      line: 9,
      column: 9,
      path: "listeners.l.routes[0].sin",
      message: ['unknown key "sin"'],
      fix: ['did you mean "sni"?'],
    },
  );
});

Deno.test("parseConfig() lists the allowed keys when an unknown key resembles none", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
    weight: 3
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - forward: b
`,
    {
      line: 5,
      column: 5,
      path: "backends.b.weight",
      message: ['unknown key "weight"'],
      fix: ['"servers"', '"connect_timeout"', '"proxy_protocol"'],
    },
  );
});

Deno.test("parseConfig() refuses a list where a string belongs", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - forward: [b, c]
`,
    {
      line: 9,
      column: 18,
      path: "listeners.l.routes[0].forward",
      message: ["expected a string", "found a list"],
      fix: ["the name of a backend"],
    },
  );
});

Deno.test("parseConfig() refuses a string where a number belongs", () => {
  assertOnlyIssue(
    `version: 1
http:
  max_headers: lots
${MINIMAL.slice("version: 1\n".length)}`,
    {
      line: 3,
      column: 16,
      path: "http.max_headers",
      message: ["expected a whole number", '"lots"'],
      fix: [`${BOUNDS.maxHeaders.min} to ${BOUNDS.maxHeaders.max}`],
    },
  );
});

Deno.test("parseConfig() refuses a quoted number where a port belongs", () => {
  const issues = issuesOf(`version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  http:
    bind: "127.0.0.1:0"
    routes:
      - redirect: { https_port: "443" }
      - forward: b
`);
  assertIssue(issues[0], {
    line: 9,
    column: 33,
    path: "listeners.http.routes[0].redirect.https_port",
    message: ["expected a whole number", '"443"'],
    fix: ["1 to 65535"],
  });
});

Deno.test("parseConfig() refuses a number outside its bounds and says the bounds", () => {
  assertOnlyIssue(
    `version: 1
http:
  max_headers: 1000
${MINIMAL.slice("version: 1\n".length)}`,
    {
      line: 3,
      column: 16,
      path: "http.max_headers",
      message: ["1000", "out of range"],
      fix: ["8 to 128"],
    },
  );
});

Deno.test("parseConfig() refuses a value that is not one of the choices and lists the choices", () => {
  assertOnlyIssue(
    `version: 1
log:
  level: warn
${MINIMAL.slice("version: 1\n".length)}`,
    {
      line: 3,
      column: 10,
      path: "log.level",
      message: ['"warn"', '"debug", "info", "warning", "error"'],
      fix: ['"warning"'],
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Durations, sizes, addresses

Deno.test("parseConfig() refuses a duration written in words", () => {
  assertOnlyIssue(
    `version: 1
shutdown_timeout: 5 seconds
${MINIMAL.slice("version: 1\n".length)}`,
    {
      line: 2,
      column: 19,
      path: "shutdown_timeout",
      message: ['"5 seconds" is not a duration'],
      fix: ['"5s"', '"250ms"'],
    },
  );
});

Deno.test("parseConfig() refuses a bare number as a duration, since its unit is unknown", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    idle_timeout: 5
    routes:
      - forward: b
`,
    {
      line: 8,
      column: 19,
      path: "listeners.l.idle_timeout",
      message: ["5 is not a duration"],
      fix: ['"5s"'],
    },
  );
});

Deno.test("parseConfig() refuses a duration below the key's minimum and names the minimum", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    idle_timeout: 500ms
    routes:
      - forward: b
`,
    {
      line: 8,
      column: 19,
      path: "listeners.l.idle_timeout",
      message: ['"500ms" is too short'],
      fix: ["1000ms"],
    },
  );
});

Deno.test("parseConfig() refuses a size without a binary or decimal unit", () => {
  assertOnlyIssue(
    `version: 1
http:
  max_head_size: 16k
${MINIMAL.slice("version: 1\n".length)}`,
    {
      line: 3,
      column: 18,
      path: "http.max_head_size",
      message: ['"16k" is not a size'],
      fix: ['"16KiB"'],
    },
  );
});

Deno.test("parseConfig() refuses a size outside its bounds and says the bounds in bytes", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    sniff:
      max_hello_size: 1GiB
    routes:
      - forward: b
`,
    {
      line: 9,
      column: 23,
      path: "listeners.l.sniff.max_hello_size",
      message: ['"1GiB" is out of range'],
      fix: ["512 to 65536 bytes"],
    },
  );
});

/** A one-listener config whose bind is `bind`, on line 7 at column 11. */
function withBind(bind: string): string {
  return `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: ${JSON.stringify(bind)}
    routes:
      - forward: b
`;
}

Deno.test("parseConfig() refuses bind addresses without a host, an IP, a colon or a valid port", () => {
  const cases: [string, string[], string[]][] = [
    [":443", ['bind address ":443"', "the host is missing"], ['"[::]:443"', '"0.0.0.0:443"']],
    [
      "localhost:443",
      ['bind address "localhost:443"', '"localhost" is not an IP address'],
      ['"127.0.0.1:8443"'],
    ],
    ["[::1]443", ['bind address "[::1]443"', "[address]:port"], ['"[::]:443"']],
    ["1.2.3.4:99999", ['bind address "1.2.3.4:99999"', "port 99999 is out of range"], [
      "1 to 65535",
    ]],
  ];
  for (const [bind, message, fix] of cases) {
    assertOnlyIssue(withBind(bind), {
      line: 7,
      column: 11,
      path: "listeners.l.bind",
      message,
      fix,
    });
  }
});

Deno.test("parseConfig() points at the item of a bind list that is wrong", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: ["0.0.0.0:8443", "[::]8443"]
    routes:
      - forward: b
`,
    {
      line: 7,
      column: 28,
      path: "listeners.l.bind[1]",
      message: ['"[::]8443"'],
      fix: ['"[::]:443"'],
    },
  );
});

/** A config whose only backend has this one server, on line 4 at column 14. */
function withServer(server: string): string {
  return `version: 1
backends:
  b:
    servers: ${JSON.stringify(server)}
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - forward: b
`;
}

Deno.test("parseConfig() refuses server addresses without a port, brackets or a valid name", () => {
  const cases: [string, string[], string[]][] = [
    ["vault", ['server address "vault"', "the port is missing"], ['"vault.internal:8200"']],
    ["::1:8200", ['server address "::1:8200"', "must be in brackets"], ['"[::1]:8200"']],
    ["127.0.0.1:0", ['server address "127.0.0.1:0"', "port 0 is out of range"], ["1 to 65535"]],
    ["vault!:8200", ['"vault!" is not a valid host name'], ['"127.0.0.1:8200"']],
  ];
  for (const [server, message, fix] of cases) {
    assertOnlyIssue(withServer(server), {
      line: 4,
      column: 14,
      path: "backends.b.servers",
      message,
      fix,
    });
  }
});

Deno.test("parseConfig() refuses a server listed twice in one backend", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000", "127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - forward: b
`,
    {
      line: 4,
      column: 33,
      path: "backends.b.servers[1]",
      message: ["127.0.0.1:9000 is listed twice"],
      fix: ["remove the duplicate"],
    },
  );
});

// ---------------------------------------------------------------------------------------------
// References between backends and routes

Deno.test("parseConfig() refuses a route to an undefined backend and suggests the closest name", () => {
  assertOnlyIssue(
    `version: 1
backends:
  vault:
    servers: ["127.0.0.1:8200"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - forward: valt
`,
    {
      line: 9,
      column: 18,
      path: "listeners.l.routes[0].forward",
      message: ['the backend "valt" is not defined'],
      fix: ['did you mean "vault"?'],
    },
  );
});

Deno.test("parseConfig() lists the defined backends when an undefined one resembles none", () => {
  const issues = issuesOf(`version: 1
backends:
  vault:
    servers: ["127.0.0.1:8200"]
  git:
    servers: ["127.0.0.1:2222"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - protocol: ssh
        forward: git
      - forward: prometheus
`);
  assert.equal(issues.length, 1, JSON.stringify(issues));
  assertIssue(issues[0], {
    line: 13,
    column: 18,
    path: "listeners.l.routes[1].forward",
    message: ['"prometheus" is not defined'],
    fix: ["backends:", '"vault", "git"'],
  });
});

Deno.test("parseConfig() warns about a backend that no route uses", () => {
  assertOnlyWarning(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
  spare:
    servers: ["127.0.0.1:9001"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - forward: b
`,
    {
      line: 6,
      column: 5,
      path: "backends.spare",
      message: ['"spare" is not used by any route'],
      fix: ["remove it"],
    },
  );
});

Deno.test("parseConfig() counts a redirect's acme_challenge backend as used", () => {
  const { config } = accepted(`version: 1
backends:
  acme:
    servers: ["127.0.0.1:8402"]
listeners:
  http:
    bind: "127.0.0.1:0"
    routes:
      - redirect: { acme_challenge: acme }
`);
  assert.equal(redirectOf(config.listeners[0]).acmeBackend, "acme");
});

// ---------------------------------------------------------------------------------------------
// Binds shared between listeners

Deno.test("parseConfig() refuses the same address bound by two listeners", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  one:
    bind: "127.0.0.1:8000"
    routes: [{ forward: b }]
  two:
    bind: "127.0.0.1:8000"
    routes: [{ forward: b }]
`,
    {
      line: 10,
      column: 5,
      path: "listeners.two.bind",
      message: ["127.0.0.1:8000 is bound twice", 'listener "one"'],
      fix: ["one listener only"],
    },
  );
});

Deno.test("parseConfig() refuses 0.0.0.0:X beside [::]:X, since [::] also takes IPv4", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  six:
    bind: "[::]:8000"
    routes: [{ forward: b }]
  four:
    bind: "0.0.0.0:8000"
    routes: [{ forward: b }]
`,
    {
      line: 10,
      column: 5,
      path: "listeners.four.bind",
      message: ["0.0.0.0:8000 overlaps [::]:8000", 'listener "six"', "IPv4"],
      fix: ["keep only the wider bind"],
    },
  );
});

Deno.test("parseConfig() refuses a specific IPv4 bind under 0.0.0.0 in the same listener", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: ["0.0.0.0:8000", "127.0.0.1:8000"]
    routes: [{ forward: b }]
`,
    {
      line: 7,
      column: 5,
      path: "listeners.l.bind",
      message: ["127.0.0.1:8000 overlaps 0.0.0.0:8000", "this listener"],
      fix: ["keep only the wider bind"],
    },
  );
});

Deno.test("parseConfig() accepts the same port on different specific addresses and port 0 twice", () => {
  const { config } = accepted(`version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  one:
    bind: ["127.0.0.1:8000", "127.0.0.1:0"]
    routes: [{ forward: b }]
  two:
    bind: ["127.0.0.2:8000", "[::1]:8000", "127.0.0.1:0"]
    routes: [{ forward: b }]
`);
  assert.deepEqual(config.listeners.map((l) => l.binds.length), [2, 3]);
});

Deno.test("parseConfig() points a duplicate bind at the bind, not at the listener's first key", () => {
  const issues = issuesOf(`version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  one:
    bind: "127.0.0.1:8000"
    routes: [{ forward: b }]
  two:
    routes: [{ forward: b }]
    idle_timeout: 1m
    bind: ["127.0.0.2:9000", "127.0.0.1:8000"]
`);
  assert.equal(issues.length, 1, JSON.stringify(issues));
  // Today it points at line 10 ("routes:"), which says nothing about binds.
  assert.equal(issues[0].position?.line, 12, JSON.stringify(issues[0]));
});

Deno.test("parseConfig() quotes a dotted listener name in key paths it builds itself", () => {
  // The reader writes listeners["web.v2"]; paths put together in parse.ts must agree with it.
  const issues = issuesOf(`version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  web.v1:
    bind: "127.0.0.1:8000"
    routes: [{ forward: b }]
  web.v2:
    bind: "127.0.0.1:8000"
    routes: [{ forward: b }]
`);
  assert.equal(issues.length, 1, JSON.stringify(issues));
  assert.equal(issues[0].path, 'listeners["web.v2"].bind');
});

// ---------------------------------------------------------------------------------------------
// Routes

Deno.test("parseConfig() refuses a route that an earlier route always takes first", () => {
  assertOnlyIssue(
    `version: 1
backends:
  a:
    servers: ["127.0.0.1:9000"]
  b:
    servers: ["127.0.0.1:9001"]
listeners:
  tls:
    bind: "127.0.0.1:0"
    routes:
      - name: first
        sni: app.example.test
        passthrough: a
      - name: second
        sni: app.example.test
        passthrough: b
`,
    {
      line: 14,
      column: 9,
      path: "listeners.tls.routes[1]",
      message: ['route "second" can never match', 'route "first"', "routes[0]", "line 11"],
      fix: ["remove it", "more specific"],
    },
  );
});

Deno.test("parseConfig() warns when part of a route is always taken by an earlier one", () => {
  assertOnlyWarning(
    `version: 1
backends:
  a:
    servers: ["127.0.0.1:9000"]
  b:
    servers: ["127.0.0.1:9001"]
listeners:
  tls:
    bind: "127.0.0.1:0"
    routes:
      - name: first
        sni: app.example.test
        passthrough: a
      - name: second
        sni: [app.example.test, api.example.test]
        passthrough: b
`,
    {
      line: 14,
      column: 9,
      path: "listeners.tls.routes[1]",
      message: ['part of route "second" can never match', 'tls "app.example.test"', '"first"'],
      fix: ["narrow the earlier route"],
    },
  );
});

Deno.test("parseConfig() does not flag a catch-all before an exact name, which still wins", () => {
  // Precedence is by kind of match, not by order: the exact route below is reachable.
  accepted(`version: 1
backends:
  a:
    servers: ["127.0.0.1:9000"]
  b:
    servers: ["127.0.0.1:9001"]
listeners:
  tls:
    bind: "127.0.0.1:0"
    routes:
      - forward: a
      - sni: app.example.test
        passthrough: b
`);
});

Deno.test("parseConfig() refuses a route with no action", () => {
  assertOnlyIssue(
    `version: 1
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - sni: app.example.test
`,
    {
      line: 6,
      column: 9,
      path: "listeners.l.routes[0]",
      message: ["the route has no action"],
      fix: ["exactly one of", '"passthrough"', '"forward"', '"redirect"', '"reject"'],
    },
  );
});

Deno.test("parseConfig() refuses a route with two actions and names both", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - forward: b
        reject: true
`,
    {
      line: 9,
      column: 9,
      path: "listeners.l.routes[0]",
      message: ["2 actions", "forward, reject"],
      fix: ["exactly one of"],
    },
  );
});

Deno.test("parseConfig() refuses reject: false, which would do nothing", () => {
  assertOnlyIssue(
    `version: 1
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - reject: false
`,
    {
      line: 6,
      column: 17,
      path: "listeners.l.routes[0].reject",
      message: ["reject: false"],
      fix: ["reject: true"],
    },
  );
});

Deno.test("parseConfig() refuses sni on a route that takes plain HTTP", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - protocol: http
        sni: app.example.test
        forward: b
`,
    {
      line: 10,
      column: 14,
      path: "listeners.l.routes[0].sni",
      message: ["sni only applies to TLS", "http"],
      fix: ["remove sni", "protocol: tls"],
    },
  );
});

Deno.test("parseConfig() refuses alpn on a route that takes more than TLS", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - protocol: [tls, ssh]
        alpn: h2
        forward: b
`,
    {
      line: 10,
      column: 15,
      path: "listeners.l.routes[0].alpn",
      message: ["alpn only applies to TLS", "tls, ssh"],
      fix: ["protocol: tls"],
    },
  );
});

Deno.test("parseConfig() refuses passthrough for plain HTTP", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - protocol: http
        passthrough: b
`,
    {
      line: 9,
      column: 19,
      path: "listeners.l.routes[0].protocol",
      message: ["passthrough route cannot take", '"http"'],
      fix: ["protocol: tls", "leave protocol out"],
    },
  );
});

Deno.test("parseConfig() refuses a redirect for anything but plain HTTP", () => {
  assertOnlyIssue(
    `version: 1
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - protocol: any
        redirect: https
`,
    {
      line: 6,
      column: 19,
      path: "listeners.l.routes[0].protocol",
      message: ["redirect route cannot take", '"any"'],
      fix: ["protocol: http"],
    },
  );
});

Deno.test('parseConfig() refuses "any" combined with other protocols', () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - protocol: [ssh, any]
        forward: b
`,
    {
      line: 9,
      column: 25,
      path: "listeners.l.routes[0].protocol[1]",
      message: ['"any" cannot be combined'],
      fix: ["protocol: any"],
    },
  );
});

/** A config whose one route has this `sni`, written in flow style on line 9 at column 15. */
function withSni(sni: string): string {
  return `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - sni: [${JSON.stringify(sni)}]
        passthrough: b
`;
}

Deno.test("parseConfig() allows a wildcard only as the whole leftmost label", () => {
  for (const sni of ["a.*.example.test", "*.*.example.test", "*app.example.test", "app.*"]) {
    assertOnlyIssue(withSni(sni), {
      line: 9,
      column: 15,
      path: "listeners.l.routes[0].sni[0]",
      message: [`"${sni}"`, "a wildcard is only allowed as the whole leftmost label"],
      fix: ['"*.example.tld"', "exactly one extra label"],
    });
  }
});

Deno.test("parseConfig() refuses a lone * and says to leave sni out instead", () => {
  assertOnlyIssue(withSni("*"), {
    line: 9,
    column: 15,
    path: "listeners.l.routes[0].sni[0]",
    message: ['"*"', "a lone *"],
    fix: ["leave sni out"],
  });
});

Deno.test("parseConfig() refuses an IP address as a server name", () => {
  assertOnlyIssue(withSni("192.0.2.1"), {
    line: 9,
    column: 15,
    path: "listeners.l.routes[0].sni[0]",
    message: ['"192.0.2.1"', "never sent as a TLS server name"],
    fix: ["leaves sni out"],
  });
});

Deno.test("parseConfig() normalises server names: lower case, one trailing dot dropped", () => {
  const { config } = accepted(withSni("App.Example.TEST."));
  assert.deepEqual(config.listeners[0].routes[0].match.sni, [
    { kind: "exact", name: "app.example.test" },
  ]);
  const wild = accepted(withSni("*.Example.test")).config.listeners[0].routes[0].match.sni;
  assert.deepEqual(wild, [{ kind: "wildcard", suffix: "example.test" }]);
});

Deno.test("parseConfig() infers protocol from the action, and tls from sni or alpn", () => {
  const { config } = parseConfig(`version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - { name: pass, passthrough: b }
      - { name: redir, redirect: https }
      - { name: named, sni: app.example.test, forward: b }
      - { name: alpn, alpn: acme-tls/1, forward: b }
      - { name: any, forward: b }
      - { name: ssh, protocol: [ssh, silent], forward: b }
`);
  const protocols = Object.fromEntries(
    config.listeners[0].routes.map((r) => [r.name, r.match.protocols]),
  );
  assert.deepEqual(protocols, {
    pass: ["tls"],
    redir: ["http"],
    named: ["tls"],
    alpn: ["tls"],
    any: null,
    ssh: ["ssh", "silent"],
  });
});

// ---------------------------------------------------------------------------------------------
// version, YAML syntax, file shape

Deno.test("parseConfig() refuses a file without version", () => {
  assertOnlyIssue(MINIMAL.slice("version: 1\n".length), {
    line: 1,
    column: 1,
    path: "version",
    message: ['"version" is missing'],
    fix: ["version: 1"],
  });
});

Deno.test("parseConfig() refuses version 2", () => {
  assertOnlyIssue(MINIMAL.replace("version: 1", "version: 2"), {
    line: 1,
    column: 10,
    path: "version",
    message: ["2"],
    fix: ["1"],
  });
});

Deno.test("parseConfig() reports a YAML syntax error at the line that breaks", () => {
  assertOnlyIssue(
    `version: 1
listeners:
  l:
    bind: "127.0.0.1:0
`,
    {
      line: 5,
      column: 1,
      path: "",
      message: ["YAML syntax", "quote"],
      fix: ["YAML syntax"],
    },
  );
});

Deno.test("parseConfig() refuses tabs as indentation", () => {
  assertOnlyIssue("version: 1\nlisteners:\n\tl: {}\n", {
    line: 3,
    column: 1,
    path: "",
    message: ["YAML syntax", "Tabs"],
    fix: ["YAML syntax"],
  });
});

Deno.test("parseConfig() refuses a key given twice and points at the second one", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    bind: "127.0.0.1:1"
    routes:
      - forward: b
`,
    {
      line: 8,
      column: 5,
      path: "",
      message: ["a key appears twice"],
      fix: ["keep one"],
    },
  );
});

Deno.test("parseConfig() refuses more than one YAML document in a file", () => {
  assertOnlyIssue(`${MINIMAL}---\nversion: 1\n`, {
    line: 10,
    column: 1,
    path: "",
    message: ["more than one YAML document"],
    fix: ["---", "several files in one directory"],
  });
});

Deno.test("parseConfig() accepts a single document that starts with ---", () => {
  accepted(`---\n${MINIMAL}`);
});

Deno.test("parseConfig() refuses an empty file and one with only comments", () => {
  for (const text of ["", "\n\n", "# nothing here yet\n"]) {
    assertOnlyIssue(text, {
      line: 1,
      column: 1,
      path: "",
      message: ["the file is empty"],
      fix: ["version: 1"],
    });
  }
});

Deno.test("parseConfig() refuses a file whose top level is not a map", () => {
  assertOnlyIssue("- version: 1\n", {
    line: 1,
    column: 1,
    path: "",
    message: ["expected a map of keys", "a list"],
    fix: ["key: value"],
  });
});

Deno.test("parseConfig() refuses a config without listeners", () => {
  assertOnlyIssue("version: 1\n", {
    line: 1,
    column: 1,
    path: "listeners",
    message: ["no listeners"],
    fix: ["listeners:"],
  });
});

// ---------------------------------------------------------------------------------------------
// redirect: where clients are sent

const REDIRECT_BACKENDS = `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
`;

Deno.test("parseConfig() sends a redirect on a listener that takes TLS to that listener's own port", () => {
  const { config } = accepted(`${REDIRECT_BACKENDS}  https:
    bind: "127.0.0.1:8443"
    routes:
      - passthrough: b
      - redirect: https
`);
  assert.deepEqual(redirectOf(config.listeners[0], 1), {
    kind: "redirect",
    status: 308,
    httpsPort: null,
    httpsListener: "https",
    acmeBackend: null,
  });
});

Deno.test("parseConfig() sends a plain-HTTP listener's redirect to the one listener that takes TLS", () => {
  const { config } = accepted(`${REDIRECT_BACKENDS}  http:
    bind: "127.0.0.1:8080"
    routes:
      - redirect: https
  https:
    bind: "127.0.0.1:8443"
    routes:
      - passthrough: b
`);
  const action = redirectOf(config.listeners[0]);
  assert.equal(action.httpsListener, "https");
  assert.equal(action.httpsPort, null);
});

Deno.test("parseConfig() uses the shared port when several listeners take TLS on the same port", () => {
  const { config } = accepted(`${REDIRECT_BACKENDS}  http:
    bind: "127.0.0.1:8080"
    routes:
      - redirect: https
  public:
    bind: "127.0.0.1:8443"
    routes:
      - passthrough: b
  private:
    bind: "127.0.0.2:8443"
    routes:
      - passthrough: b
`);
  const action = redirectOf(config.listeners[0]);
  assert.equal(action.httpsPort, 8443);
  assert.equal(action.httpsListener, null);
});

Deno.test("parseConfig() leaves the port out when no listener takes TLS", () => {
  const { config } = accepted(`version: 1
listeners:
  http:
    bind: "127.0.0.1:8080"
    routes:
      - redirect: https
`);
  const action = redirectOf(config.listeners[0]);
  assert.equal(action.httpsListener, null);
  assert.equal(action.httpsPort, null);
});

Deno.test("parseConfig() asks for https_port when listeners take TLS on different ports", () => {
  assertOnlyIssue(
    `${REDIRECT_BACKENDS}  http:
    bind: "127.0.0.1:8080"
    routes:
      - redirect: https
  https:
    bind: "127.0.0.1:8443"
    routes:
      - passthrough: b
  alt:
    bind: "127.0.0.1:9443"
    routes:
      - passthrough: b
`,
    {
      line: 9,
      column: 9,
      path: "listeners.http.routes[0].redirect",
      message: ["which https port", '"https", "alt"'],
      fix: ["https_port"],
    },
  );
});

Deno.test("parseConfig() takes an explicit https_port and status over any inference", () => {
  const { config } = accepted(`${REDIRECT_BACKENDS}  http:
    bind: "127.0.0.1:8080"
    routes:
      - redirect: { https_port: 443, status: 301 }
  https:
    bind: "127.0.0.1:8443"
    routes:
      - passthrough: b
  alt:
    bind: "127.0.0.1:9443"
    routes:
      - passthrough: b
`);
  assert.deepEqual(redirectOf(config.listeners[0]), {
    kind: "redirect",
    status: 301,
    httpsPort: 443,
    httpsListener: null,
    acmeBackend: null,
  });
});

Deno.test("parseConfig() refuses a redirect status that is not a redirect", () => {
  assertOnlyIssue(
    `version: 1
listeners:
  http:
    bind: "127.0.0.1:8080"
    routes:
      - redirect: { status: 303 }
`,
    {
      line: 6,
      column: 29,
      path: "listeners.http.routes[0].redirect.status",
      message: ["303 is not a redirect status"],
      fix: ["308", "301, 302 or 307"],
    },
  );
});

Deno.test('parseConfig() refuses a redirect scheme other than "https"', () => {
  assertOnlyIssue(
    `version: 1
listeners:
  http:
    bind: "127.0.0.1:8080"
    routes:
      - redirect: http
`,
    {
      line: 6,
      column: 19,
      path: "listeners.http.routes[0].redirect",
      message: ['"http"', '"https"'],
      fix: ['"https"'],
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Sniff settings

Deno.test("parseConfig() refuses silent_after that is not shorter than the sniff timeout", () => {
  assertOnlyIssue(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    sniff:
      timeout: 2s
      silent_after: 2s
    routes:
      - protocol: [ssh, silent]
        forward: b
`,
    {
      line: 10,
      column: 21,
      path: "listeners.l.sniff.silent_after",
      message: ["silent_after (2s)", "not shorter", "timeout (2s)"],
      fix: ["shorter than sniff.timeout"],
    },
  );
});

Deno.test("parseConfig() turns silent_after off when no route takes silent clients", () => {
  const { config } = accepted(`version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - protocol: [tls, ssh]
        forward: b
`);
  assert.equal(config.listeners[0].sniff.silentAfter, null);
});

Deno.test("parseConfig() accepts a short sniff timeout on a listener that never waits for silence", () => {
  // silent_after is not used here (no route takes silent clients), so its default must not
  // make a 1s timeout an error.
  const { config } = parseConfig(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  tls:
    bind: "127.0.0.1:0"
    sniff: { timeout: 1s }
    routes:
      - passthrough: b
`,
    FILE,
  );
  assert.deepEqual(config.listeners[0].sniff, {
    timeout: 1_000,
    silentAfter: null,
    maxHelloSize: DEFAULTS.listener.sniff.maxHelloSize,
  });
});

Deno.test("parseConfig() warns that silent_after does nothing when no route takes silent clients", () => {
  assertOnlyWarning(
    `version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  tls:
    bind: "127.0.0.1:0"
    sniff:
      silent_after: 1s
    routes:
      - passthrough: b
`,
    {
      line: 9,
      column: 21,
      path: "listeners.tls.sniff.silent_after",
      message: ["silent_after has no effect", "silent clients"],
      fix: ["protocol: silent", "remove silent_after"],
    },
  );
});

Deno.test("parseConfig() halves a short sniff timeout for the default silent_after", () => {
  const { config } = accepted(`version: 1
backends:
  b:
    servers: ["127.0.0.1:9000"]
listeners:
  l:
    bind: "127.0.0.1:0"
    sniff: { timeout: 1s }
    routes:
      - forward: b
`);
  assert.deepEqual(config.listeners[0].sniff, {
    timeout: 1_000,
    silentAfter: 500,
    maxHelloSize: DEFAULTS.listener.sniff.maxHelloSize,
  });
});

// ---------------------------------------------------------------------------------------------
// Defaults and the example config

Deno.test("parseConfig() fills in every default from defaults.ts when keys are absent", () => {
  const { config } = accepted(MINIMAL);
  assert.deepEqual(config.log, DEFAULTS.log);
  assert.equal(config.shutdownTimeout, DEFAULTS.shutdownTimeout);
  assert.deepEqual(config.http, DEFAULTS.http);
  const backend = config.backends.get("b")!;
  assert.equal(backend.connectTimeout, DEFAULTS.backend.connectTimeout);
  assert.equal(backend.proxyProtocol, DEFAULTS.backend.proxyProtocol);
  const listener = config.listeners[0];
  assert.deepEqual(listener.sniff, DEFAULTS.listener.sniff);
  assert.equal(listener.idleTimeout, DEFAULTS.listener.idleTimeout);
  assert.equal(listener.routes[0].name, "l#0");
  assert.deepEqual(config.files, [FILE]);
});

Deno.test("parseConfig() reads every setting when all are given", () => {
  const { config } = accepted(`version: 1
log: { level: debug, format: json, access: false }
shutdown_timeout: 1m
http:
  request_head_timeout: 2s
  keepalive_timeout: 90s
  max_head_size: 8KiB
  max_headers: 50
backends:
  b:
    servers: ["Vault.Internal:8200", "[::1]:8201"]
    connect_timeout: 250ms
    proxy_protocol: v2
listeners:
  l:
    bind: ["0.0.0.0:8000", "[::1]:8000"]
    idle_timeout: 10m
    sniff: { timeout: 3s, silent_after: 500ms, max_hello_size: 32KiB }
    routes:
      - { name: all, forward: b }
`);
  assert.deepEqual(config.log, { level: "debug", format: "json", access: false });
  assert.equal(config.shutdownTimeout, 60_000);
  assert.deepEqual(config.http, {
    ...DEFAULTS.http,
    requestHeadTimeout: 2_000,
    keepaliveTimeout: 90_000,
    maxHeadSize: 8_192,
    maxHeaders: 50,
  });
  const b = config.backends.get("b")!;
  assert.deepEqual(b.servers.map((s) => s.label), ["vault.internal:8200", "[::1]:8201"]);
  assert.equal(b.connectTimeout, 250);
  assert.equal(b.proxyProtocol, "v2");
  const l = config.listeners[0];
  assert.deepEqual(l.binds, [
    { host: "0.0.0.0", port: 8000, kind: "ipv4" },
    { host: "::1", port: 8000, kind: "ipv6" },
  ]);
  assert.equal(l.idleTimeout, 600_000);
  assert.deepEqual(l.sniff, { timeout: 3_000, silentAfter: 500, maxHelloSize: 32_768 });
});

Deno.test("parseConfig() accepts config.example.yaml with no errors and no warnings", async () => {
  const text = await Deno.readTextFile(new URL("../config.example.yaml", import.meta.url));
  const { config, warnings } = parseConfig(text, "config.example.yaml");
  assert.deepEqual(warnings, []);

  assert.deepEqual([...config.backends.keys()], ["git-ssh", "git-https", "vault"]);
  assert.equal(config.backends.get("vault")!.connectTimeout, 3_000);
  assert.equal(config.backends.get("git-ssh")!.connectTimeout, DEFAULTS.backend.connectTimeout);

  const byName = new Map(config.listeners.map((l) => [l.name, l]));
  assert.deepEqual([...byName.keys()], ["ssh", "http", "https"]);
  const ssh = byName.get("ssh")!, http = byName.get("http")!, https = byName.get("https")!;
  assert.deepEqual(https.binds, [{ host: "::", port: 8443, kind: "ipv6" }]);
  assert.deepEqual(https.sniff, { timeout: 5_000, silentAfter: 2_000, maxHelloSize: 16_384 });
  assert.equal(https.idleTimeout, DEFAULTS.listener.idleTimeout);
  assert.deepEqual(https.routes.map((r) => r.name), [
    "git-https",
    "vault",
    "plain-http",
    "ssh-over-443",
  ]);
  assert.deepEqual(https.routes.map((r) => r.match.protocols), [
    ["tls"],
    ["tls"],
    ["http"],
    ["ssh", "silent"],
  ]);
  // The plain-HTTP listener has no route for silent clients, so it never waits for silence.
  assert.equal(http.sniff.silentAfter, null);
  assert.equal(redirectOf(http).httpsListener, "https");
  assert.equal(redirectOf(https, 2).httpsListener, "https");
  assert.deepEqual(ssh.routes.map((r) => [r.name, r.match.protocols, r.action]), [
    ["ssh#0", null, { kind: "forward", backend: "git-ssh" }],
  ]);
});

// ---------------------------------------------------------------------------------------------
// Several files

const BACKENDS_FILE = `version: 1
backends:
  vault:
    servers: ["127.0.0.1:8200"]
`;

const LISTENERS_FILE = `version: 1
log:
  level: debug
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - sni: vault.example.test
        passthrough: vault
`;

Deno.test("parseConfigSources() merges backends and listeners across files", () => {
  const { config, warnings } = parseConfigSources([
    { file: "10-backends.yaml", text: BACKENDS_FILE },
    { file: "20-listeners.yaml", text: LISTENERS_FILE },
  ]);
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.files, ["10-backends.yaml", "20-listeners.yaml"]);
  assert.deepEqual([...config.backends.keys()], ["vault"]);
  assert.equal(config.backends.get("vault")!.position.file, "10-backends.yaml");
  assert.deepEqual(config.listeners.map((l) => l.name), ["https"]);
  assert.equal(config.listeners[0].routes[0].position.file, "20-listeners.yaml");
  assert.equal(config.log.level, "debug");
});

Deno.test("parseConfigSources() refuses a backend defined in two files and names both places", () => {
  const issues = issuesOfSources([
    { file: "10-backends.yaml", text: BACKENDS_FILE },
    {
      file: "20-listeners.yaml",
      text: `${LISTENERS_FILE}backends:
  vault:
    servers: ["127.0.0.1:8201"]
`,
    },
  ]);
  assert.equal(issues.length, 1, JSON.stringify(issues));
  assertIssue(issues[0], {
    file: "20-listeners.yaml",
    line: 12,
    column: 5,
    path: "backends.vault",
    message: ['the backend "vault" is already defined at 10-backends.yaml:4:5'],
    fix: ["rename one of them"],
  });
});

Deno.test("parseConfigSources() refuses log: set in two files", () => {
  const issues = issuesOfSources([
    { file: "a.yaml", text: `log:\n  level: info\n${BACKENDS_FILE}` },
    { file: "b.yaml", text: LISTENERS_FILE },
  ]);
  assert.equal(issues.length, 1, JSON.stringify(issues));
  assertIssue(issues[0], {
    file: "b.yaml",
    line: 3,
    column: 3,
    path: "log",
    message: ['"log" is already set in a.yaml:2:3'],
    fix: ["one file only"],
  });
});

Deno.test("parseConfigSources() wants version: 1 in every file", () => {
  const issues = issuesOfSources([
    { file: "a.yaml", text: BACKENDS_FILE },
    { file: "b.yaml", text: LISTENERS_FILE.slice("version: 1\n".length) },
  ]);
  assert.equal(issues.length, 1, JSON.stringify(issues));
  assertIssue(issues[0], {
    file: "b.yaml",
    line: 1,
    column: 1,
    path: "version",
    message: ['"version" is missing'],
    fix: ["version: 1"],
  });
});

Deno.test("parseConfigSources() refuses an empty list of files", () => {
  const issues = issuesOfSources([]);
  assert.equal(issues.length, 1);
  assert.equal(issues[0].position, null);
  assert.match(issues[0].message, /no config files/);
});

Deno.test("loadConfig() merges the *.yaml files of a directory and ignores other files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgemux-config-" });
  try {
    await Deno.writeTextFile(`${dir}/10-backends.yaml`, BACKENDS_FILE);
    await Deno.writeTextFile(`${dir}/20-listeners.yaml`, LISTENERS_FILE);
    await Deno.writeTextFile(`${dir}/README.txt`, "not: [valid yaml\n");
    await Deno.writeTextFile(`${dir}/30-old.yaml.bak`, "version: 2\n");
    const { config, warnings } = await loadConfig(dir);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.files, [`${dir}/10-backends.yaml`, `${dir}/20-listeners.yaml`]);
    assert.deepEqual([...config.backends.keys()], ["vault"]);
    assert.deepEqual(config.listeners.map((l) => l.name), ["https"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig() reports errors with the path of the file in the directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgemux-config-" });
  try {
    await Deno.writeTextFile(`${dir}/a.yaml`, BACKENDS_FILE);
    await Deno.writeTextFile(`${dir}/b.yaml`, LISTENERS_FILE.replace("vault\n", "valt\n"));
    await assert.rejects(loadConfig(dir), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.errors.length, 1);
      assert.equal(e.errors[0].position?.file, `${dir}/b.yaml`);
      assert.equal(e.errors[0].fix, 'did you mean "vault"?');
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig() says a missing path does not exist", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgemux-config-" });
  const missing = `${dir}/nowhere.yaml`;
  try {
    await assert.rejects(loadConfig(missing), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.issues.length, 1);
      assert.equal(e.issues[0].position, null);
      assert.ok(e.issues[0].message.includes(missing), e.issues[0].message);
      assert.ok(e.issues[0].message.includes("does not exist"), e.issues[0].message);
      assert.match(e.issues[0].fix, /--config/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig() says so when a directory holds no *.yaml file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgemux-config-" });
  try {
    await Deno.writeTextFile(`${dir}/notes.txt`, "nothing\n");
    await assert.rejects(loadConfig(dir), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.issues[0].message, /holds no \*\.yaml files/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ConfigError's message lists every error with file:line:col and its fix", () => {
  try {
    parseConfig(withBind(":443"), FILE);
    assert.fail("expected a ConfigError");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(
      e.message,
      '1 error in the config:\nedge.yaml:7:11: error: listeners.l.bind: bind address ":443": ' +
        'the host is missing\n  fix: name the address to bind: "[::]:443" (every IPv4 and IPv6 ' +
        'address), "0.0.0.0:443" or "127.0.0.1:8443"',
    );
  }
});
