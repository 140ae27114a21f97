/**
 * An HTTP backend for long transfers and chosen statuses:
 *
 * - `GET /download?id=ID&bytes=N[&every=MS][&hold=B]` streams N bytes of {@linkcode patternBytes}
 *   in 64 KiB chunks, MS milliseconds apart (default 0). With `hold`, it stops after B bytes and
 *   waits until the test calls `release(ID)`, so a transfer stays open exactly as long as the
 *   test needs, whatever the machine's speed.
 * - `GET /status/NNN` answers status NNN with a short body.
 * - anything else answers 200 `ok <path>`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { serveHttp } from "./backends.ts";

const CHUNK = 64 * 1024;

/** Byte `i` of every download: a pattern with a long period, so a lost or moved chunk shows. */
export function patternBytes(offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let k = 0; k < length; k++) {
    const i = offset + k;
    out[k] = (i * 31 + (i >>> 11) * 7 + (i >>> 19)) & 0xff;
  }
  return out;
}

/** The hex SHA-256 of the first `n` bytes of the pattern. */
export function patternSha256(n: number): string {
  const hash = createHash("sha256");
  for (let o = 0; o < n; o += CHUNK) hash.update(patternBytes(o, Math.min(CHUNK, n - o)));
  return hash.digest("hex");
}

/** What the backend knows about one download. */
export interface DownloadState {
  /** Bytes handed to the server so far. */
  sent: number;
  /** True once every byte was handed over. */
  finished: boolean;
  /** True when the client (edgemux) went away before the end. */
  cancelled: boolean;
}

/** A running {@linkcode startDownloadBackend}. */
export interface DownloadBackend extends AsyncDisposable {
  readonly port: number;
  /** Status and path of each request, in arrival order. */
  readonly requests: { path: string; status: number }[];
  /** The state of download `id` (undefined before its request arrived). */
  download(id: string): DownloadState | undefined;
  /** Resolves once download `id` has sent at least `bytes` bytes. */
  waitForSent(id: string, bytes: number, timeoutMs?: number): Promise<void>;
  /** Lets a held download go on to its end. */
  release(id: string): void;
  close(): Promise<void>;
}

/** Starts the backend on 127.0.0.1, port 0. */
export function startDownloadBackend(): DownloadBackend {
  const downloads = new Map<string, DownloadState>();
  const gates = new Map<string, PromiseWithResolvers<void>>();
  const waiters = new Set<() => void>();
  const requests: { path: string; status: number }[] = [];
  const gate = (id: string) => {
    let g = gates.get(id);
    if (g === undefined) {
      g = Promise.withResolvers<void>();
      gates.set(id, g);
    }
    return g;
  };
  const changed = () => {
    for (const w of [...waiters]) w();
  };

  const download = (url: URL): Response => {
    const id = url.searchParams.get("id") ?? crypto.randomUUID();
    const total = Number(url.searchParams.get("bytes") ?? "0");
    const every = Number(url.searchParams.get("every") ?? "0");
    const hold = url.searchParams.has("hold") ? Number(url.searchParams.get("hold")) : null;
    const state: DownloadState = { sent: 0, finished: false, cancelled: false };
    downloads.set(id, state);
    changed();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (hold !== null && state.sent >= hold) await gate(id).promise;
        else if (every > 0 && state.sent > 0) await new Promise((r) => setTimeout(r, every));
        const n = Math.min(
          CHUNK,
          total - state.sent,
          hold !== null && state.sent < hold ? hold - state.sent : Infinity,
        );
        if (n > 0) {
          controller.enqueue(patternBytes(state.sent, n));
          state.sent += n;
        }
        if (state.sent >= total) {
          state.finished = true;
          controller.close();
        }
        changed();
      },
      cancel() {
        state.cancelled = true;
        changed();
      },
    }, { highWaterMark: 0 });
    return new Response(body, {
      headers: { "content-type": "application/octet-stream", "content-length": String(total) },
    });
  };

  const server = serveHttp((req) => {
    const url = new URL(req.url);
    let res: Response;
    if (url.pathname === "/download") res = download(url);
    else if (url.pathname.startsWith("/status/")) {
      const status = Number(url.pathname.slice("/status/".length));
      res = new Response(status === 204 || status === 304 ? null : `status ${status}\n`, {
        status,
      });
    } else res = new Response(`ok ${url.pathname}\n`);
    requests.push({ path: url.pathname + url.search, status: res.status });
    return res;
  }, { onError: () => new Response("backend error\n", { status: 500 }) });

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      for (const g of gates.values()) g.resolve();
      await server.close();
    })();
    return closing;
  };
  return {
    port: server.port,
    requests,
    download: (id) => downloads.get(id),
    waitForSent(id, bytes, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          const s = downloads.get(id);
          if (s === undefined || s.sent < bytes) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `download ${id} did not reach ${bytes} bytes within ${timeoutMs} ms: ` +
                JSON.stringify(downloads.get(id) ?? null),
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    release: (id) => gate(id).resolve(),
    close,
    [Symbol.asyncDispose]: close,
  };
}
