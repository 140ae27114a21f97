import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { parse as parseYaml } from "yaml";
import { parseHostPort } from "./address.ts";
import { DEFAULTS } from "./defaults.ts";
import { parseConfig } from "./parse.ts";
import { parseDuration, parseSize } from "./units.ts";

// docs/config.schema.json is for editors; parse.ts is the authority. These tests keep the two
// (and docs/config.md) describing the same keys, defaults and value shapes.

const SCHEMA_URL = new URL("../docs/config.schema.json", import.meta.url);
const DOCS_URL = new URL("../docs/config.md", import.meta.url);
const PARSER_URL = new URL("./parse.ts", import.meta.url);
const EXAMPLE_URL = new URL("../config.example.yaml", import.meta.url);

type SchemaObject = { [keyword: string]: unknown };

// ---------------------------------------------------------------------------------------------
// A validator for the subset of JSON Schema 2020-12 that config.schema.json uses. It refuses any
// other keyword, so the schema cannot quietly grow a rule that is never tested.

const VALIDATION_KEYWORDS = new Set([
  "type",
  "properties",
  "additionalProperties",
  "required",
  "enum",
  "pattern",
  "items",
  "oneOf",
  "anyOf",
  "minItems",
  "uniqueItems",
  "minimum",
  "maximum",
  "propertyNames",
  "$ref",
]);
const ANNOTATION_KEYWORDS = new Set([
  "$schema",
  "$defs",
  "title",
  "description",
  "default",
  "examples",
]);

interface Failure {
  /** Where in the instance, as a JSON pointer. */
  at: string;
  message: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case "object":
      return isObject(value);
    case "array":
      return Array.isArray(value);
    case "string":
      return typeof value === "string";
    case "boolean":
      return typeof value === "boolean";
    case "integer":
      return Number.isInteger(value);
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "null":
      return value === null;
  }
  throw new Error(`the validator does not know the type "${type}"`);
}

class Validator {
  constructor(readonly root: SchemaObject) {}

  validate(value: unknown, schema: SchemaObject = this.root, at = ""): Failure[] {
    const failures: Failure[] = [];
    const fail = (message: string, where = at) => failures.push({ at: where, message });

    if (typeof schema.$ref === "string") {
      failures.push(...this.validate(value, this.resolve(schema.$ref), at));
    }
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? schema.type as string[] : [schema.type as string];
      if (!types.some((t) => hasType(value, t))) {
        fail(`expected ${types.join(" or ")}, found ${JSON.stringify(value)}`);
        return failures;
      }
    }
    if (Array.isArray(schema.enum) && !schema.enum.some((e) => isDeepStrictEqual(e, value))) {
      fail(`${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
    }
    if (typeof schema.pattern === "string" && typeof value === "string") {
      if (!new RegExp(schema.pattern, "u").test(value)) {
        fail(`${JSON.stringify(value)} does not match ${schema.pattern}`);
      }
    }
    if (typeof value === "number") {
      if (typeof schema.minimum === "number" && value < schema.minimum) {
        fail(`${value} is below ${schema.minimum}`);
      }
      if (typeof schema.maximum === "number" && value > schema.maximum) {
        fail(`${value} is above ${schema.maximum}`);
      }
    }
    if (Array.isArray(value)) {
      if (typeof schema.minItems === "number" && value.length < schema.minItems) {
        fail(`expected at least ${schema.minItems} items, found ${value.length}`);
      }
      if (schema.uniqueItems === true) {
        const seen = new Set(value.map((v) => JSON.stringify(v)));
        if (seen.size !== value.length) fail("the items are not unique");
      }
      if (isObject(schema.items)) {
        const items = schema.items;
        value.forEach((v, i) => failures.push(...this.validate(v, items, `${at}/${i}`)));
      }
    }
    if (isObject(value)) {
      const properties = isObject(schema.properties) ? schema.properties : {};
      for (const key of (schema.required as string[] | undefined) ?? []) {
        if (!(key in value)) fail(`the key "${key}" is missing`);
      }
      for (const [key, v] of Object.entries(value)) {
        const where = `${at}/${key}`;
        if (isObject(schema.propertyNames)) {
          failures.push(...this.validate(key, schema.propertyNames, where));
        }
        if (key in properties) {
          failures.push(...this.validate(v, properties[key] as SchemaObject, where));
        } else if (schema.additionalProperties === false) {
          fail(`unknown key "${key}"`, where);
        } else if (isObject(schema.additionalProperties)) {
          failures.push(...this.validate(v, schema.additionalProperties, where));
        }
      }
    }
    for (const keyword of ["anyOf", "oneOf"] as const) {
      const options = schema[keyword];
      if (!Array.isArray(options)) continue;
      const results = options.map((s) => this.validate(value, s as SchemaObject, at));
      const passing = results.filter((r) => r.length === 0).length;
      if (keyword === "anyOf" && passing === 0) {
        fail(`matches none of anyOf: ${results.map((r) => r[0]?.message).join("; ")}`);
      }
      if (keyword === "oneOf" && passing !== 1) fail(`matches ${passing} of oneOf, not exactly 1`);
    }
    return failures;
  }

  resolve(ref: string): SchemaObject {
    if (!ref.startsWith("#/")) throw new Error(`only local $refs are supported, not ${ref}`);
    let node: unknown = this.root;
    for (const part of ref.slice(2).split("/")) {
      node = isObject(node) ? node[part] : undefined;
    }
    if (!isObject(node)) throw new Error(`$ref ${ref} points at nothing`);
    return node;
  }
}

/** Every subschema with its location, the root first. */
function* subschemas(schema: SchemaObject, at = "#"): Generator<[string, SchemaObject]> {
  yield [at, schema];
  const children: [string, unknown][] = [];
  for (const key of ["properties", "$defs"]) {
    if (isObject(schema[key])) {
      for (const [name, s] of Object.entries(schema[key])) children.push([`${key}/${name}`, s]);
    }
  }
  for (const key of ["additionalProperties", "items", "propertyNames"]) {
    if (isObject(schema[key])) children.push([key, schema[key]]);
  }
  for (const key of ["anyOf", "oneOf"]) {
    if (Array.isArray(schema[key])) {
      (schema[key] as unknown[]).forEach((s, i) => children.push([`${key}/${i}`, s]));
    }
  }
  for (const [where, s] of children) {
    assert.ok(isObject(s), `${at}/${where} is not a schema object`);
    yield* subschemas(s, `${at}/${where}`);
  }
}

async function loadSchema(): Promise<SchemaObject> {
  const parsed: unknown = JSON.parse(await Deno.readTextFile(SCHEMA_URL));
  assert.ok(isObject(parsed), "the schema is not a JSON object");
  return parsed;
}

async function loadValidator(): Promise<Validator> {
  return new Validator(await loadSchema());
}

/** The subschema at a path of property names, following $refs and named-map values. */
function schemaAt(validator: Validator, path: string[]): SchemaObject {
  let node = validator.root;
  for (const step of path) {
    while (typeof node.$ref === "string") node = validator.resolve(node.$ref);
    if (step === "*") {
      node = node.additionalProperties as SchemaObject;
    } else if (step === "[]") {
      node = node.items as SchemaObject;
    } else if (step.startsWith("anyOf:")) {
      const options = node.anyOf as SchemaObject[];
      const wanted = step.slice("anyOf:".length);
      node = options.find((o) => o.type === wanted)!;
    } else {
      node = (node.properties as Record<string, SchemaObject>)[step];
    }
    assert.ok(isObject(node), `no schema at ${path.join(".")} (stuck at ${step})`);
  }
  while (typeof node.$ref === "string") node = validator.resolve(node.$ref);
  return node;
}

function keysAt(validator: Validator, path: string[]): string[] {
  return Object.keys(schemaAt(validator, path).properties as SchemaObject).sort();
}

function assertValid(validator: Validator, value: unknown): void {
  const failures = validator.validate(value);
  assert.deepEqual(failures, [], JSON.stringify(failures, null, 1));
}

// ---------------------------------------------------------------------------------------------
// The schema itself

Deno.test("config.schema.json is JSON Schema 2020-12 using only keywords the test validator knows", async () => {
  const schema = await loadSchema();
  assert.equal(schema.$schema, "https://json-schema.org/draft/2020-12/schema");
  for (const [at, s] of subschemas(schema)) {
    for (const keyword of Object.keys(s)) {
      assert.ok(
        VALIDATION_KEYWORDS.has(keyword) || ANNOTATION_KEYWORDS.has(keyword),
        `${at} uses "${keyword}"`,
      );
    }
    if (typeof s.$ref === "string") new Validator(schema).resolve(s.$ref);
    if (typeof s.pattern === "string") new RegExp(s.pattern, "u");
  }
});

Deno.test("config.schema.json closes every map with additionalProperties: false", async () => {
  const schema = await loadSchema();
  for (const [at, s] of subschemas(schema)) {
    if (s.properties !== undefined) {
      assert.equal(s.additionalProperties, false, `${at} lets unknown keys through`);
    }
    if (s.type === "object" && s.properties === undefined) {
      // A named map (backends, listeners): open keys, but each value is a closed schema.
      assert.ok(isObject(s.additionalProperties), `${at} has no schema for its values`);
      assert.ok(isObject(s.propertyNames), `${at} has no rule for its names`);
    }
  }
});

Deno.test("config.schema.json describes every key and every default fits its own schema", async () => {
  const validator = await loadValidator();
  for (const [at, s] of subschemas(validator.root)) {
    if (isObject(s.properties)) {
      for (const [key, p] of Object.entries(s.properties)) {
        assert.equal(typeof (p as SchemaObject).description, "string", `${at}.${key}`);
      }
    }
    if ("default" in s) assert.deepEqual(validator.validate(s.default, s, at), [], at);
  }
});

// ---------------------------------------------------------------------------------------------
// The same keys as the parser

/**
 * The keys parse.ts accepts at each place. parse.ts does not export its key lists, so they are
 * written out here, and the next test checks them against the lists in parse.ts's source.
 */
const PARSER_KEYS: { where: string; schemaPath: string[]; keys: string[] }[] = [
  {
    where: "top level",
    schemaPath: [],
    keys: ["version", "log", "shutdown_timeout", "http", "backends", "listeners"],
  },
  { where: "log", schemaPath: ["log"], keys: ["level", "format", "access"] },
  {
    where: "http",
    schemaPath: ["http"],
    keys: ["request_head_timeout", "keepalive_timeout", "max_head_size", "max_headers"],
  },
  {
    where: "a backend",
    schemaPath: ["backends", "*"],
    keys: ["servers", "connect_timeout", "proxy_protocol"],
  },
  {
    where: "a listener",
    schemaPath: ["listeners", "*"],
    keys: ["bind", "sniff", "idle_timeout", "routes"],
  },
  {
    where: "sniff",
    schemaPath: ["listeners", "*", "sniff"],
    keys: ["timeout", "silent_after", "max_hello_size"],
  },
  {
    where: "a route",
    schemaPath: ["listeners", "*", "routes", "[]"],
    keys: ["name", "protocol", "sni", "alpn", "passthrough", "forward", "redirect", "reject"],
  },
  {
    where: "redirect",
    schemaPath: ["listeners", "*", "routes", "[]", "redirect", "anyOf:object"],
    keys: ["status", "https_port", "acme_challenge"],
  },
];

/** The string lists of parse.ts: its `*_KEYS` constants and every `.map([...])` call. */
function keyListsInSource(source: string): string[][] {
  const strings = (text: string) => [...text.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  const constant = (name: string): string[] => {
    const m = source.match(new RegExp(`const ${name} = \\[([^\\]]*)\\]`));
    assert.ok(m, `parse.ts no longer defines ${name}; update this test`);
    return strings(m[1]);
  };
  const top = constant("TOP_LEVEL_KEYS");
  const actions = constant("ACTION_KEYS");
  const routeMatch = source.match(/const ROUTE_KEYS = \[([^\]]*)\]/);
  assert.ok(routeMatch, "parse.ts no longer defines ROUTE_KEYS; update this test");
  const route = [
    ...strings(routeMatch[1]),
    ...(routeMatch[1].includes("...ACTION_KEYS") ? actions : []),
  ];
  const inline = [...source.matchAll(/\.map\(\s*\[([^\]]*)\]\s*\)/g)].map((m) => strings(m[1]));
  return [top, route, ...inline];
}

Deno.test("the key lists written in this test are exactly the lists in parse.ts", async () => {
  const source = await Deno.readTextFile(PARSER_URL);
  const canonical = (lists: string[][]) => new Set(lists.map((l) => [...l].sort().join(", ")));
  const inParser = canonical(keyListsInSource(source));
  const inTest = canonical(PARSER_KEYS.map((p) => p.keys));
  const onlyInParser = [...inParser].filter((l) => !inTest.has(l));
  const onlyInTest = [...inTest].filter((l) => !inParser.has(l));
  assert.ok(
    onlyInParser.length === 0 && onlyInTest.length === 0,
    "parse.ts accepts different keys now; update PARSER_KEYS here, docs/config.schema.json and " +
      `docs/config.md.\n  key lists only in parse.ts: ${JSON.stringify(onlyInParser)}` +
      `\n  key lists only in this test: ${JSON.stringify(onlyInTest)}`,
  );
});

Deno.test("config.schema.json has exactly the keys the parser accepts, at every level", async () => {
  const validator = await loadValidator();
  for (const { where, schemaPath, keys } of PARSER_KEYS) {
    assert.deepEqual(keysAt(validator, schemaPath), [...keys].sort(), where);
  }
});

Deno.test("docs/config.md mentions every key the parser accepts", async () => {
  const docs = await Deno.readTextFile(DOCS_URL);
  for (const { where, keys } of PARSER_KEYS) {
    for (const key of keys) {
      assert.ok(
        docs.includes(`\`${key}\``) || docs.includes(`\`sniff.${key}\``),
        `${key} (${where}) is not documented`,
      );
    }
  }
});

// ---------------------------------------------------------------------------------------------
// The same defaults as defaults.ts

/** A table row's cells, split on unescaped pipes. */
function rowCells(line: string): string[] {
  return line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
}

/** The Default column (the third) of the one table row whose first cell is `key`. */
function documentedDefault(docs: string, key: string): string {
  const rows = docs.split("\n").filter((l) => l.startsWith("|") && rowCells(l)[0] === `\`${key}\``);
  assert.equal(rows.length, 1, `expected one table row for ${key} in docs/config.md`);
  return rowCells(rows[0])[2].replaceAll("`", "");
}

type Reader = (text: string) => unknown;
const asDuration: Reader = (t) => parseDuration(t);
const asSize: Reader = (t) => parseSize(t);
const asNumber: Reader = (t) => Number(t);
const asBoolean: Reader = (t) => t === "true";
const asText: Reader = (t) => t;

/** Each default: its path in DEFAULTS, its row in docs/config.md and its place in the schema. */
const DEFAULT_CASES: {
  defaults: string;
  doc: string;
  schemaPath: string[];
  read: Reader;
  value: unknown;
}[] = [
  {
    defaults: "log.level",
    doc: "level",
    schemaPath: ["log", "level"],
    read: asText,
    value: DEFAULTS.log.level,
  },
  {
    defaults: "log.format",
    doc: "format",
    schemaPath: ["log", "format"],
    read: asText,
    value: DEFAULTS.log.format,
  },
  {
    defaults: "log.access",
    doc: "access",
    schemaPath: ["log", "access"],
    read: asBoolean,
    value: DEFAULTS.log.access,
  },
  {
    defaults: "shutdownTimeout",
    doc: "shutdown_timeout",
    schemaPath: ["shutdown_timeout"],
    read: asDuration,
    value: DEFAULTS.shutdownTimeout,
  },
  {
    defaults: "http.requestHeadTimeout",
    doc: "request_head_timeout",
    schemaPath: ["http", "request_head_timeout"],
    read: asDuration,
    value: DEFAULTS.http.requestHeadTimeout,
  },
  {
    defaults: "http.keepaliveTimeout",
    doc: "keepalive_timeout",
    schemaPath: ["http", "keepalive_timeout"],
    read: asDuration,
    value: DEFAULTS.http.keepaliveTimeout,
  },
  {
    defaults: "http.maxHeadSize",
    doc: "max_head_size",
    schemaPath: ["http", "max_head_size"],
    read: asSize,
    value: DEFAULTS.http.maxHeadSize,
  },
  {
    defaults: "http.maxHeaders",
    doc: "max_headers",
    schemaPath: ["http", "max_headers"],
    read: asNumber,
    value: DEFAULTS.http.maxHeaders,
  },
  {
    defaults: "backend.connectTimeout",
    doc: "connect_timeout",
    schemaPath: ["backends", "*", "connect_timeout"],
    read: asDuration,
    value: DEFAULTS.backend.connectTimeout,
  },
  {
    defaults: "backend.proxyProtocol",
    doc: "proxy_protocol",
    schemaPath: ["backends", "*", "proxy_protocol"],
    read: asText,
    value: DEFAULTS.backend.proxyProtocol,
  },
  {
    defaults: "listener.idleTimeout",
    doc: "idle_timeout",
    schemaPath: ["listeners", "*", "idle_timeout"],
    read: asDuration,
    value: DEFAULTS.listener.idleTimeout,
  },
  {
    defaults: "listener.sniff.timeout",
    doc: "sniff.timeout",
    schemaPath: ["listeners", "*", "sniff", "timeout"],
    read: asDuration,
    value: DEFAULTS.listener.sniff.timeout,
  },
  {
    defaults: "listener.sniff.silentAfter",
    doc: "sniff.silent_after",
    schemaPath: ["listeners", "*", "sniff", "silent_after"],
    read: asDuration,
    value: DEFAULTS.listener.sniff.silentAfter,
  },
  {
    defaults: "listener.sniff.maxHelloSize",
    doc: "sniff.max_hello_size",
    schemaPath: ["listeners", "*", "sniff", "max_hello_size"],
    read: asSize,
    value: DEFAULTS.listener.sniff.maxHelloSize,
  },
  {
    defaults: "redirect.status",
    doc: "status",
    schemaPath: ["listeners", "*", "routes", "[]", "redirect", "anyOf:object", "status"],
    read: asNumber,
    value: DEFAULTS.redirect.status,
  },
];

/** Every leaf of DEFAULTS, as dotted paths, to check that DEFAULT_CASES misses none. */
function leaves(value: unknown, prefix = ""): string[] {
  if (!isObject(value)) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
}

Deno.test("config.schema.json and docs/config.md give the defaults of defaults.ts", async () => {
  const covered = new Set(DEFAULT_CASES.map((c) => c.defaults));
  const uncovered = leaves(DEFAULTS).filter((leaf) => !covered.has(leaf));
  assert.deepEqual(uncovered, [], "defaults.ts has defaults that the schema and docs may lack");
  const validator = await loadValidator();
  const docs = await Deno.readTextFile(DOCS_URL);
  // The schema's own property may carry the default next to a $ref, so read it unresolved.
  const rawDefault = (path: string[]) => {
    const parent = schemaAt(validator, path.slice(0, -1));
    return (parent.properties as Record<string, SchemaObject>)[path.at(-1)!].default;
  };
  for (const { doc, schemaPath, read, value } of DEFAULT_CASES) {
    const inSchema = rawDefault(schemaPath);
    assert.deepEqual(read(String(inSchema)), value, `schema default of ${schemaPath.join(".")}`);
    assert.deepEqual(read(documentedDefault(docs, doc)), value, `documented default of ${doc}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Configs through the validator

Deno.test("config.example.yaml validates against config.schema.json", async () => {
  const validator = await loadValidator();
  assertValid(validator, parseYaml(await Deno.readTextFile(EXAMPLE_URL)));
});

Deno.test("config.schema.json accepts a config that sets every key", async () => {
  const text = `version: 1
log: { level: debug, format: json, access: false }
shutdown_timeout: 0
http:
  request_head_timeout: 2.5s
  keepalive_timeout: 90s
  max_head_size: 8KiB
  max_headers: 50
backends:
  vault:
    servers: ["vault.internal:8200", "[::1]:8201", "10.0.0.5:8200"]
    connect_timeout: 250ms
    proxy_protocol: v2
  acme:
    servers: "127.0.0.1:8402"
listeners:
  https:
    bind: ["0.0.0.0:8443", "[::1]:8443"]
    idle_timeout: 10m
    sniff: { timeout: 3s, silent_after: 500ms, max_hello_size: 32KiB }
    routes:
      - { name: vault, sni: [vault.example.test, "*.vault.example.test"], passthrough: vault }
      - { sni: Vault.Example.Test., alpn: [acme-tls/1], protocol: tls, forward: vault }
      - { protocol: [ssh, silent], forward: vault }
      - { protocol: http, redirect: { status: 301, https_port: 443, acme_challenge: acme } }
      - { protocol: any, reject: true }
`;
  // The parser takes it (with the warnings any real config might have) ...
  parseConfig(text);
  // ... and so does the schema.
  assertValid(await loadValidator(), parseYaml(text));
});

type Json = Record<string, unknown>;

/** A small valid config, with keys replaced or added at each level. */
function configWith(
  parts: { top?: Json; backend?: Json; listener?: Json; route?: Json } = {},
): Json {
  return {
    version: 1,
    backends: { b: { servers: ["127.0.0.1:9000"], ...parts.backend } },
    listeners: {
      l: { bind: "127.0.0.1:0", routes: [parts.route ?? { forward: "b" }], ...parts.listener },
    },
    ...parts.top,
  };
}

const ROUTE = "/listeners/l/routes/0";

Deno.test("config.schema.json refuses unknown keys, bad values and routes without one action", async () => {
  const validator = await loadValidator();
  assertValid(validator, configWith());
  const cases: [string, Json, string][] = [
    ["version 2", configWith({ top: { version: 2 } }), "/version"],
    ["an unknown top-level key", configWith({ top: { backnd: {} } }), "/backnd"],
    [
      "an unknown route key",
      configWith({ route: { sin: "a.test", forward: "b" } }),
      `${ROUTE}/sin`,
    ],
    [
      "a duration in words",
      configWith({ top: { shutdown_timeout: "5 seconds" } }),
      "/shutdown_timeout",
    ],
    [
      "a bare-number duration",
      configWith({ listener: { idle_timeout: 5 } }),
      "/listeners/l/idle_timeout",
    ],
    [
      "a size without unit",
      configWith({ top: { http: { max_head_size: "16k" } } }),
      "/http/max_head_size",
    ],
    ["too many headers", configWith({ top: { http: { max_headers: 1000 } } }), "/http/max_headers"],
    ["a host name bind", configWith({ listener: { bind: "localhost:443" } }), "/listeners/l/bind"],
    ["a bind without host", configWith({ listener: { bind: ":443" } }), "/listeners/l/bind"],
    [
      "an out-of-range port",
      configWith({ listener: { bind: "1.2.3.4:99999" } }),
      "/listeners/l/bind",
    ],
    ["an empty route list", configWith({ listener: { routes: [] } }), "/listeners/l/routes"],
    [
      "a server without port",
      configWith({ backend: { servers: ["vault"] } }),
      "/backends/b/servers",
    ],
    [
      "a server at port 0",
      configWith({ backend: { servers: "127.0.0.1:0" } }),
      "/backends/b/servers",
    ],
    ["a backend without servers", configWith({ top: { backends: { x: {} } } }), "/backends/x"],
    [
      "a bad backend name",
      configWith({ top: { backends: { "-x": { servers: "a:1" } } } }),
      "/backends/-x",
    ],
    ["a route with two actions", configWith({ route: { forward: "b", reject: true } }), ROUTE],
    ["a route with no action", configWith({ route: { name: "x" } }), ROUTE],
    ["reject: false", configWith({ route: { reject: false } }), `${ROUTE}/reject`],
    [
      '"any" in a protocol list',
      configWith({ route: { protocol: ["ssh", "any"], forward: "b" } }),
      `${ROUTE}/protocol`,
    ],
    [
      "a protocol listed twice",
      configWith({ route: { protocol: ["ssh", "ssh"], forward: "b" } }),
      `${ROUTE}/protocol`,
    ],
    [
      "a wildcard in the middle",
      configWith({ route: { sni: "a.*.test", forward: "b" } }),
      `${ROUTE}/sni`,
    ],
    ["a lone wildcard", configWith({ route: { sni: "*", forward: "b" } }), `${ROUTE}/sni`],
    [
      "an IP as a server name",
      configWith({ route: { sni: "192.0.2.1", forward: "b" } }),
      `${ROUTE}/sni`,
    ],
    ["redirect: http", configWith({ route: { redirect: "http" } }), `${ROUTE}/redirect`],
    ["a 303 redirect", configWith({ route: { redirect: { status: 303 } } }), `${ROUTE}/redirect`],
  ];
  for (const [what, config, at] of cases) {
    const failures = validator.validate(config);
    assert.ok(
      failures.some((f) => f.at === at),
      `${what}: expected a failure at ${at}, got ${JSON.stringify(failures)}`,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// The schema's patterns agree with the parser's readers

Deno.test("the duration and size patterns accept exactly what parseDuration and parseSize read", async () => {
  const validator = await loadValidator();
  const duration = validator.resolve("#/$defs/duration");
  const size = validator.resolve("#/$defs/size");
  const durations = [
    "250ms",
    "5s",
    "1.5s",
    "2m",
    "1h",
    "1d",
    "0",
    "0s",
    "5",
    "5 seconds",
    "5S",
    "-5s",
    ".5s",
    "1.s",
    "1e3ms",
    "5sec",
    "",
    "ms",
  ];
  for (const text of durations) {
    assert.equal(
      validator.validate(text, duration).length === 0,
      parseDuration(text) !== null,
      `duration ${JSON.stringify(text)}`,
    );
  }
  const sizes = [
    "512B",
    "16KiB",
    "1MiB",
    "1GiB",
    "2KB",
    "3MB",
    "1GB",
    "0",
    "1.5KiB",
    "16k",
    "16kib",
    "512",
    "1TiB",
    "16 KiB",
  ];
  for (const text of sizes) {
    assert.equal(
      validator.validate(text, size).length === 0,
      parseSize(text) !== null,
      `size ${JSON.stringify(text)}`,
    );
  }
});

Deno.test("the address patterns accept exactly what parseHostPort accepts", async () => {
  const validator = await loadValidator();
  const bind = validator.resolve("#/$defs/bindAddress");
  const server = validator.resolve("#/$defs/serverAddress");
  const samples = [
    "[::]:443",
    "0.0.0.0:443",
    "127.0.0.1:8443",
    "[::1]:0",
    "127.0.0.1:0",
    "[2001:db8::1]:65535",
    "localhost:443",
    "vault.internal:8200",
    "Vault.Internal:8200",
    "_srv.x:1",
    ":443",
    "*:443",
    "[::1]443",
    "::1:443",
    "1.2.3.4:99999",
    "1.2.3.4:65536",
    "1.2.3.4",
    "vault",
    "1.2.3.4:",
    "[1.2.3.4]:80",
    "999.1.1.1:80",
    "01.2.3.4:80",
    "bad_host!:80",
    "a..b:80",
    "-x:80",
  ];
  for (const text of samples) {
    const asBind = parseHostPort(text, { bindOnly: true, allowPortZero: true });
    assert.equal(
      validator.validate(text, bind).length === 0,
      !("problem" in asBind),
      `bind ${text}`,
    );
    const asServer = parseHostPort(text, { bindOnly: false, allowPortZero: false });
    assert.equal(
      validator.validate(text, server).length === 0,
      !("problem" in asServer),
      `server ${text}`,
    );
  }
});
