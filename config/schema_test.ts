/**
 * docs/config.schema.json (for editors) and docs/config.md against the parser, the authority:
 * the same keys at every level, the same defaults, the same value shapes.
 * Long because it holds, as data, one entry per key: the table of documented defaults and a
 * config that sets every key, plus the values the schema must refuse.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { parse as parseYaml } from "yaml";
import { parseHostPort } from "./address.ts";
import { DEFAULTS } from "./defaults.ts";
import { ConfigError } from "./errors.ts";
import { CONFIG_KEYS, parseConfig } from "./parse.ts";
import { parseDuration, parseSize } from "./units.ts";
import { CidrSet } from "../routing/cidr.ts";
import { normalizePath } from "../routing/path.ts";

// docs/config.schema.json is for editors; parse.ts is the authority. These tests keep the two
// (and docs/config.md) describing the same keys, defaults and value shapes.

const SCHEMA_URL = new URL("../docs/config.schema.json", import.meta.url);
const DOCS_URL = new URL("../docs/config.md", import.meta.url);
const EXAMPLE_URL = new URL("../config.example.yaml", import.meta.url);

type SchemaObject = { [keyword: string]: unknown };

// ---------------------------------------------------------------------------------------------
// The schema is checked by Ajv, a reference implementation of JSON Schema 2020-12, in strict mode:
// an unknown keyword, a keyword that would be ignored, or a type keyword without its type is an
// error when the schema compiles, so the schema cannot quietly hold a rule that does nothing.

/** The schema's id inside Ajv; subschemas are compiled as `$ref`s below it. */
const SCHEMA_ID = "edgemux-config";

interface Failure {
  /** Where in the instance, as a JSON pointer (keys unescaped). */
  at: string;
  message: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A JSON pointer's segments unescaped (RFC 6901 §4), joined with "/" again. */
function unescapePointer(pointer: string): string {
  return pointer.split("/").map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~")).join("/");
}

/** Where an Ajv error points: the key itself for unknown keys and bad key names. */
function failureOf(e: ErrorObject, prefix: string): Failure {
  const params = e.params as Record<string, unknown>;
  let at = unescapePointer(e.instancePath);
  if (e.keyword === "additionalProperties") at += `/${params.additionalProperty}`;
  else if (typeof params.propertyName === "string") at += `/${params.propertyName}`;
  return { at: `${prefix}${at}`, message: `${e.message ?? e.keyword} (${e.schemaPath})` };
}

class Validator {
  readonly #ajv: Ajv2020;
  /** Each subschema object of the root, by identity, to its JSON pointer. */
  readonly #pointers = new Map<SchemaObject, string>();
  readonly #compiled = new Map<string, ValidateFunction>();

  constructor(readonly root: SchemaObject) {
    // strictRequired stays off: Ajv does not see a required key as defined when `properties`
    // is on the parent and the `required` inside one of its anyOf options (how the schema says
    // "at least one of directory, files, development"), a limitation Ajv's maintainers
    // acknowledge. Union types (`type: [string, array]`) are standard JSON Schema that strict
    // mode wants allowed by name. Every other strict check is on.
    this.#ajv = new Ajv2020({
      strict: true,
      strictRequired: false,
      allowUnionTypes: true,
      allErrors: true,
    });
    this.#ajv.addSchema(root, SCHEMA_ID);
    for (const [at, sub] of subschemas(root)) this.#pointers.set(sub, at.slice(1));
  }

  /** Compiles the whole schema (throws on anything strict mode refuses). */
  compileAll(): void {
    this.#compile(this.root);
  }

  #compile(schema: SchemaObject): ValidateFunction {
    const pointer = this.#pointers.get(schema);
    if (pointer === undefined) throw new Error("not a subschema of config.schema.json");
    let fn = this.#compiled.get(pointer);
    if (fn === undefined) {
      fn = pointer === ""
        ? this.#ajv.getSchema(SCHEMA_ID)!
        : this.#ajv.compile({ $ref: `${SCHEMA_ID}#${pointer}` });
      this.#compiled.set(pointer, fn);
    }
    return fn;
  }

  /** Why `value` does not fit `schema` (a subschema of the root); empty when it fits. */
  validate(value: unknown, schema: SchemaObject = this.root, at = ""): Failure[] {
    const fn = this.#compile(schema);
    if (fn(value)) return [];
    return (fn.errors ?? []).map((e) => failureOf(e, at));
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

function resolveAll(validator: Validator, schema: SchemaObject): SchemaObject {
  let node = schema;
  while (typeof node.$ref === "string") node = validator.resolve(node.$ref);
  return node;
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
      // The option of that type, looking through $refs (`anyOf: [name, { ...map }]`).
      const options = (node.anyOf as SchemaObject[]).map((o) => resolveAll(validator, o));
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

Deno.test("config.schema.json is JSON Schema 2020-12 that Ajv compiles in strict mode", async () => {
  const schema = await loadSchema();
  assert.equal(schema.$schema, "https://json-schema.org/draft/2020-12/schema");
  const validator = new Validator(schema);
  validator.compileAll();
  for (const [at, s] of subschemas(schema)) {
    if (typeof s.$ref === "string") validator.resolve(s.$ref);
    // Ajv compiles patterns with the u flag, as the schema's readers (editors) do.
    if (typeof s.pattern === "string") new RegExp(s.pattern, "u");
    assert.ok(at.startsWith("#"));
  }
  // Strict mode means something: an unknown keyword does not compile.
  const typo = structuredClone(schema);
  (typo.properties as Record<string, SchemaObject>).version.minimun = 1;
  assert.throws(() => new Validator(typo).compileAll(), /strict mode: unknown keyword: "minimun"/);
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

const BACKEND = ["backends", "*"];
const LISTENER = ["listeners", "*"];
const ROUTE_AT = [...LISTENER, "routes", "[]"];
const EDGE_HTTP_ROUTE = [...ROUTE_AT, "edge", "anyOf:object", "http", "[]"];

/**
 * Where each of parse.ts's key lists is described in the schema. A `Record` over the lists'
 * names, so a list added to CONFIG_KEYS fails type checking here until it has a place.
 */
const KEY_PLACES: Record<keyof typeof CONFIG_KEYS, string[][]> = {
  top: [[]],
  log: [["log"]],
  admin: [["admin"]],
  http: [["http"]],
  limits: [["limits"]],
  perClient: [["limits", "per_client"]],
  certificates: [["certificates"]],
  certificateFile: [["certificates", "files", "[]"]],
  development: [["certificates", "development", "anyOf:object"]],
  acme: [["certificates", "acme"]],
  backend: [BACKEND],
  server: [[...BACKEND, "servers", "anyOf:object"]],
  backendTls: [[...BACKEND, "tls", "anyOf:object"]],
  healthCheck: [[...BACKEND, "health_check"]],
  passiveHealth: [[...BACKEND, "passive_health"]],
  listener: [LISTENER],
  listenerProxyProtocol: [[...LISTENER, "proxy_protocol"]],
  sniff: [[...LISTENER, "sniff"]],
  route: [ROUTE_AT],
  redirect: [[...ROUTE_AT, "redirect", "anyOf:object"]],
  terminate: [
    [...ROUTE_AT, "edge", "anyOf:object"],
    [...ROUTE_AT, "reencrypt", "anyOf:object"],
  ],
  httpRoute: [EDGE_HTTP_ROUTE, [...ROUTE_AT, "reencrypt", "anyOf:object", "http", "[]"]],
  httpRedirect: [[...EDGE_HTTP_ROUTE, "redirect", "anyOf:object"]],
  headerOps: [
    [...EDGE_HTTP_ROUTE, "request_headers"],
    [...EDGE_HTTP_ROUTE, "response_headers"],
  ],
};

/** The keys of a route that match connections; every other route key is an action. */
const ROUTE_MATCH_KEYS = ["name", "protocol", "sni", "alpn"];

Deno.test("CONFIG_KEYS is frozen, and this test places each of its lists in the schema", () => {
  assert.ok(Object.isFrozen(CONFIG_KEYS));
  assert.deepEqual(Object.keys(KEY_PLACES).sort(), Object.keys(CONFIG_KEYS).sort());
  for (const [name, keys] of Object.entries(CONFIG_KEYS)) {
    assert.equal(new Set(keys).size, keys.length, `${name} lists a key twice`);
  }
});

Deno.test("config.schema.json has exactly the keys the parser accepts, at every level", async () => {
  const validator = await loadValidator();
  for (const [name, places] of Object.entries(KEY_PLACES)) {
    const keys = CONFIG_KEYS[name as keyof typeof CONFIG_KEYS];
    for (const place of places) {
      assert.deepEqual(keysAt(validator, place), [...keys].sort(), `${name} at ${place.join(".")}`);
    }
  }
});

Deno.test("config.schema.json asks for exactly one of the parser's route actions", async () => {
  const actions = CONFIG_KEYS.route.filter((k) => !ROUTE_MATCH_KEYS.includes(k));
  // The parser's own word on which keys are actions: the fix for a route without one.
  const issues = issuesOfText(`version: 1
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - name: x
`);
  const named = [...issues[0].fix.matchAll(/"([a-z_]+)"/g)].map((m) => m[1]);
  assert.deepEqual([...named].sort(), [...actions].sort(), issues[0].fix);
  const route = schemaAt(await loadValidator(), ROUTE_AT);
  assert.deepEqual(route.oneOf, actions.map((a) => ({ required: [a] })));
});

Deno.test("docs/config.md mentions every key the parser accepts", async () => {
  const docs = await Deno.readTextFile(DOCS_URL);
  for (const [name, keys] of Object.entries(CONFIG_KEYS)) {
    for (const key of keys) {
      // As `key`, or qualified as in a table row: `sniff.timeout`, `health_check.rise`.
      const mention = new RegExp(`\`(?:[a-z_]+\\.)*${key}\``);
      assert.match(docs, mention, `${key} (${name}) is not documented`);
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
/** `none` (or an empty list) is an empty list; otherwise comma-separated items. */
const asList: Reader = (t) => t === "none" || t === "" ? [] : t.split(",").map((s) => s.trim());
/** `none` is null. */
const asOptionalNumber: Reader = (t) => t === "none" ? null : Number(t);
/** `10 for forward backends, else none` is 10: a default that depends on how a key is used. */
const asLeadingNumber: Reader = (t) => Number(t.split(" ")[0]);
/** `200-399` is [200, 399]. */
const asStatusRange: Reader = (t) => t.split("-").map(Number);
/** `2 × rate` is 2. */
const asFactor: Reader = (t) => Number(t.split("×")[0]);

/**
 * Each default: its leaf in DEFAULTS, its row in docs/config.md and its place in the schema
 * (null where no single value can stand there, such as a burst that follows the rate).
 */
const DEFAULT_CASES: {
  defaults: string;
  doc: string;
  schemaPath: string[] | null;
  read: Reader;
}[] = [
  { defaults: "log.level", doc: "level", schemaPath: ["log", "level"], read: asText },
  { defaults: "log.format", doc: "format", schemaPath: ["log", "format"], read: asText },
  { defaults: "log.access", doc: "access", schemaPath: ["log", "access"], read: asBoolean },
  {
    defaults: "shutdownTimeout",
    doc: "shutdown_timeout",
    schemaPath: ["shutdown_timeout"],
    read: asDuration,
  },
  {
    defaults: "http.requestHeadTimeout",
    doc: "request_head_timeout",
    schemaPath: ["http", "request_head_timeout"],
    read: asDuration,
  },
  {
    defaults: "http.keepaliveTimeout",
    doc: "keepalive_timeout",
    schemaPath: ["http", "keepalive_timeout"],
    read: asDuration,
  },
  {
    defaults: "http.maxHeadSize",
    doc: "max_head_size",
    schemaPath: ["http", "max_head_size"],
    read: asSize,
  },
  {
    defaults: "http.maxHeaders",
    doc: "max_headers",
    schemaPath: ["http", "max_headers"],
    read: asNumber,
  },
  {
    defaults: "http.trustedProxies",
    doc: "trusted_proxies",
    schemaPath: ["http", "trusted_proxies"],
    read: asList,
  },
  {
    defaults: "http.pathNormalization",
    doc: "path_normalization",
    schemaPath: ["http", "path_normalization"],
    read: asText,
  },
  {
    defaults: "certificates.watchInterval",
    doc: "watch_interval",
    schemaPath: ["certificates", "watch_interval"],
    read: asDuration,
  },
  {
    defaults: "certificates.developmentDirectory",
    doc: "development.directory",
    schemaPath: ["certificates", "development", "anyOf:object", "directory"],
    read: asText,
  },
  {
    defaults: "acme.directory",
    doc: "acme.directory",
    schemaPath: ["certificates", "acme", "directory"],
    read: asText,
  },
  {
    defaults: "acme.challenges",
    doc: "acme.challenges",
    schemaPath: ["certificates", "acme", "challenges"],
    read: asList,
  },
  {
    defaults: "acme.keyType",
    doc: "acme.key_type",
    schemaPath: ["certificates", "acme", "key_type"],
    read: asText,
  },
  {
    defaults: "acme.stateDirectory",
    doc: "acme.state_directory",
    schemaPath: ["certificates", "acme", "state_directory"],
    read: asText,
  },
  {
    defaults: "acme.retryInterval",
    doc: "acme.retry_interval",
    schemaPath: ["certificates", "acme", "retry_interval"],
    read: asDuration,
  },
  {
    defaults: "backend.connectTimeout",
    doc: "connect_timeout",
    schemaPath: [...BACKEND, "connect_timeout"],
    read: asDuration,
  },
  {
    defaults: "backend.proxyProtocol",
    doc: "proxy_protocol",
    schemaPath: [...BACKEND, "proxy_protocol"],
    read: asText,
  },
  {
    defaults: "backend.responseTimeout",
    doc: "response_timeout",
    schemaPath: [...BACKEND, "response_timeout"],
    read: asDuration,
  },
  {
    defaults: "backend.balance",
    doc: "balance",
    schemaPath: [...BACKEND, "balance"],
    read: asText,
  },
  {
    defaults: "backend.retries",
    doc: "retries",
    schemaPath: [...BACKEND, "retries"],
    read: asNumber,
  },
  {
    defaults: "backend.forwardMaxConnectionsPerClient",
    doc: "max_connections_per_client",
    schemaPath: null,
    read: asLeadingNumber,
  },
  {
    defaults: "backend.weight",
    doc: "weight",
    schemaPath: [...BACKEND, "servers", "anyOf:object", "weight"],
    read: asNumber,
  },
  {
    defaults: "backend.passive.failures",
    doc: "passive_health.failures",
    schemaPath: [...BACKEND, "passive_health", "failures"],
    read: asNumber,
  },
  {
    defaults: "backend.passive.backoff",
    doc: "passive_health.backoff",
    schemaPath: [...BACKEND, "passive_health", "backoff"],
    read: asDuration,
  },
  {
    defaults: "backend.passive.on5xx",
    doc: "passive_health.on_5xx",
    schemaPath: [...BACKEND, "passive_health", "on_5xx"],
    read: asBoolean,
  },
  {
    defaults: "backend.healthCheck.interval",
    doc: "health_check.interval",
    schemaPath: [...BACKEND, "health_check", "interval"],
    read: asDuration,
  },
  {
    defaults: "backend.healthCheck.timeout",
    doc: "health_check.timeout",
    schemaPath: [...BACKEND, "health_check", "timeout"],
    read: asDuration,
  },
  {
    defaults: "backend.healthCheck.rise",
    doc: "health_check.rise",
    schemaPath: [...BACKEND, "health_check", "rise"],
    read: asNumber,
  },
  {
    defaults: "backend.healthCheck.fall",
    doc: "health_check.fall",
    schemaPath: [...BACKEND, "health_check", "fall"],
    read: asNumber,
  },
  {
    defaults: "backend.healthCheck.httpMethod",
    doc: "health_check.method",
    schemaPath: [...BACKEND, "health_check", "method"],
    read: asText,
  },
  {
    defaults: "backend.healthCheck.httpPath",
    doc: "health_check.path",
    schemaPath: [...BACKEND, "health_check", "path"],
    read: asText,
  },
  {
    defaults: "backend.healthCheck.expect",
    doc: "health_check.expect_status",
    schemaPath: [...BACKEND, "health_check", "expect_status"],
    read: asStatusRange,
  },
  {
    defaults: "limits.maxConnections",
    doc: "limits.max_connections",
    schemaPath: ["limits", "max_connections"],
    read: asNumber,
  },
  {
    defaults: "limits.perClientConnections",
    doc: "per_client.max_connections",
    schemaPath: ["limits", "per_client", "max_connections"],
    read: asNumber,
  },
  {
    defaults: "limits.perClientRate",
    doc: "per_client.rate",
    schemaPath: null,
    read: asOptionalNumber,
  },
  {
    defaults: "limits.perClientBurstFactor",
    doc: "per_client.burst",
    schemaPath: null,
    read: asFactor,
  },
  {
    defaults: "listener.idleTimeout",
    doc: "idle_timeout",
    schemaPath: [...LISTENER, "idle_timeout"],
    read: asDuration,
  },
  {
    defaults: "listener.proxyProtocolTimeout",
    doc: "proxy_protocol.timeout",
    schemaPath: [...LISTENER, "proxy_protocol", "timeout"],
    read: asDuration,
  },
  {
    defaults: "listener.sniff.timeout",
    doc: "sniff.timeout",
    schemaPath: [...LISTENER, "sniff", "timeout"],
    read: asDuration,
  },
  {
    defaults: "listener.sniff.silentAfter",
    doc: "sniff.silent_after",
    schemaPath: [...LISTENER, "sniff", "silent_after"],
    read: asDuration,
  },
  {
    defaults: "listener.sniff.maxHelloSize",
    doc: "sniff.max_hello_size",
    schemaPath: [...LISTENER, "sniff", "max_hello_size"],
    read: asSize,
  },
  {
    defaults: "redirect.status",
    doc: "status",
    schemaPath: [...ROUTE_AT, "redirect", "anyOf:object", "status"],
    read: asNumber,
  },
  {
    defaults: "httpRedirect.status",
    doc: "redirect.status",
    schemaPath: [...EDGE_HTTP_ROUTE, "redirect", "anyOf:object", "status"],
    read: asNumber,
  },
];

/** Every leaf of DEFAULTS, as dotted paths, to check that DEFAULT_CASES misses none. */
function leaves(value: unknown, prefix = ""): string[] {
  if (!isObject(value)) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
}

/** The value at a dotted path of DEFAULTS. */
function defaultAt(path: string): unknown {
  let node: unknown = DEFAULTS;
  for (const part of path.split(".")) node = isObject(node) ? node[part] : undefined;
  return node;
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
  for (const { defaults, doc, schemaPath, read } of DEFAULT_CASES) {
    const value = defaultAt(defaults);
    if (schemaPath !== null) {
      const inSchema = rawDefault(schemaPath);
      assert.deepEqual(read(String(inSchema)), value, `schema default of ${schemaPath.join(".")}`);
    }
    assert.deepEqual(read(documentedDefault(docs, doc)), value, `documented default of ${doc}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Configs through the validator

Deno.test("config.example.yaml validates against config.schema.json", async () => {
  const validator = await loadValidator();
  assertValid(validator, parseYaml(await Deno.readTextFile(EXAMPLE_URL)));
});

/** Every map key used anywhere in a parsed YAML value. */
function keysUsed(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => keysUsed(v, out));
  else if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      out.add(k);
      keysUsed(v, out);
    }
  }
  return out;
}

Deno.test("config.schema.json accepts a config that sets every key", async () => {
  const text = `version: 1
log: { level: debug, format: json, access: false }
shutdown_timeout: 0
workers: auto
watch_config: true
admin: { bind: "127.0.0.1:9901", hosts: [admin.example.test], token_file: admin-token }
http:
  request_head_timeout: 2.5s
  keepalive_timeout: 90s
  max_head_size: 8KiB
  max_headers: 50
  trusted_proxies: ["10.0.0.0/8", "::1", "::ffff:192.0.2.0/120"]
  path_normalization: pass
limits:
  max_connections: 5000
  per_client: { max_connections: 100, rate: 20, burst: 50 }
certificates:
  directory: [certs, /etc/letsencrypt/live]
  files:
    - { cert: a/fullchain.pem, key: a/privkey.pem }
    - { cert: b.pem }
  default: App.Example.Test.
  development: { directory: dev-certs }
  watch_interval: 0
  acme:
    email: admin@example.test
    directory: https://acme-staging-v02.api.letsencrypt.org/directory
    ca: acme-ca.pem
    challenges: [tls-alpn-01, http-01]
    key_type: rsa-2048
    state_directory: acme-state
    retry_interval: 30s
backends:
  vault:
    servers: ["vault.internal:8200", "[::1]:8201", "10.0.0.5:8200"]
    connect_timeout: 250ms
    proxy_protocol: v2
    health_check: { type: tls, interval: 10s, timeout: 1s, rise: 1, fall: 2, ca: ca.pem, server_name: vault.internal }
  acme:
    servers: "127.0.0.1:8402"
  app:
    servers:
      - { address: "127.0.0.1:9001", weight: 3, max_connections: 100 }
      - "127.0.0.1:9002"
      - { address: "127.0.0.1:9003", backup: true }
    balance: least_conn
    retries: 1
    response_timeout: 30s
    health_check:
      type: http
      method: HEAD
      path: /healthz
      host: app.internal
      expect_status: 2xx
    passive_health: { failures: 5, backoff: 1m, on_5xx: true }
  grafana:
    servers: ["127.0.0.1:3443"]
    tls: { ca: ca.pem, server_name: Grafana.Internal, cert: client.pem, key: client.key }
  secure:
    servers: ["127.0.0.1:3444"]
    tls: true
  db:
    servers: ["127.0.0.1:5432"]
    max_connections_per_client: 20
listeners:
  https:
    bind: ["0.0.0.0:8443", "[::1]:8443"]
    idle_timeout: 10m
    max_connections: 1000
    proxy_protocol: { accept_from: [10.0.0.0/8, "fd00::/8"], timeout: 2s }
    sniff: { timeout: 3s, silent_after: 500ms, max_hello_size: 32KiB }
    routes:
      - { name: vault, sni: [vault.example.test, "*.vault.example.test"], passthrough: vault }
      - { sni: Vault.Example.Test., alpn: [acme-tls/1], protocol: tls, forward: vault }
      - name: app
        sni: [app.example.test, "*.apps.example.test"]
        edge:
          http:
            - name: api
              host: [api.apps.example.test, "*.apps.example.test"]
              path_prefix: /api/
              strip_prefix: true
              backend: app
              request_headers:
                set: { X-Env: prod, X-Count: 3 }
                add: { Via: edgemux }
                remove: [X-Debug]
              response_headers: { remove: Server }
            - { path_prefix: /v1, rewrite_prefix: /v2, backend: app }
            - { path: /old, redirect: "https://new.example.test/" }
            - { path: /moved, redirect: { to: /new, status: 301 } }
            - { backend: app }
      - { name: grafana, sni: grafana.example.test, reencrypt: grafana }
      - { name: secure, sni: secure.example.test, reencrypt: { http: [{ backend: secure }] } }
      - { name: db, sni: db.example.test, edge: { tcp: db } }
      - { name: secure-tcp, sni: secure-tcp.example.test, reencrypt: { tcp: secure } }
      - { protocol: [ssh, silent], forward: vault }
      - { protocol: http, redirect: { status: 301, https_port: 443, acme_challenge: acme } }
      - { protocol: any, reject: true }
`;
  // The parser takes it (with the warnings any real config might have) ...
  parseConfig(text);
  // ... and so does the schema ...
  const value = parseYaml(text);
  assertValid(await loadValidator(), value);
  // ... and it really does set every key the parser knows.
  const used = keysUsed(value);
  // token and token_file exclude each other: the inline token is exercised on its own.
  const inline = `version: 1
admin: { bind: "127.0.0.1:9901", token: 0123456789abcdef0123 }
listeners:
  l: { bind: "127.0.0.1:8080", routes: [{ reject: true }] }
`;
  parseConfig(inline);
  assertValid(await loadValidator(), parseYaml(inline));
  keysUsed(parseYaml(inline), used);
  const unused = Object.values(CONFIG_KEYS).flat().filter((k) => !used.has(k));
  assert.deepEqual(unused, [], "keys this config does not exercise");
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

/** A route that terminates TLS and sends requests through one HTTP route. */
function edgeWith(httpRoute: Json): Json {
  return { sni: "a.example.test", edge: { http: [{ backend: "b", ...httpRoute }] } };
}

const ROUTE = "/listeners/l/routes/0";

Deno.test("config.schema.json refuses unknown keys, bad values and routes without one action", async () => {
  const validator = await loadValidator();
  assertValid(validator, configWith());
  assertValid(validator, configWith({ route: edgeWith({}) }));
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
    [
      "a trusted proxy that is not an address",
      configWith({ top: { http: { trusted_proxies: ["localhost"] } } }),
      "/http/trusted_proxies",
    ],
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
    [
      "a response timeout without unit",
      configWith({ backend: { response_timeout: 5 } }),
      "/backends/b/response_timeout",
    ],
    ["tls: false", configWith({ backend: { tls: false } }), "/backends/b/tls"],
    [
      "an unknown tls key",
      configWith({ backend: { tls: { ca_file: "ca.pem" } } }),
      "/backends/b/tls",
    ],
    [
      "a wildcard tls server_name",
      configWith({ backend: { tls: { server_name: "*.internal" } } }),
      "/backends/b/tls",
    ],
    [
      "an unknown health check type",
      configWith({ backend: { health_check: { type: "ping" } } }),
      "/backends/b/health_check/type",
    ],
    [
      "certificates without a source",
      configWith({ top: { certificates: { watch_interval: "1m" } } }),
      "/certificates",
    ],
    [
      "a wildcard certificates.default",
      configWith({ top: { certificates: { development: true, default: "*.example.test" } } }),
      "/certificates/default",
    ],
    [
      "development as a word",
      configWith({ top: { certificates: { development: "yes" } } }),
      "/certificates/development",
    ],
    [
      "development as a map without directory",
      configWith({ top: { certificates: { development: {} } } }),
      "/certificates/development",
    ],
    [
      "a certificate file without cert",
      configWith({ top: { certificates: { files: [{ key: "a.key" }] } } }),
      "/certificates/files/0",
    ],
    ["no workers", configWith({ top: { workers: 0 } }), "/workers"],
    ['workers: "all"', configWith({ top: { workers: "all" } }), "/workers"],
    ["an admin listener without bind", configWith({ top: { admin: {} } }), "/admin"],
    [
      "an admin listener on a host name",
      configWith({ top: { admin: { bind: "localhost:9901" } } }),
      "/admin/bind",
    ],
    ["a route with two actions", configWith({ route: { forward: "b", reject: true } }), ROUTE],
    [
      "edge and passthrough in one route",
      configWith({ route: { edge: "b", passthrough: "b" } }),
      ROUTE,
    ],
    ["a route with no action", configWith({ route: { name: "x" } }), ROUTE],
    ["reject: false", configWith({ route: { reject: false } }), `${ROUTE}/reject`],
    [
      "edge with both http and tcp",
      configWith({ route: { edge: { http: [{ backend: "b" }], tcp: "b" } } }),
      `${ROUTE}/edge`,
    ],
    ["edge with neither http nor tcp", configWith({ route: { edge: {} } }), `${ROUTE}/edge`],
    ["edge with no HTTP routes", configWith({ route: { edge: { http: [] } } }), `${ROUTE}/edge`],
    [
      "an HTTP route with backend and redirect",
      configWith({ route: edgeWith({ redirect: "/x" }) }),
      `${ROUTE}/edge`,
    ],
    [
      "a path not in normal form",
      configWith({ route: edgeWith({ path: "/a/../b" }) }),
      `${ROUTE}/edge`,
    ],
    [
      "a path with a query",
      configWith({ route: edgeWith({ path_prefix: "/a?b" }) }),
      `${ROUTE}/edge`,
    ],
    [
      "a rewrite_prefix that is not a path",
      configWith({ route: edgeWith({ path_prefix: "/a", rewrite_prefix: "b" }) }),
      `${ROUTE}/edge`,
    ],
    [
      "a reserved header name",
      configWith({ route: edgeWith({ request_headers: { set: { Host: "x" } } }) }),
      `${ROUTE}/edge`,
    ],
    [
      "a header value with a newline",
      configWith({ route: edgeWith({ response_headers: { add: { "X-A": "a\nb" } } }) }),
      `${ROUTE}/edge`,
    ],
    [
      "an HTTP redirect status that is no redirect",
      configWith({ route: edgeWith({ backend: undefined, redirect: { to: "/", status: 304 } }) }),
      `${ROUTE}/edge`,
    ],
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
    const failures = validator.validate(JSON.parse(JSON.stringify(config)));
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

/** The issues of a config text the parser refuses; none when it accepts it. */
function issuesOfText(text: string): ConfigError["issues"] {
  try {
    parseConfig(text);
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
}

/**
 * Whether the parser takes a value in one place of a config that is otherwise valid. Any error
 * elsewhere fails the test, so a refusal always means the value itself.
 */
function parserTakes(text: string, path: string): boolean {
  const errors = issuesOfText(text).filter((i) => i.severity === "error");
  for (const e of errors) assert.ok(e.path.startsWith(path), JSON.stringify(e));
  return errors.length === 0;
}

/** A config with one edge route whose one HTTP route is `httpRoute` (flow-style YAML). */
function withHttpRoute(httpRoute: string): string {
  return `version: 1
certificates: { development: true }
backends:
  b: { servers: ["127.0.0.1:9000"] }
listeners:
  l:
    bind: "127.0.0.1:0"
    routes:
      - sni: a.example.test
        edge:
          http:
            - ${httpRoute}
`;
}

const HTTP_ROUTE_PATH = "listeners.l.routes[0].edge.http[0]";

Deno.test("the request path pattern accepts exactly the paths the parser takes", async () => {
  const validator = await loadValidator();
  const pattern = validator.resolve("#/$defs/requestPath");
  const samples = [
    "/",
    "/api",
    "/api/",
    "//x",
    "/a/.b",
    "/a/b.",
    "/...",
    "/.well-known/acme-challenge/",
    "/~user",
    "/ü",
    "/%C3%BC",
    "/%2F",
    "/%20",
    "/%40",
    "/%5B",
    "/%7F",
    "/a/../b",
    "/a/./b",
    "/.",
    "/..",
    "/a/..",
    "/a/../",
    "/%7E",
    "/%7e",
    "/%41",
    "/%5F",
    "/%2f",
    "/%c3%bc",
    "/%2e%2e/x",
    "/%00",
    "/%",
    "/%4",
    "/%GG",
    "/a b",
    "/a\tb",
    "/a\u00a0b",
    "/a?b",
    "/a#b",
    "api",
    "",
    "/a//b",
    "/a//",
    "//",
    "/a\\b",
    "/a%5C",
    "/a%5c",
    "/a%0A",
    "/a%1F",
    "/a/..;/b",
    "/.;x",
    "/...;",
    "/a;b/",
    "/%3B",
    "/%25",
    "/%C0%AE",
  ];
  for (const path of samples) {
    const takes = parserTakes(
      withHttpRoute(`{ backend: b, path_prefix: ${JSON.stringify(path)} }`),
      `${HTTP_ROUTE_PATH}.path_prefix`,
    );
    assert.equal(validator.validate(path, pattern).length === 0, takes, JSON.stringify(path));
  }
  // The parser's rule, restated: a path is taken when normalising leaves it as it is.
  assert.equal(normalizePath("/a/../b"), "/b");
});

Deno.test("the header name pattern accepts exactly the names the parser takes", async () => {
  const validator = await loadValidator();
  const pattern = validator.resolve("#/$defs/headerName");
  const samples = [
    "X-Forwarded-Prefix",
    "x-env",
    "X_Under",
    "~!#$%&'*+.^_`|",
    "Hostname",
    "X-Host",
    "X-TE",
    "Trailers",
    "Host",
    "HOST",
    "content-length",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Keep-Alive",
    "Upgrade",
    "te",
    "TE",
    "Trailer",
    "Proxy-Connection",
    "bad name",
    "a:b",
    "é",
    "",
  ];
  for (const name of samples) {
    const takes = parserTakes(
      withHttpRoute(`{ backend: b, request_headers: { remove: [${JSON.stringify(name)}] } }`),
      `${HTTP_ROUTE_PATH}.request_headers.remove`,
    );
    assert.equal(validator.validate(name, pattern).length === 0, takes, JSON.stringify(name));
  }
});

Deno.test("the host name pattern accepts exactly the names certificates.default takes", async () => {
  const validator = await loadValidator();
  const pattern = validator.resolve("#/$defs/hostName");
  const samples = [
    "example.test",
    "App.Example.Test.",
    "xn--bcher-kva.test",
    "a_b.test",
    "localhost",
    "bücher.example.test",
    "*.example.test",
    "a.*.test",
    "*",
    "10.0.0.1",
    "a..b",
    "-a.test",
    "a-.test",
    "",
  ];
  for (const name of samples) {
    const takes = parserTakes(
      `version: 1
certificates: { development: true, default: ${JSON.stringify(name)} }
listeners:
  l: { bind: "127.0.0.1:0", routes: [{ reject: true }] }
`,
      "certificates.default",
    );
    assert.equal(validator.validate(name, pattern).length === 0, takes, JSON.stringify(name));
  }
});

Deno.test("the server name pattern accepts exactly the names a route's sni takes", async () => {
  const validator = await loadValidator();
  const pattern = validator.resolve("#/$defs/serverName");
  const samples = [
    "example.test",
    "App.Example.Test.",
    "xn--bcher-kva.test",
    "bücher.example.test",
    "*.bücher.test",
    "*.example.test",
    "**.example.test",
    "**.a.example.test",
    "***.example.test",
    "*.**.example.test",
    "a.**.test",
    ".example.test",
    "a.*.test",
    "*",
    "**",
    "10.0.0.1",
    "a..b",
    "-a.test",
    "",
  ];
  for (const name of samples) {
    const takes = parserTakes(
      `version: 1
backends: { b: { servers: ["127.0.0.1:1"] } }
listeners:
  l: { bind: "127.0.0.1:0", routes: [{ sni: ${JSON.stringify(name)}, passthrough: b }] }
`,
      "listeners.l.routes[0].sni",
    );
    assert.equal(validator.validate(name, pattern).length === 0, takes, JSON.stringify(name));
  }
});

Deno.test("the CIDR pattern takes every entry CidrSet takes, and refuses what is no address", async () => {
  const validator = await loadValidator();
  const pattern = validator.resolve("#/$defs/cidr");
  const valid = [
    "10.0.0.0/8",
    "192.0.2.7",
    "192.0.2.7/32",
    "0.0.0.0/0",
    "::1",
    "::/0",
    "fd00::/8",
    "2001:db8::1/128",
    "::ffff:10.0.0.0/104",
    "::ffff:192.0.2.7",
  ];
  for (const entry of valid) {
    new CidrSet([entry]);
    assert.deepEqual(validator.validate(entry, pattern), [], entry);
  }
  // Host bits beyond the prefix ("10.0.0.1/8") need arithmetic: only `edgemux check` sees them.
  const invalid = ["localhost", "10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0.0/8/8", "1.2.3", ""];
  for (const entry of invalid) {
    assert.throws(() => new CidrSet([entry]), RangeError, entry);
    assert.notDeepEqual(validator.validate(entry, pattern), [], entry);
  }
});
