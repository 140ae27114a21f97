/**
 * curl as an HTTP client whose result is parsed into status, headers and body.
 *
 * The body goes to stdout and curl's `--write-out` appends, after a random marker, `%{json}`
 * (status, HTTP version, error message) and `%{header_json}` (the headers of the last
 * response, so `-L` and `100 Continue` need no parsing of header blocks). Nothing is written
 * to disk.
 *
 * @module
 */

import { certPath } from "./certs.ts";
import { run } from "./process.ts";
import { requireTool } from "./tools.ts";

/** Options for {@linkcode curl}. */
export interface CurlOptions {
  /** Kill curl and reject after this long. Default 15000. */
  timeoutMs?: number;
  /** Sent as the request body source when the args say `--data-binary @-` or `-T -`. */
  stdin?: string | Uint8Array;
}

/** What {@linkcode curl} returns. A failed transfer is a result (see `code`), not an error. */
export interface CurlResult {
  /** curl's exit code: 0 on success, e.g. 7 refused, 35 TLS handshake, 60 untrusted cert. */
  code: number;
  /** HTTP status of the last response, 0 when there was none. */
  status: number;
  /** Headers of the last response; lowercase names, repeated values joined with ", ". */
  headers: Record<string, string>;
  /** The response body decoded as UTF-8. */
  body: string;
  /** `1.1`, `2`, `1.0`, or null when no response arrived. */
  httpVersion: string | null;
  /** curl's own error message, e.g. "SSL certificate problem: ...", or "". */
  errorMessage: string;
  /** curl's stderr (`-sS` keeps only errors). */
  stderr: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Runs `curl -sS ARGS` and parses the response.
 *
 * Pass URLs and any curl options, e.g. `--resolve name:port:127.0.0.1`, `--cacert FILE`,
 * `--http1.1`, `--http2`, `-H`, `-X`, `--data-binary`, `-L`; but not `-o`, `-i`, `-D` or `-w`,
 * which this helper owns.
 *
 * @throws {Error} when curl is missing, times out, or its output cannot be parsed
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startTlsHttpBackend } from "./backends.ts";
 * import { certPath } from "./certs.ts";
 *
 * await using vault = await startTlsHttpBackend("vault", "vault");
 * const res = await curl([
 *   "--resolve",
 *   `vault.example.test:${vault.port}:127.0.0.1`,
 *   "--cacert",
 *   certPath("ca"),
 *   `https://vault.example.test:${vault.port}/`,
 * ]);
 * assert.equal(res.headers["x-backend"], "vault");
 * assert.equal(res.httpVersion, "2");
 * ```
 */
export async function curl(args: string[], opts: CurlOptions = {}): Promise<CurlResult> {
  const bin = requireTool("curl", "curl");
  // Never starts with "@", which -w would read as a file name.
  const marker = `\n--edgemux-curl-${crypto.randomUUID()}--\n`;
  const writeOut = `${marker}%{json}${marker}%{header_json}`;
  const fullArgs = ["-sS", "-o", "-", "-w", writeOut, ...args];
  const result = await run(bin, fullArgs, {
    timeoutMs: opts.timeoutMs ?? 15_000,
    stdin: opts.stdin,
  });

  const headerStart = result.stdout.lastIndexOf(marker);
  const metaStart = result.stdout.lastIndexOf(marker, headerStart - 1);
  if (metaStart < 0 || headerStart <= metaStart) {
    throw new Error(
      `cannot find curl's --write-out in its output (exit ${result.code}); stderr:\n` +
        result.stderr,
    );
  }
  const meta: unknown = JSON.parse(result.stdout.slice(metaStart + marker.length, headerStart));
  const headerJson: unknown = JSON.parse(result.stdout.slice(headerStart + marker.length));
  if (!isRecord(meta) || !isRecord(headerJson)) {
    throw new Error(`curl's --write-out is not a JSON object: ${result.stdout.slice(metaStart)}`);
  }

  const headers: Record<string, string> = {};
  for (const [name, values] of Object.entries(headerJson)) {
    headers[name.toLowerCase()] = Array.isArray(values) ? values.map(String).join(", ") : "";
  }
  const version = typeof meta.http_version === "string" ? meta.http_version : "0";
  return {
    code: result.code,
    status: typeof meta.response_code === "number" ? meta.response_code : 0,
    headers,
    body: result.stdout.slice(0, metaStart),
    httpVersion: version === "0" ? null : version,
    errorMessage: typeof meta.errormsg === "string" ? meta.errormsg : "",
    stderr: result.stderr,
  };
}

/**
 * {@linkcode curl} of `https://NAME:PORT/PATH` over HTTP/`version`, with NAME resolved to
 * 127.0.0.1 and the test CA trusted: a request to edgemux's TLS listener as a client that knows
 * the name would send it. `args` go before the URL.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startTlsHttpBackend } from "./backends.ts";
 *
 * await using vault = await startTlsHttpBackend("vault", "vault");
 * const res = await curlHttps(vault.port, "vault.example.test", "/x", "2");
 * assert.equal(res.body, "backend vault GET /x\n");
 * assert.equal(res.httpVersion, "2");
 * ```
 */
export function curlHttps(
  port: number,
  name: string,
  path: string,
  version: "1.1" | "2" = "1.1",
  args: string[] = [],
  opts: CurlOptions = {},
): Promise<CurlResult> {
  return curl([
    version === "2" ? "--http2" : "--http1.1",
    "--cacert",
    certPath("ca"),
    "--resolve",
    `${name}:${port}:127.0.0.1`,
    ...args,
    `https://${name}:${port}${path}`,
  ], opts);
}
