/**
 * Values from the network reach the log escaped: a TLS ClientHello whose ALPN names hold NEL
 * (0x85), 8-bit CSI (0x9b), ESC, CR/LF, quotes and backslashes (RFC 7301 allows any bytes in a
 * protocol name, so the parser keeps them) is logged by `edgemux run` as one line of printable
 * ASCII, in the text and the JSON format, and the names read back exactly.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { buildClientHello } from "../proxy/_testing/hello_builder.ts";
import { startTcpBackend } from "./_helpers/backends.ts";
import { logLines, REPO_ROOT, startEdgemuxCli } from "./_helpers/edgemux_cli.ts";
import { startProcess } from "./_helpers/process.ts";
import { makeTempDir } from "./_helpers/tmp.ts";

const SNI = "hostile.example.test";
/** One byte per character (the hello builder writes each char code as a byte). */
const NAMES = [
  "\x85",
  "h2\x9b31m",
  "\x1b[2J",
  "a\r\ntime=2026-01-01T00:00:00.000Z level=error msg=forged",
  '"q"=x',
  "back\\slash",
  "\xff\x00\x7f",
  "http/1.1",
];

function config(echoPort: number): string {
  return `version: 1
log: { level: info, format: text, access: true }
shutdown_timeout: 1s
backends:
  echo: { servers: ["127.0.0.1:${echoPort}"] }
listeners:
  tls:
    bind: "127.0.0.1:0"
    routes:
      - { sni: elsewhere.example.test, passthrough: echo }
`;
}

/** Sends the hostile hello and waits until edgemux closes the connection (no route). */
async function sendHello(port: number): Promise<void> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(buildClientHello({ sni: SNI, alpn: NAMES }));
  const buf = new Uint8Array(1024);
  while ((await conn.read(buf)) !== null) { /* until closed */ }
}

/** Every character of the output is printable ASCII or a line feed. */
function assertPrintableAscii(output: string): void {
  for (let i = 0; i < output.length; i++) {
    const c = output.charCodeAt(i);
    if (c !== 0x0a && (c < 0x20 || c > 0x7e)) {
      const line = output.slice(output.lastIndexOf("\n", i) + 1, output.indexOf("\n", i));
      throw new Error(
        `raw U+${c.toString(16).padStart(4, "0")} in the log line ${JSON.stringify(line)}`,
      );
    }
  }
}

Deno.test("ALPN names with NEL, CSI, ESC, CR/LF, quotes and backslashes stay one escaped line in the text log", async () => {
  await using echo = await startTcpBackend("echo", "echo");
  await using dir = await makeTempDir("edgemux-log-");
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(file, config(echo.port));
  await using cli = await startEdgemuxCli(file);
  await sendHello(cli.port("tls"));
  await cli.waitForOutput(`sni=${SNI}`, 5000);
  const output = cli.output();
  assertPrintableAscii(output);
  const lines = output.split("\n").filter((l) => l.includes(SNI));
  equal(lines.length, 1, `one line names ${SNI}:\n${lines.join("\n")}`);
  equal(output.includes("forged"), true);
  equal(/^time=\S+ level=error msg=forged/m.test(output), false, "no line was forged");
  const [access] = logLines(output, "connection").filter((f) => f.sni === SNI);
  ok(access, output);
  equal(access.alpn, NAMES.join(","));
  equal(access.end, "no-route");
});

Deno.test("the same hello stays one ASCII JSON line in the JSON log, with every name intact", async () => {
  await using echo = await startTcpBackend("echo", "echo");
  await using dir = await makeTempDir("edgemux-log-");
  const file = `${dir.path}/edgemux.yaml`;
  await Deno.writeTextFile(file, config(echo.port));
  await using proc = startProcess(
    Deno.execPath(),
    ["run", "-A", "main.ts", "run", "-c", file, "--log-format", "json"],
    { cwd: REPO_ROOT },
  );
  await proc.waitForOutput(/"msg":"edgemux started"/, 20_000);
  const listening = proc.output().split("\n").filter((l) => l.includes('"msg":"listening"'))
    .map((l) => JSON.parse(l) as { address: string })[0];
  const port = Number(listening.address.slice(listening.address.lastIndexOf(":") + 1));
  await sendHello(port);
  await proc.waitForOutput(`"sni":"${SNI}"`, 5000);
  const output = proc.output();
  assertPrintableAscii(output);
  const lines = output.split("\n").filter((l) => l.includes(SNI));
  equal(lines.length, 1);
  const record = JSON.parse(lines[0]) as { alpn: string[]; end: string };
  deepEqual(record.alpn, NAMES);
  equal(record.end, "no-route");
});
