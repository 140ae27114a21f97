/**
 * Running external programs from tests: one-shot commands with a hard timeout, and background
 * servers whose output can be awaited.
 *
 * Every child is spawned `detached`, which in Deno 2.9.6 means `setsid()`: the child leads a new
 * process group whose id is its PID. Signals go to that group (`kill(-pid)`), so helpers a
 * program forks (nginx workers, `sh -c` pipelines) stop with it instead of outliving the test.
 * Only the PIDs of processes started here are ever signalled.
 *
 * @module
 */

/** Options shared by {@linkcode run} and {@linkcode startProcess}. */
export interface SpawnOptions {
  /** Extra environment variables, added to the inherited environment. */
  env?: Record<string, string>;
  /** Working directory of the child. */
  cwd?: string;
}

/** Options for {@linkcode run}. */
export interface RunOptions extends SpawnOptions {
  /** Written to the child's stdin, which is then closed. Without it stdin is `/dev/null`. */
  stdin?: string | Uint8Array;
  /** Kill the child and reject after this many milliseconds. Default 20000. */
  timeoutMs?: number;
}

/** How a child ended. `code` is 128 + the signal number when `signal` is set. */
export interface ExitStatus {
  code: number;
  signal: Deno.Signal | null;
}

/** Result of {@linkcode run}. A non-zero exit code is a result, not an error. */
export interface RunResult extends ExitStatus {
  stdout: string;
  stderr: string;
}

/** A long-running child started by {@linkcode startProcess}. */
export interface BackgroundProcess extends AsyncDisposable {
  /** PID of the child, which is also the id of its process group. */
  readonly pid: number;
  /** The command line, quoted for messages. */
  readonly commandLine: string;
  /** Settles when the child has exited and its output has been read. */
  readonly exited: Promise<ExitStatus>;
  /**
   * Waits until the output seen so far (stdout and stderr together, from the start) matches.
   * Resolves with the matched text; rejects if the child exits first or the time runs out,
   * quoting the output in the error.
   */
  waitForOutput(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /** Everything the child wrote so far, stdout and stderr interleaved as they arrived. */
  output(): string;
  /**
   * Sends `signal` to the child's process group, waits for the exit and sends SIGKILL if the
   * child is still running after 3 s. Safe to call more than once.
   */
  stop(signal?: Deno.Signal): Promise<ExitStatus>;
}

const DEFAULT_RUN_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 3_000;
// A grandchild that escaped the group (or daemonised) can hold the pipes open after the child
// exits; reading is abandoned after this long so a test never hangs on it.
const PIPE_DRAIN_MS = 1_000;

const live = new Set<number>();

// Last-resort cleanup when a test file ends without stopping what it started.
globalThis.addEventListener("unload", () => {
  for (const pid of live) signalGroup(pid, "SIGKILL");
});

function signalGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Quotes a command line the way a POSIX shell would need it, for error messages. */
export function formatCommandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args]
    .map((word) => /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)
    .join(" ");
}

function delay(ms: number): { promise: Promise<void>; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Reads a child's pipe to the end, handing each decoded chunk to `onText`. */
class PipeReader {
  readonly done: Promise<void>;
  #reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(stream: ReadableStream<Uint8Array>, onText: (text: string) => void) {
    const reader = stream.getReader();
    this.#reader = reader;
    const decoder = new TextDecoder();
    this.done = (async () => {
      try {
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          onText(decoder.decode(value, { stream: true }));
        }
      } catch {
        // Cancelled by abandon(); whatever was read is kept.
      }
      const tail = decoder.decode();
      if (tail) onText(tail);
    })();
  }

  async abandon(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
    await this.done;
  }
}

async function drainPipes(readers: PipeReader[]): Promise<void> {
  const all = Promise.all(readers.map((reader) => reader.done));
  const timeout = delay(PIPE_DRAIN_MS);
  const drained = await Promise.race([all.then(() => true), timeout.promise.then(() => false)]);
  timeout.cancel();
  if (!drained) await Promise.all(readers.map((reader) => reader.abandon()));
}

function toExitStatus(status: Deno.CommandStatus): ExitStatus {
  return { code: status.code, signal: status.signal };
}

function spawn(
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions,
  stdin: "piped" | "null",
): Deno.ChildProcess {
  const child = new Deno.Command(cmd, {
    args: [...args],
    env: opts.env,
    cwd: opts.cwd,
    stdin,
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  live.add(child.pid);
  return child;
}

/** After the child itself exits, nothing else of its group may survive it. */
async function reap(child: Deno.ChildProcess): Promise<ExitStatus> {
  const status = toExitStatus(await child.status);
  signalGroup(child.pid, "SIGKILL");
  live.delete(child.pid);
  return status;
}

/**
 * Runs a command to completion and returns its exit status and output.
 *
 * @param cmd the program (a name on PATH or an absolute path)
 * @param args its arguments, passed without a shell
 * @param opts stdin, timeout (default 20 s), environment and working directory
 * @returns exit code, signal, stdout and stderr (decoded as UTF-8)
 * @throws {Error} when the timeout passes; the child's process group is killed first and the
 * message includes the command line and the stderr captured so far
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const { code, stdout } = await run("openssl", ["version"]);
 * assert.equal(code, 0);
 * assert.match(stdout, /^OpenSSL /);
 * ```
 */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  const child = spawn(cmd, args, opts, opts.stdin === undefined ? "null" : "piped");
  let stdout = "";
  let stderr = "";
  const readers = [
    new PipeReader(child.stdout, (text) => stdout += text),
    new PipeReader(child.stderr, (text) => stderr += text),
  ];

  if (opts.stdin !== undefined) {
    const data = typeof opts.stdin === "string" ? new TextEncoder().encode(opts.stdin) : opts.stdin;
    const writer = child.stdin.getWriter();
    // A child may exit without reading its input; the broken pipe is not the caller's error.
    writer.write(data).then(() => writer.close()).catch(() => {});
  }

  const timeout = delay(timeoutMs);
  const finished = reap(child);
  const timedOut = await Promise.race([
    finished.then(() => false),
    timeout.promise.then(() => true),
  ]);
  timeout.cancel();
  if (timedOut) signalGroup(child.pid, "SIGKILL");
  const status = await finished;
  await drainPipes(readers);
  if (timedOut) {
    throw new Error(
      `command timed out after ${timeoutMs} ms and was killed: ${formatCommandLine(cmd, args)}\n` +
        `stderr:\n${stderr}`,
    );
  }
  return { ...status, stdout, stderr };
}

interface OutputWaiter {
  matches(text: string): string | null;
  resolve(match: string): void;
  reject(error: Error): void;
}

/**
 * Starts a long-running command in the background, collecting its output.
 *
 * @param cmd the program (a name on PATH or an absolute path)
 * @param args its arguments, passed without a shell
 * @param opts environment and working directory; stdin is `/dev/null`
 * @returns a handle to wait on output, read it, and stop the process
 * @example
 * ```ts
 * await using server = startProcess("sh", ["-c", "echo listening >&2; exec sleep 60"]);
 * await server.waitForOutput("listening", 5000);
 * ```
 */
export function startProcess(
  cmd: string,
  args: string[],
  opts: SpawnOptions = {},
): BackgroundProcess {
  const commandLine = formatCommandLine(cmd, args);
  const child = spawn(cmd, args, opts, "null");
  let combined = "";
  const waiters = new Set<OutputWaiter>();

  const onText = (text: string) => {
    combined += text;
    for (const waiter of waiters) {
      const match = waiter.matches(combined);
      if (match !== null) waiter.resolve(match);
    }
  };
  const readers = [new PipeReader(child.stdout, onText), new PipeReader(child.stderr, onText)];

  const exited = (async () => {
    const status = await reap(child);
    await drainPipes(readers);
    for (const waiter of waiters) {
      waiter.reject(
        new Error(
          `${commandLine} exited (code ${status.code}, signal ${status.signal}) before its ` +
            `output matched; output:\n${combined}`,
        ),
      );
    }
    return status;
  })();

  const waitForOutput = (pattern: RegExp | string, timeoutMs = 10_000): Promise<string> => {
    const matches = (text: string): string | null => {
      if (typeof pattern === "string") return text.includes(pattern) ? pattern : null;
      return pattern.exec(text)?.[0] ?? null;
    };
    const already = matches(combined);
    if (already !== null) return Promise.resolve(already);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(
          new Error(
            `${commandLine} did not print ${String(pattern)} within ${timeoutMs} ms; ` +
              `output:\n${combined}`,
          ),
        );
      }, timeoutMs);
      const waiter: OutputWaiter = {
        matches,
        resolve: (match) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(match);
        },
        reject: (error) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          reject(error);
        },
      };
      waiters.add(waiter);
    });
  };

  let stopping: Promise<ExitStatus> | undefined;
  const stop = (signal: Deno.Signal = "SIGTERM"): Promise<ExitStatus> => {
    stopping ??= (async () => {
      if (live.has(child.pid)) signalGroup(child.pid, signal);
      const grace = delay(STOP_GRACE_MS);
      const done = await Promise.race([
        exited.then(() => true),
        grace.promise.then(() => false),
      ]);
      grace.cancel();
      if (!done) signalGroup(child.pid, "SIGKILL");
      return await exited;
    })();
    return stopping;
  };

  return {
    pid: child.pid,
    commandLine,
    exited,
    waitForOutput,
    output: () => combined,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
