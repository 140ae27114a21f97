/**
 * The `edgemux run` command as a subprocess (`deno run -A main.ts run -c FILE` from the
 * repository root), with what tests need around it: the bound ports and the admin address read
 * back from the log, signals sent to the main process alone, and the exit awaited.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { pickFreePort } from "./ports.ts";
import { type BackgroundProcess, type ExitStatus, startProcess } from "./process.ts";
import { requireTool } from "./tools.ts";

/** The repository root, where `main.ts` and `deno.json` are. */
export const REPO_ROOT: string = fileURLToPath(new URL("../..", import.meta.url));

/** Options for {@linkcode startEdgemuxCli}. */
export interface CliOptions {
  /** Extra environment variables (e.g. `NOTIFY_SOCKET`). */
  env?: Record<string, string>;
  /** How long to wait for the `edgemux started` line. Default 20000. */
  startTimeoutMs?: number;
  /**
   * Run under `prlimit --nofile=N` (util-linux), which execs edgemux with at most N open file
   * descriptors: the process keeps its PID, so signals still reach edgemux itself.
   */
  nofile?: number;
}

/** A running `edgemux run`. */
export interface EdgemuxCli extends AsyncDisposable {
  /** The process running main.ts (the supervisor, with `workers` above 1). */
  readonly pid: number;
  readonly process: BackgroundProcess;
  /** Settles when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  /** Everything it wrote so far (the log goes to standard error). */
  output(): string;
  waitForOutput(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /** The port of `listener`'s first `listening` line (of any process). */
  port(listener: string): number;
  /** `http://127.0.0.1:PORT` of the admin listener, from the main process's start line. */
  readonly adminUrl: string;
  /** Sends `signal` to the main process only, not to its process group. */
  signal(signal: Deno.Signal): void;
  /**
   * Stops it (SIGTERM to the group, SIGKILL after 3 s) and resolves with the exit status.
   * Safe to call more than once.
   */
  stop(): Promise<ExitStatus>;
}

/**
 * Lines whose message is `message`, parsed as `key=value` pairs (the logfmt text format,
 * `time=… level=… msg=… key=value …`, with or without a journald `<N>` prefix). The fields
 * returned are the record's own: without `time`, `level` and `msg`.
 */
export function logLines(output: string, message: string): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  for (const raw of output.split("\n")) {
    const line = raw.replace(/^<\d>/, "");
    if (!/^(?:time=\S+ )?level=\w+ msg=/.test(line)) continue;
    const fields = parseFields(line);
    if (fields.msg !== message) continue;
    delete fields.time;
    delete fields.level;
    delete fields.msg;
    out.push(fields);
  }
  return out;
}

/**
 * Waits until `output()` holds at least `count` lines with message `message` that pass
 * `filter`, and resolves with them. The log is written in batches (every 50 ms), and workers
 * write their own, so a line can arrive after an event the test saw another way.
 */
export async function waitForLogLines(
  output: () => string,
  message: string,
  count: number,
  filter: (fields: Record<string, string>) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<Record<string, string>[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const lines = logLines(output(), message).filter(filter);
    if (lines.length >= count) return lines;
    if (performance.now() > deadline) {
      throw new Error(
        `${lines.length} of ${count} "${message}" lines within ${timeoutMs} ms; output:\n` +
          output(),
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Parses `key=value key="quoted value"` as the text log format writes it. */
function parseFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    while (text[i] === " ") i++;
    const eq = text.indexOf("=", i);
    if (eq < 0) break;
    const key = text.slice(i, eq);
    i = eq + 1;
    if (text[i] === '"') {
      // A JSON string: its end is the first quote not escaped by a backslash.
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      if (end >= text.length) throw new Error(`unterminated value of ${key} in: ${text}`);
      fields[key] = JSON.parse(text.slice(i, end + 1));
      i = end + 1;
    } else {
      const end = text.indexOf(" ", i);
      fields[key] = text.slice(i, end < 0 ? text.length : end);
      i = end < 0 ? text.length : end;
    }
  }
  return fields;
}

/**
 * Starts `edgemux run -c configPath --log-format text` and waits for the main process's
 * `edgemux started` line.
 *
 * @throws {Error} when it exits or does not start in time; the message quotes its output
 */
export async function startEdgemuxCli(
  configPath: string,
  opts: CliOptions = {},
): Promise<EdgemuxCli> {
  const edgemux = [Deno.execPath(), "run", "-A", "main.ts", "run", "-c", configPath];
  const command = opts.nofile === undefined
    ? edgemux
    : [requireTool("prlimit", "util-linux"), `--nofile=${opts.nofile}`, ...edgemux];
  const proc = startProcess(command[0], [...command.slice(1), "--log-format", "text"], {
    cwd: REPO_ROOT,
    env: opts.env,
  });
  try {
    // Workers log their own start lines; the main process's carries its own pid.
    await proc.waitForOutput(
      new RegExp(`msg="edgemux started" .*pid=${proc.pid}\\b`),
      opts.startTimeoutMs ?? 20_000,
    );
  } catch (e) {
    await proc.stop("SIGKILL");
    throw e;
  }
  const started = logLines(proc.output(), "edgemux started").find((f) =>
    f.pid === String(proc.pid)
  );
  const admin = started?.admin ?? "-";
  return {
    pid: proc.pid,
    process: proc,
    exited: proc.exited,
    output: proc.output,
    waitForOutput: proc.waitForOutput,
    port(listener: string): number {
      const line = logLines(proc.output(), "listening").find((f) => f.listener === listener);
      if (line === undefined) {
        throw new Error(`no "listening" line for ${listener} in:\n${proc.output()}`);
      }
      return Number(line.address.slice(line.address.lastIndexOf(":") + 1));
    },
    get adminUrl(): string {
      if (admin === "-") throw new Error(`edgemux started without an admin listener`);
      return `http://${admin}`;
    },
    signal(signal: Deno.Signal): void {
      Deno.kill(proc.pid, signal);
    },
    stop: () => proc.stop("SIGTERM"),
    async [Symbol.asyncDispose]() {
      await proc.stop("SIGTERM");
    },
  };
}

/**
 * Writes `configFor(port)` to `file` for a port that was free a moment ago and starts
 * `edgemux run` on it, trying another port (three times in all) when some other process took
 * the port in between. For listeners that cannot bind port 0, e.g. those workers share.
 *
 * @throws {Error} as {@linkcode startEdgemuxCli} does, or when the port is taken three times
 */
export async function startEdgemuxCliOnFreePort(
  file: string,
  configFor: (port: number) => string,
  opts: CliOptions = {},
): Promise<{ cli: EdgemuxCli; port: number }> {
  for (let attempt = 1;; attempt++) {
    const port = pickFreePort();
    await Deno.writeTextFile(file, configFor(port));
    try {
      return { cli: await startEdgemuxCli(file, opts), port };
    } catch (e) {
      if (attempt < 3 && String(e).includes("already in use")) continue;
      throw e;
    }
  }
}

/** Options for {@linkcode echoForwardConfig}. */
export interface EchoForwardOptions {
  /** The port the `tcp` listener binds. Default 0. */
  tcpPort?: number;
  /** `shutdown_timeout`. Default `2s`. */
  shutdownTimeout?: string;
  /** More top-level lines, each ending in a newline (e.g. `"workers: 2\n"`). */
  top?: string;
  /** More listeners, indented as entries under `listeners:`. */
  listeners?: string;
  /** More keys of backend `echo`, on its one line (e.g. `"max_connections_per_client: none"`). */
  echoKeys?: string;
}

/**
 * A config whose listener `tcp` forwards every connection to backend `echo` (the server on
 * 127.0.0.1:`echoPort`), with access lines in the text log. The lines up to `top` come first,
 * so the `forward: echo` line is line 10 plus the lines of `top`.
 */
export function echoForwardConfig(echoPort: number, opts: EchoForwardOptions = {}): string {
  return `version: 1
log: { level: info, format: text, access: true }
shutdown_timeout: ${opts.shutdownTimeout ?? "2s"}
${opts.top ?? ""}backends:
  echo: { servers: ["127.0.0.1:${echoPort}"]${opts.echoKeys ? `, ${opts.echoKeys}` : ""} }
listeners:
  tcp:
    bind: "127.0.0.1:${opts.tcpPort ?? 0}"
    routes:
      - forward: echo
${opts.listeners ?? ""}`;
}

/** Writes `text` to `path` by writing a temporary file beside it and renaming it over. */
export async function replaceFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}
