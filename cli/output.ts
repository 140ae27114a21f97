/**
 * How the commands print: to standard error with journald's priority prefixes when it is the
 * journal, a config's problems one per issue, and a config loaded for a command.
 *
 * @module
 */

import { ConfigError, formatIssue } from "../mod.ts";
import type { ConfigIssue, PreparedConfig } from "../mod.ts";
import { isJournalStream } from "../proxy/observe/log.ts";
import { loadPrepared } from "../server/process.ts";

/** `n word` or `n words`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** Standard error is journald's stream (computed once; see isJournalStream). */
let journal: boolean | undefined;

/**
 * Writes `text` to standard error. Under journald each line is an entry of its own, so each
 * gets the priority prefix (`<3>` error, `<4>` warning, `<6>` info): `journalctl -p warning`
 * then shows a failed `systemctl reload`'s check output too.
 */
export function report(text: string, priority: 3 | 4 | 6): void {
  journal ??= isJournalStream();
  console.error(journal ? text.split("\n").map((l) => `<${priority}>${l}`).join("\n") : text);
}

/** Writes each issue to standard error, as an error or a warning. */
export function printIssues(issues: readonly ConfigIssue[]): void {
  for (const issue of issues) report(formatIssue(issue), issue.severity === "error" ? 3 : 4);
}

/** Loads a config for a command, printing its problems; null when it is invalid. */
export async function loadForCommand(
  path: string,
  writeDevCert: boolean,
): Promise<PreparedConfig | null> {
  try {
    return await loadPrepared(path, writeDevCert);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    printIssues(e.issues);
    report(`${path}: invalid (${plural(e.errors.length, "error")})`, 3);
    return null;
  }
}
