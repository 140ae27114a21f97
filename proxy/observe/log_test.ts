import { equal, match } from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import fc from "fast-check";
import { fstatSync } from "node:fs";
import {
  formatJson,
  formatText,
  isJournalStream,
  matchesJournalStream,
  SYSLOG_PRIORITY,
} from "./log.ts";

function record(
  message: string,
  properties: Record<string, unknown>,
  level: LogRecord["level"] = "info",
): LogRecord {
  return {
    category: ["edgemux", "access"],
    level,
    message: [message],
    rawMessage: message,
    timestamp: Date.UTC(2026, 10, 26, 12, 0, 0, 123),
    properties,
  };
}

Deno.test("formatText() writes key=value pairs, quoting only values that need it", () => {
  const line = formatText(record("access", {
    conn: 7,
    client: "[::1]:5000",
    sni: null,
    alpn: ["h2", "http/1.1"],
    detail: 'record length 20000 exceeds "16384"',
    empty: [],
  }));
  equal(
    line,
    "time=2026-11-26T12:00:00.123Z level=info msg=access conn=7 client=[::1]:5000 sni=- " +
      "alpn=h2,http/1.1 " +
      'detail="record length 20000 exceeds \\"16384\\"" empty=-\n',
  );
});

Deno.test("formatText() quotes values with '=' or control characters so lines stay parseable", () => {
  const line = formatText(record("x", { a: "k=v", b: "line\nbreak" }));
  match(line, / a="k=v" b="line\\nbreak"\n$/);
});

Deno.test("formatJson() writes one JSON object per line with time, level and message", () => {
  const line = formatJson(record("access", { conn: 7, sni: "a.example.test", alpn: ["h2"] }));
  equal(line.endsWith("\n"), true);
  const parsed = JSON.parse(line);
  equal(parsed.time, "2026-11-26T12:00:00.123Z");
  equal(parsed.level, "info");
  equal(parsed.msg, "access");
  equal(parsed.conn, 7);
  equal(parsed.sni, "a.example.test");
  equal(parsed.alpn[0], "h2");
});

/** Every character a network peer could put in a logged value that a line reader must not see raw. */
const HOSTILE = [
  "\u0085", // NEL: a line break for readers that split on Unicode newlines
  "\u009b", // 8-bit CSI: starts a terminal escape sequence
  "\u001b[31m", // ESC [ (7-bit CSI)
  "\r\n",
  "\u2028\u2029", // line and paragraph separators
  "\u0000\u007f", // NUL, DEL
  '"',
  "\\",
  "=",
  "\u00ff\u0100\u{1f600}", // Latin-1, above Latin-1, astral
];

/** The line has no control character (but its final \n) and no character above 0x7e. */
function assertPrintableAscii(line: string): void {
  equal(line.endsWith("\n"), true);
  for (let i = 0; i < line.length - 1; i++) {
    const c = line.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) {
      throw new Error(
        `raw U+${c.toString(16).padStart(4, "0")} at ${i} in ${JSON.stringify(line)}`,
      );
    }
  }
}

Deno.test("formatText() escapes every character outside printable ASCII in every value and the message", () => {
  for (const bad of HOSTILE) {
    const value = `a${bad}b`;
    const props = {
      sni: value,
      alpn: [value, "h2"],
      host: value,
      path: `/${value}`,
      method: value,
      detail: value,
      user_agent: value,
      nested: { x: value },
    };
    const line = formatText(record(`message ${value}`, props));
    assertPrintableAscii(line);
    // Each value reads back exactly with JSON.parse, as the docs say.
    const m = / sni=("(?:[^"\\]|\\.)*")/.exec(line);
    equal(m !== null, true, line);
    equal(JSON.parse(m![1]), value);
    match(line, / alpn="/);
  }
});

Deno.test("formatText() leaves plain printable values unquoted", () => {
  const line = formatText(record("x", { sni: "a.example.test", alpn: ["h2", "http/1.1"] }));
  match(line, / sni=a\.example\.test alpn=h2,http\/1\.1\n$/);
});

Deno.test("formatJson() writes ASCII only, and every value parses back unchanged", () => {
  for (const bad of HOSTILE) {
    const value = `a${bad}b`;
    const line = formatJson(record(`message ${value}`, { sni: value, alpn: [value], path: value }));
    assertPrintableAscii(line);
    const parsed = JSON.parse(line);
    equal(parsed.sni, value);
    equal(parsed.alpn[0], value);
    equal(parsed.path, value);
    equal(parsed.msg, `message ${value}`);
  }
});

/**
 * A minimal logfmt reader (the grammar of github.com/go-logfmt/logfmt: `key=value` pairs split by
 * spaces, a value either bare or a double-quoted string with backslash escapes), strict about
 * anything else, so a line that only looks like logfmt fails here.
 */
function readLogfmt(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const pair = /\s*([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s="]*)(?=\s|$)/y;
  let i = 0;
  while (i < line.length && line.slice(i).trim() !== "") {
    pair.lastIndex = i;
    const m = pair.exec(line);
    if (m === null) throw new Error(`not logfmt at ${i}: ${JSON.stringify(line)}`);
    out[m[1]] = m[2].startsWith('"') ? JSON.parse(m[2]) : m[2];
    i = pair.lastIndex;
  }
  return out;
}

Deno.test("formatText() writes logfmt: time, level and msg are pairs too, and every line reads back", () => {
  const messages = ["stopped", "config reloaded", 'say "hi"', "a=b", "", "tab\there", "ünï"];
  for (const level of ["debug", "info", "warning", "error"] as const) {
    for (const msg of messages) {
      const line = formatText(record(msg, { conn: 7, sni: "a b", empty: "" }, level));
      const fields = readLogfmt(line.trimEnd());
      equal(fields.time, "2026-11-26T12:00:00.123Z");
      equal(fields.level, level);
      equal(fields.msg, msg);
      equal(fields.conn, "7");
      equal(fields.sni, "a b");
      equal(fields.empty, "");
    }
  }
  equal(
    formatText(record("config reloaded", { ms: 12 })),
    'time=2026-11-26T12:00:00.123Z level=info msg="config reloaded" ms=12\n',
  );
});

Deno.test("under journald each line starts with its sd-daemon priority and has no time of its own", () => {
  const journal = { time: false, priority: true };
  const expected = { debug: "<7>", info: "<6>", warning: "<4>", error: "<3>", fatal: "<2>" };
  for (const [level, prefix] of Object.entries(expected)) {
    const r = record("server down", { backend: "b" }, level as LogRecord["level"]);
    equal(formatText(r, journal), `${prefix}level=${level} msg="server down" backend=b\n`);
    const json = formatJson(r, journal);
    equal(json.startsWith(prefix), true, json);
    equal(JSON.parse(json.slice(prefix.length)).time, undefined);
    equal(`<${SYSLOG_PRIORITY[level]}>`, prefix);
  }
});

Deno.test("matchesJournalStream() compares JOURNAL_STREAM's device and inode with standard error's", () => {
  const stat = { dev: 64769n, ino: 1234567n };
  equal(matchesJournalStream("64769:1234567", stat), true);
  equal(matchesJournalStream("64769:1234568", stat), false, "another inode");
  equal(matchesJournalStream("64768:1234567", stat), false, "another device");
  equal(matchesJournalStream("", stat), false);
  equal(matchesJournalStream("64769", stat), false);
  equal(matchesJournalStream("x:y", stat), false);
  // Device numbers above 2^53 stay exact.
  equal(matchesJournalStream("18446744073709551615:1", { dev: 2n ** 64n - 1n, ino: 1n }), true);
});

Deno.test({
  name: "isJournalStream() is false without env permission for JOURNAL_STREAM, and asks nothing",
  permissions: { env: false },
  fn() {
    equal(isJournalStream(), false);
  },
});

Deno.test("isJournalStream() follows JOURNAL_STREAM against this process's real standard error", () => {
  const before = Deno.env.get("JOURNAL_STREAM");
  try {
    const { dev, ino } = fstatSync(2, { bigint: true });
    Deno.env.set("JOURNAL_STREAM", `${dev}:${ino}`);
    equal(isJournalStream(), true);
    Deno.env.set("JOURNAL_STREAM", `${dev}:${ino + 1n}`);
    equal(isJournalStream(), false);
    Deno.env.delete("JOURNAL_STREAM");
    equal(isJournalStream(), false);
  } finally {
    if (before === undefined) Deno.env.delete("JOURNAL_STREAM");
    else Deno.env.set("JOURNAL_STREAM", before);
  }
});

Deno.test("formatText() reads back as logfmt for any message and values (fast-check)", () => {
  const key = fc.stringMatching(/^[a-z_]{1,12}$/).filter((k) =>
    !["time", "level", "msg"].includes(k)
  );
  fc.assert(
    fc.property(
      fc.string({ unit: "binary" }),
      fc.dictionary(key, fc.string({ unit: "binary" }), { maxKeys: 6 }),
      fc.constantFrom("debug", "info", "warning", "error"),
      fc.boolean(),
      (msg, props, level, journal) => {
        const line = formatText(
          record(msg, props, level),
          journal ? { time: false, priority: true } : { time: true, priority: false },
        );
        equal(line.indexOf("\n"), line.length - 1, "one line");
        for (let i = 0; i < line.length - 1; i++) {
          const c = line.charCodeAt(i);
          if (c < 0x20 || c > 0x7e) throw new Error(`raw U+${c.toString(16)} in ${line}`);
        }
        const body = journal ? line.slice(`<${SYSLOG_PRIORITY[level]}>`.length) : line;
        if (journal) equal(line.startsWith(`<${SYSLOG_PRIORITY[level]}>`), true);
        const fields = readLogfmt(body.trimEnd());
        equal(fields.level, level);
        equal(fields.msg, msg);
        for (const [k, v] of Object.entries(props)) equal(fields[k], v, k);
      },
    ),
    { numRuns: 500 },
  );
});
