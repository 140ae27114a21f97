import { equal, match } from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { formatJson, formatText } from "./log.ts";

function record(message: string, properties: Record<string, unknown>): LogRecord {
  return {
    category: ["edgemux", "access"],
    level: "info",
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
    "2026-11-26T12:00:00.123Z INFO  access conn=7 client=[::1]:5000 sni=- alpn=h2,http/1.1 " +
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
