/**
 * The child half of {@linkcode ./edgemux_process.ts}: runs edgemux in-process (through `mod.ts`,
 * as the library API does) in a process of its own, so that the file descriptors and memory a
 * test measures are edgemux's and not the test clients'.
 *
 * It speaks JSON lines. Each line on stdin is a command with an `id`; each answer on stdout
 * carries the same `id`. Access and request records are either streamed to stdout as events or
 * only counted, so a flood of 20,000 connections does not fill this process's memory with
 * records.
 *
 *   {"id":1,"cmd":"start","yaml":"…","stream":true}   → {"id":1,"ok":true,"ports":{…}}
 *   {"id":2,"cmd":"stats","gc":true}                  → {"id":2,"ok":true,"stats":{…}}
 *   {"id":3,"cmd":"reload","yaml":"…"}                → {"id":3,"ok":true,"ms":12}
 *   {"id":4,"cmd":"stop","timeoutMs":1000}            → {"id":4,"ok":true}, then exit 0
 *   events: {"event":"access","record":{…}}  {"event":"request","record":{…}}
 *
 * Run with `--v8-flags=--expose-gc` so that `stats` can collect garbage before it reads RSS.
 *
 * @module
 */

import {
  type AccessRecord,
  parseConfig,
  prepareConfig,
  type ProxyHandle,
  type RequestRecord,
  start,
} from "../../mod.ts";
import { configureLogging, formatText } from "../../proxy/observe/log.ts";
import { TEST_CONFIG_FILE } from "./edgemux.ts";
import type { HostStats } from "./edgemux_process.ts";

type Command =
  | { id: number; cmd: "start"; yaml: string; stream: boolean }
  | { id: number; cmd: "stats"; gc: boolean }
  | { id: number; cmd: "fds" }
  | { id: number; cmd: "reload"; yaml: string }
  | { id: number; cmd: "stop"; timeoutMs: number };

const encoder = new TextEncoder();
let proxy: ProxyHandle | null = null;
let stream = false;
let accessCount = 0;
let requestCount = 0;
const accessEnds: Record<string, number> = {};
const requestEnds: Record<string, number> = {};
const problems: string[] = [];
const uncaught: string[] = [];

// Writes are queued so that lines never interleave, and batched so that a flood of records
// costs one write per turn of the event loop rather than one per record.
let outbox: string[] = [];
let flushing: Promise<void> | null = null;

function send(message: unknown): void {
  outbox.push(JSON.stringify(message) + "\n");
  flushing ??= (async () => {
    while (outbox.length > 0) {
      const bytes = encoder.encode(outbox.join(""));
      outbox = [];
      for (let o = 0; o < bytes.length;) o += await Deno.stdout.write(bytes.subarray(o));
    }
    flushing = null;
  })();
}

function keep(list: string[], line: string): void {
  list.push(line);
  if (list.length > 100) list.shift();
}

// The same containment main.ts installs, but every swallowed error is also counted: a test
// fails on any of them.
globalThis.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  keep(uncaught, `unhandled rejection: ${String(e.reason?.stack ?? e.reason)}`);
});
globalThis.addEventListener("error", (e) => {
  e.preventDefault();
  keep(uncaught, `uncaught error: ${String(e.error?.stack ?? e.message)}`);
});

function onAccess(record: AccessRecord): void {
  accessCount++;
  accessEnds[record.end] = (accessEnds[record.end] ?? 0) + 1;
  if (record.end === "internal-error") keep(problems, `internal-error ${JSON.stringify(record)}`);
  if (stream) send({ event: "access", record });
}

function onRequest(record: RequestRecord): void {
  requestCount++;
  const key = `${record.status} ${record.end}`;
  requestEnds[key] = (requestEnds[key] ?? 0) + 1;
  if (stream) send({ event: "request", record });
}

function countFds(): number {
  let n = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
  // The directory handle used to list the descriptors is one of them.
  return n - 1;
}

function rssKiB(): number {
  const m = Deno.readTextFileSync("/proc/self/status").match(/^VmRSS:\s+(\d+) kB/m);
  return m ? Number(m[1]) : -1;
}

function stats(gc: boolean): HostStats {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (gc && collect) {
    // Twice: the first pass runs finalizers that free native handles for the second.
    collect();
    collect();
  }
  return {
    fds: countFds(),
    rssKiB: rssKiB(),
    heapUsedKiB: Math.round(Deno.memoryUsage().heapUsed / 1024),
    active: proxy?.activeConnections ?? 0,
    access: accessCount,
    requests: requestCount,
    accessEnds: { ...accessEnds },
    requestEnds: { ...requestEnds },
    problems: [...problems],
    uncaught: [...uncaught],
  };
}

const TCP_STATES: Record<string, string> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RECV",
  "04": "FIN_WAIT1",
  "05": "FIN_WAIT2",
  "06": "TIME_WAIT",
  "07": "CLOSE",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  "0A": "LISTEN",
  "0B": "CLOSING",
};

/** `7F000001:1F90` → `127.0.0.1:8080` (IPv4 only; IPv6 is left as read). */
function tcpAddress(hex: string): string {
  const [ip, port] = hex.split(":");
  if (ip.length !== 8) return `${ip}:${parseInt(port, 16)}`;
  const bytes = [6, 4, 2, 0].map((i) => parseInt(ip.slice(i, i + 2), 16));
  return `${bytes.join(".")}:${parseInt(port, 16)}`;
}

/** Every open descriptor, sockets described from /proc/self/net/tcp: for leak reports. */
function describeFds(): string[] {
  const sockets = new Map<string, string>();
  for (const table of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      sockets.set(
        f[9],
        `tcp ${tcpAddress(f[1])} -> ${tcpAddress(f[2])} ${TCP_STATES[f[3]] ?? f[3]}`,
      );
    }
  }
  try {
    for (const line of Deno.readTextFileSync("/proc/self/net/unix").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 7) continue;
      sockets.set(f[6], `unix ${f[4] === "0001" ? "stream" : "dgram"} ${f[7] ?? "(unnamed)"}`);
    }
  } catch {
    // No unix socket table: leave such sockets undescribed.
  }
  const out: string[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
    } catch {
      continue;
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    out.push(`${entry.name}: ${inode ? sockets.get(inode) ?? target : target}`);
  }
  return out;
}

async function prepare(yaml: string) {
  return await prepareConfig(parseConfig(yaml, TEST_CONFIG_FILE).config);
}

async function handle(command: Command): Promise<Record<string, unknown>> {
  switch (command.cmd) {
    case "start": {
      stream = command.stream;
      await configureLogging({
        level: "warning",
        format: "text",
        access: false,
        sink: (record) => {
          const line = formatText(record);
          keep(problems, line.trimEnd());
          Deno.stderr.writeSync(encoder.encode(line));
        },
      });
      proxy = await start(await prepare(command.yaml), { onAccess, onRequest });
      const ports: Record<string, number> = {};
      for (const [name, addrs] of proxy.addrs) ports[name] = addrs[0]?.port ?? 0;
      return { ports, pid: Deno.pid };
    }
    case "stats":
      return { stats: stats(command.gc) };
    case "fds":
      return { fds: describeFds() };
    case "reload": {
      const started = performance.now();
      await proxy!.reload(await prepare(command.yaml));
      return { ms: Math.round(performance.now() - started) };
    }
    case "stop":
      await proxy?.shutdown(command.timeoutMs);
      return {};
  }
}

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let buffered = "";
for await (const chunk of lines) {
  buffered += chunk;
  for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    if (line.trim() === "") continue;
    const command = JSON.parse(line) as Command;
    // Commands run concurrently (a reload must not wait behind a stats call); each answer
    // names its command.
    handle(command).then(
      (result) => send({ id: command.id, ok: true, ...result }),
      (e) => send({ id: command.id, ok: false, error: e instanceof Error ? e.message : String(e) }),
    ).then(async () => {
      if (command.cmd !== "stop") return;
      while (flushing !== null) await flushing;
      Deno.exit(0);
    });
  }
}
// The parent went away: stop at once. (The cast undoes a narrowing TypeScript cannot see past:
// `proxy` is assigned inside the command handler.)
await (proxy as ProxyHandle | null)?.shutdown(0);
Deno.exit(0);
