/**
 * Processes for the benchmark: one-shot commands with a hard time limit, long-running servers,
 * and what `/proc` says about them (CPU time, resident memory, open descriptors).
 *
 * Every child is spawned `detached` (its own process group, whose id is its PID), so stopping
 * it also stops what it forked (nginx workers). Only PIDs of processes started here are ever
 * signalled; nothing is killed by name.
 *
 * @module
 */

const decoder = new TextDecoder();
/** Long-running children keep this much of their latest output, for error messages. */
const OUTPUT_TAIL_CHARS = 32_768;
const STOP_GRACE_MS = 5_000;

const live = new Set<number>();

function signalGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/** Kills every process group still running that this module started. For emergency exits. */
export function killAllStarted(): void {
  for (const pid of live) signalGroup(pid, "SIGKILL");
  live.clear();
}

/** Result of {@linkcode runCommand}. A non-zero exit code is a result, not an error. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall-clock milliseconds from spawn to exit. */
  ms: number;
}

/** Options for {@linkcode runCommand}. */
export interface RunOptions {
  /** Kill the command's process group and throw after this many milliseconds. */
  timeoutMs: number;
  cwd?: string;
  env?: Record<string, string>;
}

/** Quotes a command line for messages and for the reproduction notes in the report. */
export function formatCommand(argv: readonly string[]): string {
  return argv.map((w) => /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`)
    .join(" ");
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
}

/**
 * Spawns `argv` without a shell in a process group of its own, stdout and stderr piped, and
 * remembers its PID for {@linkcode killAllStarted}.
 */
function spawnTracked(
  argv: readonly string[],
  opts: ServerOptions,
  stdin: "null" | "piped",
): Deno.ChildProcess {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: opts.cwd,
    env: opts.env,
    stdin,
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  live.add(child.pid);
  return child;
}

/**
 * Runs `argv` to completion without a shell, with stdin closed.
 *
 * @throws {Error} when the time limit passes (the process group is killed first)
 */
export async function runCommand(
  argv: readonly string[],
  opts: RunOptions,
): Promise<CommandResult> {
  const started = performance.now();
  const child = spawnTracked(argv, opts, "null");
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup(child.pid, "SIGKILL");
  }, opts.timeoutMs);
  try {
    const [stdout, stderr, status] = await Promise.all([
      readAll(child.stdout),
      readAll(child.stderr),
      child.status,
    ]);
    if (timedOut) {
      throw new Error(
        `timed out after ${opts.timeoutMs} ms and was killed: ${formatCommand(argv)}\n${stderr}`,
      );
    }
    return { code: status.code, stdout, stderr, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
    signalGroup(child.pid, "SIGKILL");
    live.delete(child.pid);
  }
}

/** A long-running child from {@linkcode startServer}. */
export interface Server {
  readonly name: string;
  readonly pid: number;
  readonly argv: readonly string[];
  /** The latest output (stdout and stderr interleaved), at most 32 KiB. */
  output(): string;
  /** Whether the process has exited. */
  exited(): boolean;
  /** SIGTERM (or `signal`) to the process group, SIGKILL after 5 s. Safe to call twice. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/** Options for {@linkcode startServer}. */
export interface ServerOptions {
  cwd?: string;
  env?: Record<string, string>;
}

/** Starts a long-running program without a shell, keeping the tail of its output. */
export function startServer(
  name: string,
  argv: readonly string[],
  opts: ServerOptions = {},
): Server {
  const child = spawnTracked(argv, opts, "null");
  let tail = "";
  const keep = async (stream: ReadableStream<Uint8Array>) => {
    try {
      for await (const chunk of stream) {
        tail = (tail + decoder.decode(chunk, { stream: true })).slice(-OUTPUT_TAIL_CHARS);
      }
    } catch {
      // The pipe broke as the process died; the tail so far is kept.
    }
  };
  const pipes = Promise.all([keep(child.stdout), keep(child.stderr)]);
  let done = false;
  const status = child.status.then((s) => {
    done = true;
    return s;
  });
  let stopping: Promise<void> | undefined;
  return {
    name,
    pid: child.pid,
    argv,
    output: () => tail,
    exited: () => done,
    stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
      stopping ??= (async () => {
        signalGroup(child.pid, signal);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const grace = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, STOP_GRACE_MS);
        });
        await Promise.race([status, grace]);
        clearTimeout(timer);
        signalGroup(child.pid, "SIGKILL");
        await status;
        await Promise.race([pipes, new Promise((resolve) => setTimeout(resolve, 500))]);
        live.delete(child.pid);
      })();
      return stopping;
    },
  };
}

/** A child driven line by line over stdin and stdout, from {@linkcode startInteractive}. */
export interface Interactive {
  readonly pid: number;
  /** The next line the child prints on stdout; rejects after `timeoutMs` or at its exit. */
  readLine(timeoutMs: number): Promise<string>;
  writeLine(line: string): Promise<void>;
  /** Closes its stdin and waits (up to 10 s, then SIGKILL) for it to exit. */
  close(): Promise<{ code: number; stderr: string }>;
}

/** Starts a program that talks in lines on stdin and stdout; stderr is collected. */
export function startInteractive(argv: readonly string[], opts: ServerOptions = {}): Interactive {
  const child = spawnTracked(argv, opts, "piped");
  const stderr = readAll(child.stderr);
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const writer = child.stdin.getWriter();
  let buffered = "";
  const encoder = new TextEncoder();
  return {
    pid: child.pid,
    async readLine(timeoutMs: number): Promise<string> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${formatCommand(argv)} printed no line in ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      try {
        while (!buffered.includes("\n")) {
          const { value, done } = await Promise.race([lines.read(), expired]);
          if (done) {
            throw new Error(`${formatCommand(argv)} exited early:\n${await stderr}`);
          }
          buffered += value;
        }
      } finally {
        clearTimeout(timer);
      }
      const i = buffered.indexOf("\n");
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      return line;
    },
    async writeLine(line: string): Promise<void> {
      await writer.write(encoder.encode(line + "\n"));
    },
    async close() {
      await writer.close().catch(() => {});
      const timer = setTimeout(() => signalGroup(child.pid, "SIGKILL"), 10_000);
      const status = await child.status;
      clearTimeout(timer);
      signalGroup(child.pid, "SIGKILL");
      live.delete(child.pid);
      await lines.cancel().catch(() => {});
      return { code: status.code, stderr: await stderr };
    },
  };
}

/** Resolves once `127.0.0.1:port` accepts a TCP connection. */
export async function waitForPort(port: number, server: Server, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    if (server.exited()) {
      throw new Error(`${server.name} exited before listening on ${port}:\n${server.output()}`);
    }
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${server.name} did not listen on ${port} within ${timeoutMs} ms:\n${server.output()}`,
      );
    }
    await sleep(50);
  }
}

/** A promise that resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// /proc

/** Clock ticks per second for /proc/PID/stat times (`getconf CLK_TCK`; 100 on Linux x86-64). */
export const CLOCK_TICKS_PER_SECOND = 100;

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Splits /proc/PID/stat after the command name (which may hold spaces and parentheses), so
 * that index 0 is field 3 (`state`) of proc(5).
 */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).trim().split(" ");
}

/** The PID and every descendant of it that is alive now. */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = readText(`/proc/${entry.name}/stat`);
    if (stat === undefined) continue;
    const ppid = Number(statFields(stat)[1]);
    const list = parents.get(ppid) ?? [];
    list.push(Number(entry.name));
    parents.set(ppid, list);
  }
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    tree.push(p);
    queue.push(...(parents.get(p) ?? []));
  }
  return tree;
}

/** User plus system CPU time of a process tree, in clock ticks (all threads included). */
export function cpuTicks(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    const stat = readText(`/proc/${p}/stat`);
    if (stat === undefined) continue;
    const f = statFields(stat);
    // Fields 14 (utime) and 15 (stime) of proc(5); index 0 here is field 3.
    total += Number(f[11]) + Number(f[12]);
  }
  return total;
}

/** Resident memory (VmRSS) of a process tree, in KiB. */
export function rssKiB(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    const m = readText(`/proc/${p}/status`)?.match(/^VmRSS:\s+(\d+) kB/m);
    if (m) total += Number(m[1]);
  }
  return total;
}

/** Open file descriptors of a process tree. */
export function openFds(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      for (const _ of Deno.readDirSync(`/proc/${p}/fd`)) total++;
    } catch {
      // Gone, or not ours to read.
    }
  }
  return total;
}
