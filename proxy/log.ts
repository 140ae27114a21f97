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
  return needsQuotes(s) ? JSON.stringify(s) : s;
}

/** Quote only when a reader could misparse it: spaces, quotes, '=', backslashes or controls. */
function needsQuotes(s: string): boolean {
  if (s.length === 0) return true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c === 0x22 || c === 0x3d || c === 0x5c) return true;
  }
  return false;
}

function messageText(record: LogRecord): string {
  return record.message.map((part) => (typeof part === "string" ? part : textValue(part))).join(
    "",
  );
}

/** Formats a record as `time LEVEL message key=value …`. */
export function formatText(record: LogRecord): string {
  let line = `${new Date(record.timestamp).toISOString()} ${
    LEVEL_TEXT[record.level] ?? record.level
  } ${messageText(record)}`;
  for (const [k, v] of Object.entries(record.properties)) line += ` ${k}=${textValue(v)}`;
  return line + "\n";
}

/** Formats a record as one JSON object per line. */
export function formatJson(record: LogRecord): string {
  return JSON.stringify({
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    msg: messageText(record),
    ...record.properties,
  }) + "\n";
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
