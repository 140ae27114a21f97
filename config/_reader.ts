/**
 * Typed reading of YAML nodes that remembers where every value came from. Each read either
 * returns a value or records an issue (with file, line, column and key path) and returns
 * `undefined`, so one pass over a config reports every problem instead of stopping at the first.
 *
 * @module
 */

import {
  type Alias,
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  type Node,
  parseAllDocuments,
  visit,
} from "yaml";
import type { Document } from "yaml";
import process from "node:process";
import type { ConfigIssue, SourcePosition } from "./errors.ts";
import { DURATION_HINT, parseDuration, parseSize, SIZE_HINT } from "./units.ts";

/** One config file's text and its line index. */
export class Source {
  /**
   * Offsets where each line starts, built from the text itself (yaml's own line counter misses
   * newlines inside tokens it could not parse, and then points at the wrong line).
   */
  readonly #lineStarts: number[] = [0];
  /** Anchors by name, each with where it is defined, for resolving aliases in one lookup. */
  #anchors: Map<string, { offset: number; node: Node }[]> | null = null;

  constructor(readonly file: string, readonly text: string) {
    for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) {
      this.#lineStarts.push(i + 1);
    }
  }

  position(offset: number): SourcePosition {
    const starts = this.#lineStarts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { file: this.file, line: lo + 1, column: offset - starts[lo] + 1 };
  }

  /**
   * The node an alias stands for: the last anchor of that name before it. yaml's own
   * `resolve` walks the whole document for each alias, which made a config with thousands
   * of aliases take seconds; this walks it once.
   */
  resolveAlias(doc: Document, alias: Alias): Node | null {
    if (this.#anchors === null) {
      const anchors = new Map<string, { offset: number; node: Node }[]>();
      visit(doc, (_key, node) => {
        if (isNode(node) && !isAlias(node) && node.anchor) {
          const list = anchors.get(node.anchor) ?? [];
          list.push({ offset: node.range?.[0] ?? 0, node });
          anchors.set(node.anchor, list);
        }
      });
      this.#anchors = anchors;
    }
    const at = alias.range?.[0] ?? Infinity;
    let found: Node | null = null;
    for (const a of this.#anchors.get(alias.source) ?? []) if (a.offset < at) found = a.node;
    return found;
  }
}

/** The issues found so far; shared by every reader of one config. */
export class Issues {
  readonly list: ConfigIssue[] = [];

  add(
    severity: "error" | "warning",
    position: SourcePosition | null,
    path: string,
    message: string,
    fix: string,
    value?: string | number | boolean,
  ): void {
    this.list.push(
      value === undefined
        ? { severity, position, path, message, fix }
        : { severity, position, path, message, fix, value },
    );
  }

  get hasErrors(): boolean {
    return this.list.some((i) => i.severity === "error");
  }
}

/** Appends a key to a key path, quoting keys that would be ambiguous in dotted form. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  const plain = /^[A-Za-z0-9_-]+$/.test(key);
  if (!plain) return `${path}[${JSON.stringify(key)}]`;
  return path === "" ? key : `${path}.${key}`;
}

/** The key path of a named entry of a top-level map: `listeners.https`, `listeners["a.b"]`. */
export function entryPath(map: string, name: string): string {
  return childPath(map, name);
}

/** The closest candidate to `word`, when it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | null {
  const w = word.toLowerCase();
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  const limit = Math.max(1, Math.floor(word.length / 3));
  if (bestDistance <= limit) return best;
  // "warn" for "warning", "tls_ca" for "tls": one is the start of the other.
  const prefixed = candidates.filter((c) =>
    w.length >= 3 && (c.toLowerCase().startsWith(w) || w.startsWith(c.toLowerCase()))
  );
  return prefixed.length === 1 ? prefixed[0] : null;
}

/** Edit distance where swapping two neighbouring letters counts as one edit ("sin" → "sni"). */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push(new Array(b.length + 1).fill(0));
    rows[i][0] = i;
  }
  for (let j = 0; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2][j - 2] + 1);
      }
      rows[i][j] = d;
    }
  }
  return rows[a.length][b.length];
}

function describeJs(value: unknown): string {
  if (value === null || value === undefined) return "nothing (null)";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return "a value";
}

/**
 * A value at a key path in a config file. `node` is `null` when the key is absent, in which case
 * the position is the enclosing map's, so "missing key" errors still point somewhere useful.
 */
export class Value {
  constructor(
    readonly node: Node | null,
    readonly path: string,
    readonly source: Source,
    readonly issues: Issues,
    readonly doc: Document,
    readonly fallbackOffset = 0,
    readonly keyNode: Node | null = null,
  ) {}

  /** Where the key of this value stands (the value's own position when it has no key). */
  get keyPosition(): SourcePosition {
    const offset = this.keyNode?.range?.[0];
    return offset === undefined ? this.position : this.source.position(offset);
  }

  get missing(): boolean {
    return this.node === null || (isScalar(this.node) && this.node.value === null);
  }

  get position(): SourcePosition {
    const offset = this.node?.range?.[0] ?? this.fallbackOffset;
    return this.source.position(offset);
  }

  /** How the value reads in a message: `"backnd"`, `42`, `a list`, `a map`. */
  describe(): string {
    const node = this.resolved();
    if (node === null) return "nothing";
    if (isMap(node)) return "a map";
    if (isSeq(node)) return "a list";
    if (isScalar(node)) return describeJs(node.value);
    return "a value";
  }

  error(message: string, fix: string): undefined {
    this.issues.add("error", this.position, this.path, message, fix, this.#written());
    return undefined;
  }

  warn(message: string, fix: string): void {
    this.issues.add("warning", this.position, this.path, message, fix, this.#written());
  }

  /** The scalar as written, for an issue's `value` (`edgemux check --format json`). */
  #written(): string | number | boolean | undefined {
    const v = this.scalar();
    return typeof v === "string" || typeof v === "number" || typeof v === "boolean" ? v : undefined;
  }

  /** Follows a YAML alias (`*name`) to the node it stands for. */
  resolved(): Node | null {
    if (this.node !== null && isAlias(this.node)) {
      return this.source.resolveAlias(this.doc, this.node);
    }
    return this.node;
  }

  private scalar(): unknown {
    const node = this.resolved();
    return node !== null && isScalar(node) ? node.value : undefined;
  }

  private expected(what: string, example: string): undefined {
    return this.error(`expected ${what}, found ${this.describe()}`, `write ${example}`);
  }

  string(example = "a string"): string | undefined {
    const v = this.scalar();
    if (typeof v === "string") {
      if (v.trim() === "") return this.error("the value is empty", `write ${example}`);
      return v;
    }
    return this.expected("a string", example);
  }

  boolean(): boolean | undefined {
    const v = this.scalar();
    if (typeof v === "boolean") return v;
    return this.expected("true or false", "true or false (without quotes)");
  }

  integer(min: number, max: number): number | undefined {
    const v = this.scalar();
    if (typeof v === "number" && Number.isInteger(v)) {
      if (v < min || v > max) {
        return this.error(`${v} is out of range`, `use a whole number from ${min} to ${max}`);
      }
      return v;
    }
    return this.expected("a whole number", `a whole number from ${min} to ${max}`);
  }

  oneOf<T extends string>(choices: readonly T[]): T | undefined {
    const v = this.scalar();
    const list = choices.map((c) => JSON.stringify(c)).join(", ");
    if (typeof v === "string" && (choices as readonly string[]).includes(v)) return v as T;
    const hint = typeof v === "string" ? closest(v, choices) : null;
    return this.error(
      `${this.describe()} is not one of ${list}`,
      hint ? `did you mean "${hint}"?` : `use one of ${list}`,
    );
  }

  /** A duration in milliseconds, at least `minMs`. */
  duration(minMs = 0): number | undefined {
    const v = this.scalar();
    if (typeof v !== "string" && typeof v !== "number") {
      return this.expected("a duration", DURATION_HINT);
    }
    const ms = typeof v === "number" ? (v === 0 ? 0 : null) : parseDuration(v);
    if (ms === null) {
      return this.error(`${this.describe()} is not a duration`, `write ${DURATION_HINT}`);
    }
    if (ms < minMs) {
      return this.error(`${this.describe()} is too short`, `use at least ${minMs}ms`);
    }
    return ms;
  }

  /** A size in bytes within `[min, max]`. */
  size(min: number, max: number): number | undefined {
    const v = this.scalar();
    if (typeof v !== "string" && typeof v !== "number") return this.expected("a size", SIZE_HINT);
    const bytes = typeof v === "number" ? (v === 0 ? 0 : null) : parseSize(v);
    if (bytes === null) return this.error(`${this.describe()} is not a size`, `write ${SIZE_HINT}`);
    if (bytes < min || bytes > max) {
      return this.error(
        `${this.describe()} is out of range`,
        `use a size from ${min} to ${max} bytes`,
      );
    }
    return bytes;
  }

  /** The items of a list; a single non-list value counts as a list of one when `single` is set. */
  list(opts: { single?: boolean; nonEmpty?: boolean } = {}): Value[] | undefined {
    const node = this.resolved();
    if (node !== null && isSeq(node)) {
      const items = node.items.map((item, i) =>
        new Value(
          item as Node,
          childPath(this.path, i),
          this.source,
          this.issues,
          this.doc,
          node.range?.[0],
        )
      );
      if (opts.nonEmpty && items.length === 0) {
        return this.error("the list is empty", "add at least one item");
      }
      return items;
    }
    if (opts.single && node !== null && !isMap(node) && !this.missing) return [this];
    return this.expected("a list", opts.single ? "one value or a list of values" : "a list");
  }

  /**
   * The value as a map whose keys must be among `known`. Unknown keys are reported with the
   * closest known key as a suggestion.
   */
  map(known: readonly string[] | null): MapValue | undefined {
    const node = this.resolved();
    if (node === null || !isMap(node)) return this.expected("a map of keys", "key: value pairs");
    const entries: [string, Value][] = [];
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null;
      const key = keyNode !== null && isScalar(keyNode) ? keyNode.value : undefined;
      const keyValue = new Value(
        keyNode,
        this.path,
        this.source,
        this.issues,
        this.doc,
        node.range?.[0],
      );
      if (typeof key !== "string" && typeof key !== "number") {
        keyValue.error("a key must be a plain name", "write the key as a word, e.g. `name:`");
        continue;
      }
      const name = String(key);
      if (known !== null && !known.includes(name)) {
        const hint = closest(name, known);
        keyValue.issues.add(
          "error",
          keyValue.position,
          childPath(this.path, name),
          `unknown key "${name}"`,
          hint
            ? `did you mean "${hint}"?`
            : `remove it; the keys allowed here are ${known.map((k) => `"${k}"`).join(", ")}`,
        );
        continue;
      }
      entries.push([
        name,
        new Value(
          pair.value as Node | null,
          childPath(this.path, name),
          this.source,
          this.issues,
          this.doc,
          keyNode?.range?.[0] ?? node.range?.[0],
          keyNode,
        ),
      ]);
    }
    return new MapValue(this, entries);
  }
}

/** A YAML map read through {@link Value.map}: keys in file order, each with its value. */
export class MapValue {
  readonly #byKey: Map<string, Value>;

  constructor(readonly self: Value, readonly entries: [string, Value][]) {
    this.#byKey = new Map(entries);
  }

  has(key: string): boolean {
    const v = this.#byKey.get(key);
    return v !== undefined && !v.missing;
  }

  /** True when the key is written, even with no value (`key:` alone). */
  present(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** The value under `key`, or a missing value positioned at this map. */
  get(key: string): Value {
    return this.#byKey.get(key) ??
      new Value(
        null,
        childPath(this.self.path, key),
        this.self.source,
        this.self.issues,
        this.self.doc,
        this.self.node?.range?.[0] ?? 0,
      );
  }

  /** The value under `key`; records "missing" and returns undefined when absent. */
  require(key: string, example: string): Value | undefined {
    if (this.has(key)) return this.get(key);
    this.self.issues.add(
      "error",
      this.self.position,
      childPath(this.self.path, key),
      `the key "${key}" is missing`,
      `add ${key}: ${example}`,
    );
    return undefined;
  }
}

/** The map key written at `offset` (the error points at its first character only). */
function keyAt(text: string, offset: number): string {
  const rest = text.slice(offset);
  const quote = rest[0] === '"' || rest[0] === "'" ? rest[0] : null;
  if (quote !== null) {
    const end = rest.indexOf(quote, 1);
    return end > 0 ? rest.slice(1, end) : "";
  }
  const m = /^[^:\n#]*/.exec(rest);
  return (m?.[0] ?? "").trim();
}

/** Config files larger than this are refused before parsing. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
/** YAML syntax errors reported per file. */
const MAX_SYNTAX_ERRORS = 20;

/**
 * The environment variables npm:yaml 2.9 reads while it parses: debugging switches that print
 * every token (`LOG_TOKENS`, in its parser) or node (`LOG_STREAM`, in its composer) to the
 * console. Read through `process.env`, each read needs Deno's env permission, and without it
 * the parse throws NotCapable (or, in a terminal, Deno stops to ask).
 */
const YAML_DEBUG_ENV = ["LOG_TOKENS", "LOG_STREAM"] as const;

/**
 * Runs `parse` with `process.env` swapped for an empty object unless reading both of
 * {@link YAML_DEBUG_ENV} is granted, so that parsing needs read access only: the config is
 * text, and the library's debug output is nothing edgemux wants. `parse` is synchronous, so no
 * other code can run while the swap is in place.
 */
function withoutYamlDebugEnv<T>(parse: () => T): T {
  const granted = YAML_DEBUG_ENV.every((variable) =>
    Deno.permissions.querySync({ name: "env", variable }).state === "granted"
  );
  if (granted) return parse();
  const env = process.env;
  process.env = {};
  try {
    return parse();
  } finally {
    process.env = env;
  }
}

/** Parses one YAML file into its top-level value, recording syntax errors as issues. */
export function readYaml(source: Source, issues: Issues): Value | undefined {
  if (source.text.length > MAX_CONFIG_BYTES) {
    issues.add(
      "error",
      { file: source.file, line: 1, column: 1 },
      "",
      `the file is ${source.text.length} bytes, more than a config should ever need`,
      `keep each config file under ${MAX_CONFIG_BYTES / 1024 / 1024} MiB`,
    );
    return undefined;
  }
  let docs;
  try {
    docs = withoutYamlDebugEnv(() =>
      parseAllDocuments(source.text, { prettyErrors: false, uniqueKeys: true })
    );
  } catch (e) {
    // yaml's parser recurses per nesting level and can run out of stack outside its own
    // error handling; no real config nests anywhere near that deep. Anything else is not the
    // config's fault and must not be reported as if it were.
    if (!(e instanceof RangeError)) throw e;
    issues.add(
      "error",
      { file: source.file, line: 1, column: 1 },
      "",
      "the YAML cannot be read: it nests too deeply",
      "check the indentation; a config nests a few levels, not thousands",
    );
    return undefined;
  }
  // An empty stream (nothing but whitespace and comments) is an empty array too.
  if (docs.length === 0) {
    issues.add(
      "error",
      { file: source.file, line: 1, column: 1 },
      "",
      "the file is empty",
      "start it with `version: 1`",
    );
    return undefined;
  }
  if (docs.length > 1) {
    const second = docs[1].range?.[0] ?? 0;
    issues.add(
      "error",
      source.position(second),
      "",
      "the file holds more than one YAML document",
      "remove the `---` separator; split the config into several files in one directory instead",
    );
    return undefined;
  }
  const doc = docs[0];
  // One broken line can make the YAML parser report an error per character after it.
  for (const e of doc.errors.slice(0, MAX_SYNTAX_ERRORS)) {
    const keyText = keyAt(source.text, e.pos[0]);
    const message = e.code === "DUPLICATE_KEY"
      ? `the key ${keyText ? `"${keyText}" ` : ""}appears twice in the same map`
      : `YAML syntax: ${e.message.split("\n")[0]}`;
    issues.add(
      "error",
      source.position(e.pos[0]),
      "",
      message,
      e.code === "DUPLICATE_KEY" ? "keep one of the two entries" : "correct the YAML syntax",
    );
  }
  if (doc.errors.length > MAX_SYNTAX_ERRORS) {
    issues.add(
      "error",
      null,
      "",
      `${doc.errors.length - MAX_SYNTAX_ERRORS} more YAML syntax errors follow`,
      "correct the first ones; the rest often follow from them",
    );
  }
  if (doc.errors.length > 0) return undefined;
  return new Value(doc.contents as Node | null, "", source, issues, doc, 0);
}
