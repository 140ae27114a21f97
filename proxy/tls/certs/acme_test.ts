import assert from "node:assert/strict";
import { parseRetryAfter, renewalTime, retryDelay } from "./acme.ts";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

Deno.test("retryDelay() doubles from the base up to a day", () => {
  assert.deepEqual([1, 2, 3, 4].map((n) => retryDelay(MIN, n, null, false)), [
    MIN,
    2 * MIN,
    4 * MIN,
    8 * MIN,
  ]);
  assert.equal(retryDelay(MIN, 20, null, false), DAY);
  assert.equal(retryDelay(MIN, 10_000, null, false), DAY);
});

Deno.test("retryDelay() never retries before the CA's Retry-After, and waits after a rate limit", () => {
  assert.equal(retryDelay(MIN, 1, 3 * HOUR, false), 3 * HOUR);
  // A Retry-After shorter than the back-off does not shorten it.
  assert.equal(retryDelay(MIN, 5, 1000, false), 16 * MIN);
  assert.equal(retryDelay(MIN, 1, null, true), HOUR);
  assert.equal(retryDelay(MIN, 1, 2 * MIN, true), 2 * MIN);
});

Deno.test("renewalTime() is two thirds into the lifetime, moved at most a twentieth either way", () => {
  const notBefore = new Date(Date.UTC(2026, 0, 1));
  const life = 90 * DAY;
  const notAfter = new Date(notBefore.getTime() + life);
  const at = (j: number) => renewalTime({ notBefore, notAfter }, j) - notBefore.getTime();
  assert.equal(at(0), life * 2 / 3);
  assert.equal(at(1), Math.round(life * 2 / 3 + life / 20));
  assert.equal(at(-1), Math.round(life * 2 / 3 - life / 20));
  for (let i = 0; i < 100; i++) {
    const t = at(Math.random() * 2 - 1);
    assert.ok(t > life / 2 && t < life * 3 / 4, String(t));
  }
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates, and nothing else", () => {
  const now = Date.parse("2026-12-06T12:00:00Z");
  assert.equal(parseRetryAfter("120", now), 120_000);
  assert.equal(parseRetryAfter(" 0 ", now), 0);
  assert.equal(parseRetryAfter("Sun, 06 Dec 2026 13:00:00 GMT", now), HOUR);
  // A date in the past means "now".
  assert.equal(parseRetryAfter("Sun, 06 Dec 2026 11:00:00 GMT", now), 0);
  for (const bad of [undefined, null, "", "soon", "-5", "1.5", 42]) {
    assert.equal(parseRetryAfter(bad, now), null, String(bad));
  }
});
