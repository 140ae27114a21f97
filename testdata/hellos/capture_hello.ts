// Saves the first ClientHello a client sends to 127.0.0.1:<port>, then closes the connection.
// Usage: deno run --allow-net --allow-write capture_hello.ts OUT.bin PORTFILE
// The bound port (port 0, chosen by the kernel) is written to PORTFILE. Only the first
// connection is saved; later ones (browsers retry) are closed at once. The server stops after
// saving, or after 15 s.
//
// It decides "the whole hello is in" with its own small record walk, independent of
// proxy/sniff/client_hello.ts, so a parser bug cannot shape the captures.
const [out, portFile] = Deno.args;
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
await Deno.writeTextFile(portFile, String((listener.addr as Deno.NetAddr).port));
const stop = setTimeout(() => listener.close(), 15_000);

function helloComplete(b: Uint8Array): boolean {
  let off = 0;
  const hs: number[] = [];
  while (off + 5 <= b.length && b[off] === 22) {
    const len = (b[off + 3] << 8) | b[off + 4];
    if (off + 5 + len > b.length) return false;
    for (let i = off + 5; i < off + 5 + len && hs.length < 4; i++) hs.push(b[i]);
    off += 5 + len;
    if (hs.length === 4) {
      const need = 4 + ((hs[1] << 16) | (hs[2] << 8) | hs[3]);
      let have = 0;
      for (let o = 0; o < off;) {
        const l = (b[o + 3] << 8) | b[o + 4];
        have += l;
        o += 5 + l;
      }
      if (have >= need) return true;
    }
  }
  return false;
}

let saved = false;
for await (const conn of listener) {
  if (saved) {
    conn.close();
    continue;
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
    const all = new Uint8Array(total);
    let o = 0;
    for (const c of chunks) {
      all.set(c, o);
      o += c.length;
    }
    if (helloComplete(all) || total > 65536) {
      await Deno.writeFile(out, all);
      console.log(`saved ${total} bytes to ${out}`);
      saved = true;
      break;
    }
  }
  conn.close();
  if (saved) break;
}
clearTimeout(stop);
try {
  listener.close();
} catch {
  // already closed by the timeout
}
