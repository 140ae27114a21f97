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
