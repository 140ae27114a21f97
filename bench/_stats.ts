/**
 * Summaries of a few rounds: median with the range, and ratios paired round by round (a
 * ratio of two runs made seconds apart is steadier than a ratio of two medians).
 *
 * @module
 */

/** Median, smallest and largest of some numbers. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** The median (mean of the middle two for an even count) and range; NaN for no numbers. */
export function summarize(values: readonly number[]): Summary {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1], n: v.length };
}

/**
 * `a[i] / b[i]` for every round where both were measured; rounds missing either side are
 * skipped.
 */
export function pairedRatios(
  a: readonly (number | undefined)[],
  b: readonly (number | undefined)[],
): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x !== undefined && y !== undefined && Number.isFinite(x) && Number.isFinite(y) && y !== 0) {
      out.push(x / y);
    }
  }
  return out;
}

/** A number with about three significant digits, grouped for reading (`12,345`, `1.23`). */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return "–";
  const abs = Math.abs(x);
  if (abs >= 999.5) return Math.round(x).toLocaleString("en-US");
  if (abs >= 100) return x.toFixed(0);
  if (abs >= 10) return x.toFixed(1);
  if (abs >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

/** `median (min–max)`, or just the median for a single round. */
export function formatSummary(s: Summary, fmt: (x: number) => string = formatNumber): string {
  if (s.n === 0) return "–";
  if (s.n === 1 || s.min === s.max) return fmt(s.median);
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
}

/** A ratio with two decimals: `0.87`, or `–`. */
export function formatRatio(x: number): string {
  return Number.isFinite(x) ? x.toFixed(2) : "–";
}
