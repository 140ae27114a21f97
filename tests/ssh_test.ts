/**
 * SSH through edgemux, end to end: a real OpenSSH sshd behind it, the real `ssh` and `git`
 * clients in front, and a raw client that waits for the server to speak first (as some SSH
 * clients do on port 443).
 */

import { equal, match, ok } from "node:assert/strict";
import { startTlsHttpBackend } from "./_helpers/backends.ts";
import { certPath } from "./_helpers/certs.ts";
import { sha256Hex, startEdgemux } from "./_helpers/edgemux.ts";
import { sClient } from "./_helpers/openssl.ts";
import { run } from "./_helpers/process.ts";
import { startSshd } from "./_helpers/sshd.ts";
import { makeTempDir } from "./_helpers/tmp.ts";
import { requireTool } from "./_helpers/tools.ts";

const ssh = requireTool("ssh", "openssh-client");
const MIB = 1024 * 1024;

/** The ends a relayed connection has when one side simply finished. */
const CLEAN_ENDS = ["client-closed", "upstream-closed"];

/** A listener whose only route is a catch-all forward: edgemux reads nothing before relaying. */
function forwardOnlyConfig(sshdPort: number): string {
  return `
version: 1
backends:
  git-ssh: { servers: ["127.0.0.1:${sshdPort}"] }
listeners:
  ssh:
    bind: "127.0.0.1:0"
    routes:
      - forward: git-ssh
`;
}

/**
 * A TLS listener that sniffs (silent after 300 ms, timeout 2 s): a passthrough route for
 * vault.example.test, then `sshRoute` to sshd.
 */
function sniffingConfig(sshdPort: number, sshRoute: string): string {
  return `
version: 1
backends:
  git-ssh: { servers: ["127.0.0.1:${sshdPort}"] }
  vault: { servers: ["127.0.0.1:9"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    sniff: { silent_after: 300ms, timeout: 2s }
    routes:
      - { name: vault, sni: vault.example.test, passthrough: vault }
      - ${sshRoute}
`;
}

/**
 * Reads from `conn` until `done` says the bytes so far (one character per byte, so binary SSH
 * packets survive) are enough, the peer closes, or `timeoutMs` passes; then the connection is
 * closed, which is the only way to end a pending Deno read.
 */
async function readUntil(
  conn: Deno.Conn,
  done: (text: string) => boolean,
  timeoutMs: number,
  text = "",
): Promise<{ text: string; eof: boolean }> {
  const buf = new Uint8Array(4096);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  try {
    while (!done(text)) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch (e) {
        if (timedOut) {
          throw new Error(`nothing more within ${timeoutMs} ms; got ${JSON.stringify(text)}`);
        }
        if (e instanceof Deno.errors.ConnectionReset) return { text, eof: true };
        throw e;
      }
      if (n === null) return { text, eof: true };
      text += String.fromCharCode(...buf.subarray(0, n));
    }
    return { text, eof: false };
  } finally {
    clearTimeout(timer);
  }
}

/** Closes a connection that readUntil may already have closed at its deadline. */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

Deno.test("ssh works through a forward-only listener that relays without sniffing", async () => {
  await using sshd = await startSshd();
  await using edgemux = await startEdgemux(forwardOnlyConfig(sshd.port));

  const r = await run(ssh, [...sshd.sshArgs(edgemux.port("ssh")), "echo hello-forward"]);
  equal(r.code, 0, `ssh failed: ${r.stderr}\nsshd:\n${sshd.output()}`);
  equal(r.stdout, "hello-forward\n");

  const rec = await edgemux.waitForRecord((x) => x.listener === "ssh");
  equal(rec.protocol, "unknown", "a listener without sniffing never learns the protocol");
  equal(rec.backend, "git-ssh");
  equal(rec.server, `127.0.0.1:${sshd.port}`);
  ok(CLEAN_ENDS.includes(rec.end), `unexpected end ${rec.end} (${rec.detail})`);
  ok(rec.up > 0, `up is ${rec.up}`);
  ok(rec.down > 0, `down is ${rec.down}`);
});

Deno.test("ssh works on a TLS listener through a protocol: ssh route beside passthrough", async (t) => {
  await using sshd = await startSshd();
  await using vault = await startTlsHttpBackend("vault", "vault");
  await using edgemux = await startEdgemux(`
version: 1
backends:
  git-ssh: { servers: ["127.0.0.1:${sshd.port}"] }
  vault: { servers: ["127.0.0.1:${vault.port}"] }
listeners:
  https:
    bind: "127.0.0.1:0"
    routes:
      - { name: vault, sni: vault.example.test, passthrough: vault }
      - { name: ssh-over-443, protocol: ssh, forward: git-ssh }
`);
  const port = edgemux.port("https");

  await t.step("the ssh client's SSH-2.0 banner selects the ssh route", async () => {
    const r = await run(ssh, [...sshd.sshArgs(port), "echo hello-sniffed"]);
    equal(r.code, 0, `ssh failed: ${r.stderr}\nsshd:\n${sshd.output()}`);
    equal(r.stdout, "hello-sniffed\n");
    const rec = await edgemux.waitForRecord((x) => x.route === "ssh-over-443");
    equal(rec.protocol, "ssh");
    equal(rec.backend, "git-ssh");
    ok(CLEAN_ENDS.includes(rec.end), `unexpected end ${rec.end} (${rec.detail})`);
    ok(rec.up > 0 && rec.down > 0, `up ${rec.up}, down ${rec.down}`);
  });

  await t.step("TLS on the same port still reaches the passthrough backend", async () => {
    const r = await sClient({ port, servername: "vault.example.test", caFile: certPath("ca") });
    equal(r.peerCN, "vault.example.test");
    equal((await edgemux.waitForRecord((x) => x.route === "vault")).protocol, "tls");
  });
});

Deno.test("a client that waits for the server is forwarded to sshd after silent_after", async () => {
  await using sshd = await startSshd();
  await using edgemux = await startEdgemux(
    sniffingConfig(sshd.port, "{ name: ssh-or-silent, protocol: [ssh, silent], forward: git-ssh }"),
  );
  const started = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: edgemux.port("https") });
  let elapsed: number;
  try {
    const banner = await readUntil(conn, (text) => text.includes("\r\n"), 5000);
    elapsed = performance.now() - started;
    match(
      banner.text,
      /^SSH-2\.0-OpenSSH/,
      `expected sshd's banner, got ${JSON.stringify(banner.text)}`,
    );

    // Now the client speaks: its first bytes complete the read the sniffer started while the
    // client was silent. sshd sends its key exchange offer (SSH_MSG_KEXINIT, 20) only once it
    // has the client's identification, so the offer proves those bytes arrived.
    await conn.write(new TextEncoder().encode("SSH-2.0-edgemux_silent_test\r\n"));
    const bannerEnd = banner.text.indexOf("\r\n") + 2;
    const kex = await readUntil(conn, (text) => text.length >= bannerEnd + 6, 5000, banner.text);
    equal(kex.eof, false, `sshd closed instead of answering: ${JSON.stringify(kex.text)}`);
    equal(kex.text.charCodeAt(bannerEnd + 5), 20, "the first packet after the banner is KEXINIT");
  } finally {
    closeQuietly(conn);
  }
  ok(elapsed >= 250, `the banner came after ${elapsed.toFixed(0)} ms, before silent_after`);
  ok(elapsed < 1500, `the banner came after ${elapsed.toFixed(0)} ms, far past silent_after`);

  const rec = await edgemux.waitForRecord((x) => x.route === "ssh-or-silent");
  equal(rec.protocol, "silent");
  equal(rec.up, "SSH-2.0-edgemux_silent_test\r\n".length, "only the identification line was sent");
  ok(rec.down > 0, `down is ${rec.down}`);
  ok(CLEAN_ENDS.includes(rec.end), `unexpected end ${rec.end} (${rec.detail})`);
});

Deno.test("without a silent route, a client that waits is closed at the sniff timeout", async () => {
  await using sshd = await startSshd();
  await using edgemux = await startEdgemux(
    sniffingConfig(sshd.port, "{ name: ssh-only, protocol: ssh, forward: git-ssh }"),
  );
  const started = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: edgemux.port("https") });
  let got: { text: string; eof: boolean };
  try {
    got = await readUntil(conn, (text) => text.includes("SSH-"), 5000);
  } finally {
    closeQuietly(conn);
  }
  const elapsed = performance.now() - started;
  equal(got.eof, true, "edgemux should close the connection");
  equal(got.text, "", "nothing may reach a client that no route takes");
  ok(elapsed >= 1800, `closed after ${elapsed.toFixed(0)} ms, before the 2 s sniff timeout`);
  ok(elapsed < 3500, `closed after ${elapsed.toFixed(0)} ms, long after the sniff timeout`);

  const rec = await edgemux.waitForRecord((x) => x.listener === "https");
  equal(rec.end, "sniff-timeout");
  equal(rec.route, null);
  equal(rec.backend, null);
  equal(rec.up, 0);
  equal(rec.down, 0);
});

Deno.test("1 MiB crosses the forward complete in both directions", async (t) => {
  await using sshd = await startSshd();
  await using edgemux = await startEdgemux(forwardOnlyConfig(sshd.port));
  const port = edgemux.port("ssh");

  await t.step("download: head -c 1048576 /dev/zero arrives byte for byte", async () => {
    const r = await run(ssh, [...sshd.sshArgs(port), `head -c ${MIB} /dev/zero`]);
    equal(r.code, 0, r.stderr);
    equal(r.stdout.length, MIB);
    ok(/^\0*$/.test(r.stdout), "the download is not all zero bytes");
    const rec = await edgemux.waitForRecord((x) => x.listener === "ssh");
    ok(rec.down > MIB, `edgemux counted ${rec.down} bytes down`);
  });

  await t.step("upload: 1 MiB of random bytes has the same sha256 on the server", async () => {
    const data = new Uint8Array(MIB);
    for (let o = 0; o < MIB; o += 65536) crypto.getRandomValues(data.subarray(o, o + 65536));
    // sha256sum reads until the ssh channel's EOF, so the hash covers size and content.
    const r = await run(ssh, [...sshd.sshArgs(port), "sha256sum"], { stdin: data });
    equal(r.code, 0, r.stderr);
    equal(r.stdout, `${await sha256Hex(data)}  -\n`);
    const rec = await edgemux.waitForRecord((x) => x.listener === "ssh" && x.up > MIB);
    ok(CLEAN_ENDS.includes(rec.end), `unexpected end ${rec.end} (${rec.detail})`);
  });
});

Deno.test("git clone and git push over ssh through edgemux", async () => {
  const git = requireTool("git", "git");
  await using sshd = await startSshd();
  await using edgemux = await startEdgemux(forwardOnlyConfig(sshd.port));
  await using tmp = await makeTempDir("edgemux-git-");
  const port = edgemux.port("ssh");
  const env = {
    GIT_SSH_COMMAND: [ssh, ...sshd.sshOptions()].join(" "),
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_AUTHOR_NAME: "edgemux test",
    GIT_AUTHOR_EMAIL: "test@example.test",
    GIT_COMMITTER_NAME: "edgemux test",
    GIT_COMMITTER_EMAIL: "test@example.test",
    GIT_TERMINAL_PROMPT: "0",
  };
  const gitOk = async (args: string[], cwd = tmp.path) => {
    const r = await run(git, args, { cwd, env });
    equal(r.code, 0, `git ${args.join(" ")} failed:\n${r.stderr}\nsshd:\n${sshd.output()}`);
    return r;
  };

  // A bare repository with one commit, made locally.
  const bare = `${tmp.path}/repo.git`;
  await gitOk(["init", "-q", "--bare", "-b", "main", bare]);
  await gitOk(["init", "-q", "-b", "main", "seed"]);
  await Deno.writeTextFile(`${tmp.path}/seed/README`, "hello from the seed\n");
  await gitOk(["add", "README"], `${tmp.path}/seed`);
  await gitOk(["commit", "-q", "-m", "seed"], `${tmp.path}/seed`);
  await gitOk(["push", "-q", bare, "main"], `${tmp.path}/seed`);

  const url = `ssh://${sshd.user}@127.0.0.1:${port}${bare}`;
  await gitOk(["clone", "-q", url, "clone"]);
  equal(await Deno.readTextFile(`${tmp.path}/clone/README`), "hello from the seed\n");

  await Deno.writeTextFile(`${tmp.path}/clone/CHANGES`, "pushed through edgemux\n");
  await gitOk(["add", "CHANGES"], `${tmp.path}/clone`);
  await gitOk(["commit", "-q", "-m", "through edgemux"], `${tmp.path}/clone`);
  await gitOk(["push", "-q", "origin", "main"], `${tmp.path}/clone`);
  const log = await gitOk(["--git-dir", bare, "log", "--format=%s", "main"]);
  equal(log.stdout, "through edgemux\nseed\n");

  // clone and push each made one connection through the forward; the records of both arrive
  // once edgemux has seen each close.
  const countSsh = () => edgemux.records.filter((x) => x.listener === "ssh").length;
  await edgemux.waitForRecord(() => countSsh() >= 2);
  for (const rec of edgemux.records) {
    ok(CLEAN_ENDS.includes(rec.end), `unexpected end ${rec.end} (${rec.detail})`);
  }
});
