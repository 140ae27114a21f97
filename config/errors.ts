/**
 * What goes wrong in a config, said once per problem with where it is and how to fix it.
 *
 * @module
 */

/** Where in which file a value stands. Lines and columns count from 1. */
export interface SourcePosition {
  /** The file's path as it was given (or a label for text that came from no file). */
  file: string;
  /** The line, from 1. */
  line: number;
  /** The column, from 1. */
  column: number;
}

/** One problem found in a config. */
export interface ConfigIssue {
  /** An `error` makes the config unusable; a `warning` is reported and the config still runs. */
  severity: "error" | "warning";
  /** Where the offending value (or key) stands; `null` when the problem has no single place. */
  position: SourcePosition | null;
  /** The key path, such as `listeners.https.routes[2].sni`; empty for the whole file. */
  path: string;
  /** What is wrong, naming the value. */
  message: string;
  /** How to put it right. */
  fix: string;
  /**
   * The offending value as written, when the issue is about one scalar (a string, number or
   * boolean); absent for problems with a map, a list, a missing key or something outside the
   * file.
   */
  value?: string | number | boolean;
}

/** Formats a position as `file:line:col`. */
export function formatPosition(p: SourcePosition): string {
  return `${p.file}:${p.line}:${p.column}`;
}

/** Formats one issue as `file:line:col: error: path: message (fix)`. */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.position ? `${formatPosition(issue.position)}: ` : "";
  const path = issue.path ? `${issue.path}: ` : "";
  return `${where}${issue.severity}: ${path}${issue.message}\n  fix: ${issue.fix}`;
}

/**
 * Thrown when a config cannot be used. It carries every error found (not just the first) and
 * the warnings seen on the way, so one `edgemux check` run shows the whole list.
 */
export class ConfigError extends Error {
  /** Every issue found: the errors and the warnings, in the order they were found. */
  readonly issues: ConfigIssue[];

  /** Builds the error; its message lists every error among `issues`. */
  constructor(issues: ConfigIssue[]) {
    const errors = issues.filter((i) => i.severity === "error");
    super(
      `${errors.length} error${errors.length === 1 ? "" : "s"} in the config:\n` +
        errors.map(formatIssue).join("\n"),
    );
    this.name = "ConfigError";
    this.issues = issues;
  }

  /** The errors only, without the warnings. */
  get errors(): ConfigIssue[] {
    return this.issues.filter((i) => i.severity === "error");
  }
}
