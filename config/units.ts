/**
 * Durations and sizes as written in the config: `250ms`, `5s`, `2m`, `1h`, `16KiB`, `1MiB`.
 * Both parsers are pure and return `null` for anything they do not accept, so the caller can
 * word the error with the file, line and key path it knows.
 *
 * @module
 */

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
};

/** The units a duration may use, for error messages. */
export const DURATION_HINT = 'a number with a unit: "250ms", "5s", "2m", "1h" or "1d"';
/** The units a size may use, for error messages. */
export const SIZE_HINT = 'a whole number with a unit: "512B", "16KiB", "1MiB" (or KB/MB/GB)';

function splitNumberUnit(text: string): [number, string] | null {
  let i = 0;
  while (i < text.length && ((text[i] >= "0" && text[i] <= "9") || text[i] === ".")) i++;
  if (i === 0 || i === text.length) return null;
  const digits = text.slice(0, i);
  // One optional decimal point, digits on both sides ("1.5s" yes, ".5s" and "1.s" no).
  if (!/^\d+(\.\d+)?$/.test(digits)) return null;
  return [Number(digits), text.slice(i)];
}

/**
 * Parses a duration such as `250ms`, `1.5s`, `2m`, `1h` or `1d` into whole milliseconds.
 * A bare `0` is accepted as "zero". Returns `null` for anything else, including bare numbers,
 * which are ambiguous (seconds or milliseconds?).
 */
export function parseDuration(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === "0") return 0;
  const parts = splitNumberUnit(trimmed);
  if (parts === null) return null;
  const unit = DURATION_UNITS[parts[1]];
  if (unit === undefined) return null;
  const ms = Math.round(parts[0] * unit);
  return Number.isSafeInteger(ms) ? ms : null;
}

/**
 * Parses a size such as `16KiB`, `1MiB` or `512B` into bytes. A bare `0` is accepted. Returns
 * `null` for anything else, including bare numbers (bytes? kilobytes?) and fractional bytes.
 */
export function parseSize(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === "0") return 0;
  const parts = splitNumberUnit(trimmed);
  if (parts === null) return null;
  const unit = SIZE_UNITS[parts[1]];
  if (unit === undefined) return null;
  const bytes = parts[0] * unit;
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/** Formats milliseconds the way a user would write them in the config. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]]) {
    if (ms % (size as number) === 0) return `${ms / (size as number)}${unit}`;
  }
  return `${ms}ms`;
}

/** Formats bytes the way a user would write them in the config. */
export function formatSize(bytes: number): string {
  if (bytes === 0) return "0";
  for (const [unit, size] of [["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]] as const) {
    if (bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}
