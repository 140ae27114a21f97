/**
 * Logging: operational events under the `edgemux` category, one access line per connection
 * under `edgemux.access`, as logfmt text (`time=… level=info msg="…" key=value …`) or JSON
 * lines. Nothing is logged until {@link configureLogging} runs, so the library stays quiet when
 * embedded.
 *
 * Under systemd, standard error is a stream to journald, which says so by setting
 * `JOURNAL_STREAM` to that stream's `DEVICE:INODE` (systemd.exec(5)). Lines then start with a
 * sd-daemon priority prefix `<N>` (sd-daemon(3); journald strips it and stores N as the entry's
 * PRIORITY, so `journalctl -p warning` works) and carry no time of their own, since journald
 * stamps every entry.
 *
 * @module
 */

import {
  configure,
  dispose,
  getLogger,
  getStreamSink,
  type LogRecord,
  type Sink,
} from "@logtape/logtape";
import { fstatSync } from "node:fs";
import type { LogLevel } from "../../config/types.ts";

/** Operational events: start, bind, reload, errors. */
export const log = getLogger(["edgemux"]);
/** One line per finished connection. */
export const accessLog = getLogger(["edgemux", "access"]);

/** Options for {@link configureLogging}. */
export interface LoggingOptions {
  level: LogLevel;
  format: "text" | "json";
  /** Write access lines. */
  access: boolean;
  /**
   * Standard error goes to journald ({@link isJournalStream}): prefix each line with its
   * priority and leave the time to journald. Default false.
   */
  journal?: boolean;
  /** Where records go instead of standard error (tests capture them). */
  sink?: Sink;
}

/**
 * The syslog priority of each level, as sd-daemon(3) prefixes write it (`<3>` error, `<4>`
 * warning, `<6>` info, `<7>` debug; RFC 5424 §6.2.1 numbers them).
 */
export const SYSLOG_PRIORITY: Readonly<Record<string, number>> = {
  trace: 7,
  debug: 7,
  info: 6,
  warning: 4,
  error: 3,
  fatal: 2,
};

/** How a line is written: for a terminal or file, or for journald. */
export interface LineOptions {
  /** Start with the time (`time=…`, or a `time` member). */
  time: boolean;
  /** Start with an sd-daemon priority prefix such as `<4>`. */
  priority: boolean;
}

const PLAIN: LineOptions = { time: true, priority: false };
const JOURNAL: LineOptions = { time: false, priority: true };

function prefix(record: LogRecord, opts: LineOptions): string {
  return opts.priority ? `<${SYSLOG_PRIORITY[record.level] ?? 6}>` : "";
}

function textValue(v: unknown): string {
  if (v === null || v === undefined) return "-";
  if (Array.isArray(v)) return v.length === 0 ? "-" : textValue(v.join(","));
  const s = typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v);
  return needsQuotes(s) ? quoteAscii(s) : s;
}

/**
 * Quote unless every character is printable ASCII other than space, `"`, `=` and `\`: a value
 * from the network (SNI, ALPN, Host, path, user agent…) may hold anything, and a line reader
 * must never see a control character, a C1 control such as NEL (U+0085) or CSI (U+009B), or any
 * byte at or above 0x80 raw.
 */
function needsQuotes(s: string): boolean {
  if (s.length === 0) return true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 0x22 || c === 0x3d || c === 0x5c) return true;
  }
  return false;
}

/**
 * `s` as a JSON string literal with every character outside printable ASCII written as
 * `\uXXXX` (JSON.stringify escapes only C0 controls, quotes and backslashes): the line stays
 * one line of ASCII, and `JSON.parse` gives the value back.
 */
export function quoteAscii(s: string): string {
  return asciiOnly(JSON.stringify(s));
}

/** Escapes every character above U+007E (and DEL) in JSON text; JSON text needs no others. */
function asciiOnly(json: string): string {
  let plain = true;
  for (let i = 0; i < json.length; i++) {
    if (json.charCodeAt(i) >= 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) return json;
  let out = "";
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    out += c < 0x7f ? json[i] : `\\u${c.toString(16).padStart(4, "0")}`;
  }
  return out;
}

function messageText(record: LogRecord): string {
  return record.message.map((part) => (typeof part === "string" ? part : textValue(part))).join(
    "",
  );
}

/**
 * Formats a record as one logfmt line: `time=… level=… msg=… key=value …`, each value bare when
 * it is printable ASCII without space, `"`, `=` or backslash, else quoted as a JSON string in ASCII
 * (see {@link quoteAscii}); a missing value is `-`.
 */
export function formatText(record: LogRecord, opts: LineOptions = PLAIN): string {
  let line = prefix(record, opts);
  if (opts.time) line += `time=${new Date(record.timestamp).toISOString()} `;
  line += `level=${record.level} msg=${textValue(messageText(record))}`;
  for (const [k, v] of Object.entries(record.properties)) line += ` ${k}=${textValue(v)}`;
  return line + "\n";
}

/** Formats a record as one JSON object per line, in ASCII (see {@link quoteAscii}). */
export function formatJson(record: LogRecord, opts: LineOptions = PLAIN): string {
  return prefix(record, opts) + asciiOnly(JSON.stringify({
    ...(opts.time ? { time: new Date(record.timestamp).toISOString() } : {}),
    level: record.level,
    msg: messageText(record),
    ...record.properties,
  })) + "\n";
}

/**
 * Whether `journalStream` (the value of `JOURNAL_STREAM`, `DEVICE:INODE` in decimal) names the
 * file `stat` describes. systemd sets the variable for a service whose output goes to journald;
 * a process that redirects its standard error elsewhere (or inherits the variable from a
 * service it was started by) must not take it as journald, hence the comparison.
 */
export function matchesJournalStream(
  journalStream: string,
  stat: { dev: bigint; ino: bigint },
): boolean {
  const m = /^(\d+):(\d+)$/.exec(journalStream.trim());
  return m !== null && BigInt(m[1]) === stat.dev && BigInt(m[2]) === stat.ino;
}

/**
 * Whether standard error is the journald stream that `JOURNAL_STREAM` names. False when the
 * variable is unset, or may not be read (no env permission for it: nothing is prompted).
 */
export function isJournalStream(): boolean {
  const variable = "JOURNAL_STREAM";
  if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") return false;
  const value = Deno.env.get(variable);
  if (value === undefined) return false;
  try {
    // node:fs fstat needs no permission; Deno has no fstat of its own for standard error.
    return matchesJournalStream(value, fstatSync(2, { bigint: true }));
  } catch {
    return false;
  }
}

/** A warning or error, as the status page lists it. */
export interface Problem {
  /** When it was logged, ISO 8601 in UTC. */
  time: string;
  /** The log level: `warning`, `error` or `fatal`. */
  level: string;
  /** The log message with its values filled in. */
  message: string;
  /** The structured values the log record carried (listener, backend, error, …). */
  details: Record<string, unknown>;
}

const PROBLEMS_KEPT = 50;
const problems: Problem[] = [];

/** The last warnings and errors, newest first. */
export function recentProblems(): Problem[] {
  return [...problems].reverse();
}

/** Keeps the last warnings and errors in memory for the status page. */
function problemSink(record: LogRecord): void {
  if (record.category[1] === "access") return;
  if (record.level !== "warning" && record.level !== "error" && record.level !== "fatal") return;
  problems.push({
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    message: messageText(record),
    details: { ...record.properties },
  });
  if (problems.length > PROBLEMS_KEPT) problems.shift();
}

/** Sets up the loggers; call once at start, and again on reload to change level or format. */
export async function configureLogging(opts: LoggingOptions): Promise<void> {
  const lines = opts.journal ? JOURNAL : PLAIN;
  const formatter = opts.format === "json"
    ? (r: LogRecord) => formatJson(r, lines)
    : (r: LogRecord) => formatText(r, lines);
  const sink = opts.sink ??
    getStreamSink(Deno.stderr.writable, {
      formatter,
      closeStream: false,
      // Access lines must never make a connection wait on a slow log reader.
      nonBlocking: { bufferSize: 256, flushInterval: 50 },
    });
  await configure({
    reset: true,
    sinks: { main: sink, problems: problemSink },
    loggers: [
      { category: ["edgemux"], lowestLevel: opts.level, sinks: ["main", "problems"] },
      {
        category: ["edgemux", "access"],
        lowestLevel: opts.access ? "info" : "fatal",
        sinks: [],
        parentSinks: "inherit",
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
}

/** Flushes and closes the log sinks; call before the process exits. */
export async function closeLogging(): Promise<void> {
  await dispose();
}
