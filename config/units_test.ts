import assert from "node:assert/strict";
import { formatDuration, formatSize, parseDuration, parseSize } from "./units.ts";

Deno.test("parseDuration() reads every unit into milliseconds", () => {
  const cases: [string, number][] = [
    ["250ms", 250],
    ["5s", 5_000],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1d", 86_400_000],
    ["1.5s", 1_500],
    ["0.5m", 30_000],
    ["0s", 0],
    ["0", 0],
    [" 5s ", 5_000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

Deno.test("parseDuration() rounds a fraction of a millisecond to the nearest whole one", () => {
  assert.equal(parseDuration("1.4ms"), 1);
  assert.equal(parseDuration("1.6ms"), 2);
});

Deno.test("parseDuration() refuses bare numbers, spelled-out units and malformed numbers", () => {
  for (
    const text of [
      "5",
      "5000",
      "5 seconds",
      "5 s",
      "5sec",
      "5S",
      "5us",
      "s",
      "",
      "-5s",
      "+5s",
      ".5s",
      "1.s",
      "1..5s",
      "1.2.3s",
      "1e3ms",
      "5s5",
      "0x10s",
    ]
  ) {
    assert.equal(parseDuration(text), null, JSON.stringify(text));
  }
});

Deno.test("parseDuration() refuses a duration too large to count exactly in milliseconds", () => {
  assert.equal(parseDuration("99999999999999999d"), null);
  assert.equal(parseDuration("104249991d"), 104249991 * 86_400_000);
});

Deno.test("parseSize() reads binary and decimal units into bytes", () => {
  const cases: [string, number][] = [
    ["512B", 512],
    ["16KiB", 16_384],
    ["1MiB", 1_048_576],
    ["1GiB", 1_073_741_824],
    ["2KB", 2_000],
    ["3MB", 3_000_000],
    ["1GB", 1_000_000_000],
    ["0", 0],
    ["0B", 0],
    ["1.5KiB", 1_536],
  ];
  for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, text);
});

Deno.test("parseSize() refuses bare numbers, unknown or lower-case units and fractional bytes", () => {
  for (
    const text of [
      "512",
      "16k",
      "16K",
      "16kib",
      "16KIB",
      "16 KiB",
      "1TiB",
      "0.5B",
      "1.0005KB",
      "KiB",
    ]
  ) {
    assert.equal(parseSize(text), null, JSON.stringify(text));
  }
});

Deno.test("formatDuration() picks the largest unit that divides evenly", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [1, "1ms"],
    [1_500, "1500ms"],
    [5_000, "5s"],
    [90_000, "90s"],
    [120_000, "2m"],
    [3_600_000, "1h"],
    [86_400_000, "1d"],
    [172_800_000, "2d"],
  ];
  for (const [ms, text] of cases) assert.equal(formatDuration(ms), text, String(ms));
});

Deno.test("formatSize() picks the largest binary unit that divides evenly", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [1, "1B"],
    [1_000, "1000B"],
    [1_536, "1536B"],
    [16_384, "16KiB"],
    [1_048_576, "1MiB"],
    [3 * 1024 ** 3, "3GiB"],
  ];
  for (const [bytes, text] of cases) assert.equal(formatSize(bytes), text, String(bytes));
});

Deno.test("formatDuration() and formatSize() write what the parsers read back unchanged", () => {
  for (const ms of [0, 1, 999, 1_000, 61_000, 3_600_000, 86_400_000 * 3, 1_234_567]) {
    assert.equal(parseDuration(formatDuration(ms)), ms);
  }
  for (const bytes of [0, 1, 1_000, 1_024, 16_384, 65_536, 5 * 1024 ** 2, 7 * 1024 ** 3]) {
    assert.equal(parseSize(formatSize(bytes)), bytes);
  }
});
