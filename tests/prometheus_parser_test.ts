/**
 * The exposition-format parser that tests/admin_test.ts and the other metrics tests read
 * `/metrics` with (tests/_helpers/prometheus.ts): what it accepts, that it does refuse the
 * expositions a scraper would reject, and that edgemux's own renderer parses back unchanged.
 */

import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { Registry, renderPrometheus } from "../proxy/observe/metrics.ts";
import { parsePrometheus, PrometheusFormatError } from "./_helpers/prometheus.ts";

Deno.test("parsePrometheus() reads HELP, TYPE, escaped labels, special values and timestamps", () => {
  const m = parsePrometheus(
    [
      "# A comment that is neither HELP nor TYPE.",
      "# HELP http_requests_total Requests, with a \\\\ and a\\nsecond line.",
      "# TYPE http_requests_total counter",
      'http_requests_total{method="post",path="C:\\\\dir \\"q\\"\\nnext",} 1027 1395066363000',
      'http_requests_total{method="get"} 3',
      "# TYPE temperature gauge",
      "temperature -Inf",
      "temperature_hint NaN",
      "# TYPE latency histogram",
      'latency_bucket{le="0.5"} 1',
      'latency_bucket{le="1"} 2',
      'latency_bucket{le="+Inf"} 3',
      "latency_sum 4.5e0",
      "latency_count 3",
      "",
    ].join("\n"),
  );
  const requests = m.family("http_requests_total");
  equal(requests.type, "counter");
  equal(requests.help, "Requests, with a \\ and a\nsecond line.");
  deepEqual(requests.samples[0].labels, { method: "post", path: 'C:\\dir "q"\nnext' });
  equal(requests.samples[0].timestamp, 1395066363000);
  equal(m.sum("http_requests_total"), 1030);
  equal(m.value("temperature", {}), -Infinity);
  ok(Number.isNaN(m.value("temperature_hint", {})));
  equal(m.family("temperature_hint").type, "untyped");
  const [h] = m.histogram("latency");
  deepEqual(h.buckets, [{ le: 0.5, count: 1 }, { le: 1, count: 2 }, { le: Infinity, count: 3 }]);
  equal(h.sum, 4.5);
  equal(h.count, 3);
});

Deno.test("parsePrometheus() refuses expositions a scraper would reject", () => {
  const histogram = (buckets: string, count: number) =>
    `# TYPE h histogram\n${buckets}h_sum 1\nh_count ${count}\n`;
  const cases: [string, string, RegExp][] = [
    [
      "buckets that shrink",
      histogram('h_bucket{le="1"} 5\nh_bucket{le="2"} 4\nh_bucket{le="+Inf"} 5\n', 5),
      /buckets must be cumulative/,
    ],
    [
      "+Inf that differs from _count",
      histogram('h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\n', 3),
      /_count is 3 but the \+Inf bucket holds 2/,
    ],
    ["no +Inf bucket", histogram('h_bucket{le="1"} 1\n', 1), /no le="\+Inf" bucket/],
    ["a duplicate series", 'a{x="1"} 1\na{x="1"} 2\n', /duplicate series/],
    ["TYPE after samples", "a 1\n# TYPE a gauge\n", /TYPE of a comes after its samples/],
    ["a family in two groups", 'a 1\nb 1\na{x="2"} 1\n', /not in one group/],
    ["an unknown escape", 'a{x="\\t"} 1\n', /unknown escape/],
    ["an unterminated label value", 'a{x="1} 1\n', /unterminated value/],
    ["a value that is not a number", "a 1O\n", /not a sample value/],
    ["a negative counter", "# TYPE c counter\nc -1\n", /counter c is -1/],
    ["no final line feed", "a 1", /must end with a line feed/],
  ];
  for (const [what, text, message] of cases) {
    throws(() => parsePrometheus(text), (e: unknown) => {
      ok(e instanceof PrometheusFormatError, `${what}: ${e}`);
      match(e.message, message, what);
      return true;
    }, what);
  }
});

Deno.test("edgemux's renderer escapes label values and HELP text so they parse back unchanged", () => {
  const registry = new Registry();
  const odd = 'C:\\path with "quotes"\nand a second line';
  registry.counter("odd_total", 'Help with a \\ backslash and\na line feed; "quotes" stay.', [
    "value",
  ]).inc([odd], 2);
  registry.histogram("odd_seconds", "A histogram.", ["value"], [0.1, 1]).observe([odd], 0.5);
  const m = parsePrometheus(renderPrometheus(registry.snapshot()));
  equal(m.value("odd_total", { value: odd }), 2);
  equal(m.family("odd_total").help, 'Help with a \\ backslash and\na line feed; "quotes" stay.');
  const [h] = m.histogram("odd_seconds", { value: odd });
  deepEqual(h.buckets.map((b) => b.count), [0, 1, 1]);
});
