/**
 * Logging: operational events under the `edgemux` category, one access line per connection
 * under `edgemux.access`, as text (`key=value`) or JSON lines. Nothing is logged until
 * {@link configureLogging} runs, so the library stays quiet when embedded.
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
import type { LogLevel } from "../config/types.ts";

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
  /** Where records go instead of standard error (tests capture them). */
  sink?: Sink;
}

const LEVEL_TEXT: Record<string, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO ",
  warning: "WARN ",
  error: "ERROR",
  fatal: "FATAL",
};

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
 * The message of a text line: it is not quoted (it is the words between the level and the
 * first key), so any character outside printable ASCII is escaped in place; a message built
 * from an error's text can then not break the line either.
 */
function textMessage(record: LogRecord): string {
  const m = messageText(record);
  for (let i = 0; i < m.length; i++) {
    const c = m.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f) return quoteAscii(m).slice(1, -1);
  }
  return m;
}

/** Formats a record as `time LEVEL message key=value …`. */
export function formatText(record: LogRecord): string {
  let line = `${new Date(record.timestamp).toISOString()} ${
    LEVEL_TEXT[record.level] ?? record.level
  } ${textMessage(record)}`;
  for (const [k, v] of Object.entries(record.properties)) line += ` ${k}=${textValue(v)}`;
  return line + "\n";
}

/** Formats a record as one JSON object per line, in ASCII (see {@link quoteAscii}). */
export function formatJson(record: LogRecord): string {
  return asciiOnly(JSON.stringify({
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    msg: messageText(record),
    ...record.properties,
  })) + "\n";
}

/** A warning or error, as the status page lists it. */
export interface Problem {
  time: string;
  level: string;
  message: string;
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
  const formatter = opts.format === "json" ? formatJson : formatText;
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
