import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DEFAULT_HEAD_LIMITS,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type RequestHeadResult,
  type ResponseHead,
  type ResponseHeadResult,
} from "./head.ts";
import { encodeLatin1Into } from "./latin1.ts";

/** Latin1 bytes of `s` (each char one byte), so tests can write obs-text as "\xff". */
function bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  encodeLatin1Into(s, out, 0);
  return out;
}

function req(s: string, limits = DEFAULT_HEAD_LIMITS): RequestHeadResult {
  return parseRequestHead(bytes(s), limits);
}

function reqHead(s: string): RequestHead {
  const r = req(s);
  if (r.kind !== "head") {
    assert.fail(`expected a head for ${JSON.stringify(s)}, got ${JSON.stringify(r)}`);
  }
  return r.head;
}

function res(s: string, method = "GET", limits = DEFAULT_HEAD_LIMITS): ResponseHeadResult {
  return parseResponseHead(bytes(s), method, limits);
}

function resHead(s: string, method = "GET"): ResponseHead {
  const r = res(s, method);
  if (r.kind !== "head") {
    assert.fail(`expected a head for ${JSON.stringify(s)}, got ${JSON.stringify(r)}`);
  }
  return r.head;
}

const CURL_GET = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\n" +
  "Accept: */*\r\n\r\n";

// ---------------------------------------------------------------------------------------------
// Requests that are accepted.

Deno.test("parseRequestHead() parses a curl GET", () => {
  assert.deepEqual(reqHead(CURL_GET), {
    method: "GET",
    target: "/index.html?x=1",
    form: "origin",
    path: "/index.html?x=1",
    authority: "example.com",
    version: 11,
    headers: [["host", "example.com"], ["user-agent", "curl/8.5.0"], ["accept", "*/*"]],
    body: { kind: "none" },
    keepAlive: true,
    connection: [],
    upgrade: null,
    expectContinue: false,
    end: CURL_GET.length,
  });
});

Deno.test("parseRequestHead() lowercases names, trims OWS from values and keeps order and duplicates", () => {
  const h = reqHead(
    "GET / HTTP/1.1\r\nHOST: a\r\nX-Custom-Thing:  \t spaced  value \t\r\nx-custom-thing:second\r\n" +
      "Accept-Encoding: gzip\r\nEmpty:\r\nBlank:   \r\n\r\n",
  );
  assert.deepEqual(h.headers, [
    ["host", "a"],
    ["x-custom-thing", "spaced  value"],
    ["x-custom-thing", "second"],
    ["accept-encoding", "gzip"],
    ["empty", ""],
    ["blank", ""],
  ]);
});

Deno.test("parseRequestHead() keeps obs-text bytes in values byte for byte", () => {
  const value = "caf\xe9 \x80\x9f\xff";
  const h = reqHead(`GET / HTTP/1.1\r\nHost: a\r\nX-Name: ${value}\r\n\r\n`);
  const out = new Uint8Array(value.length);
  encodeLatin1Into(h.headers[1][1], out, 0);
  assert.deepEqual(out, bytes(value));
});

Deno.test("parseRequestHead() keeps the method's case and accepts extension methods", () => {
  assert.equal(reqHead("get / HTTP/1.1\r\nHost: a\r\n\r\n").method, "get");
  assert.equal(reqHead("M-SEARCH / HTTP/1.1\r\nHost: a\r\n\r\n").method, "M-SEARCH");
  assert.equal(reqHead("PROPFIND /d HTTP/1.1\r\nHost: a\r\n\r\n").method, "PROPFIND");
});

Deno.test("parseRequestHead() accepts any VCHAR but # in an origin-form target", () => {
  const target = "/a/b;c=d?e=f&g=%20|{}[]\"<>\\^`~!$'()*+,:@";
  const h = reqHead(`GET ${target} HTTP/1.1\r\nHost: a\r\n\r\n`);
  assert.equal(h.target, target);
  assert.equal(h.path, target);
});

Deno.test("parseRequestHead() takes the authority of an absolute-form target over Host", () => {
  const h = reqHead("GET http://Backend.Example:8080/p?q HTTP/1.1\r\nHost: other.example\r\n\r\n");
  assert.equal(h.form, "absolute");
  assert.equal(h.authority, "backend.example:8080");
  assert.equal(h.path, "/p?q");
  assert.equal(h.target, "http://Backend.Example:8080/p?q");
});

Deno.test("parseRequestHead() gives an absolute-form target without a path the path /", () => {
  assert.equal(reqHead("GET https://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n").path, "/");
  assert.equal(reqHead("GET HTTP://a.example?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").path, "/?x=1");
});

Deno.test("parseRequestHead() accepts an authority-form target with CONNECT", () => {
  const h = reqHead("CONNECT [2001:DB8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n");
  assert.equal(h.form, "authority");
  assert.equal(h.authority, "[2001:db8::1]:443");
  assert.equal(h.path, "");
});

Deno.test("parseRequestHead() accepts an asterisk-form target with OPTIONS", () => {
  const h = reqHead("OPTIONS * HTTP/1.1\r\nHost: a.example:81\r\n\r\n");
  assert.equal(h.form, "asterisk");
  assert.equal(h.path, "");
  assert.equal(h.authority, "a.example:81");
});

Deno.test("parseRequestHead() lowercases and accepts names, IPv4 and IPv6 hosts with ports", () => {
  const cases: [string, string][] = [
    ["Example.COM", "example.com"],
    ["example.com.", "example.com."],
    ["under_score-host.example:65535", "under_score-host.example:65535"],
    ["localhost:1", "localhost:1"],
    ["192.168.0.1", "192.168.0.1"],
    ["0.0.0.0:8080", "0.0.0.0:8080"],
    ["[::1]", "[::1]"],
    ["[::]:80", "[::]:80"],
    ["[FE80::A:B]", "[fe80::a:b]"],
    ["[1:2:3:4:5:6:7:8]", "[1:2:3:4:5:6:7:8]"],
    ["[::ffff:192.0.2.1]:443", "[::ffff:192.0.2.1]:443"],
    ["[1:2:3:4:5:6:1.2.3.4]", "[1:2:3:4:5:6:1.2.3.4]"],
    ["4chan.example", "4chan.example"],
    ["1.2.3.4a", "1.2.3.4a"],
  ];
  for (const [host, authority] of cases) {
    assert.equal(reqHead(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`).authority, authority, host);
  }
});

Deno.test("parseRequestHead() accepts HTTP/1.0 without Host and gives a null authority", () => {
  const h = reqHead("GET / HTTP/1.0\r\n\r\n");
  assert.equal(h.version, 10);
  assert.equal(h.authority, null);
  assert.equal(reqHead("GET / HTTP/1.0\r\nHost:\r\n\r\n").authority, null);
  assert.equal(reqHead("GET / HTTP/1.0\r\nHost: a.example\r\n\r\n").authority, "a.example");
});

Deno.test("parseRequestHead() keeps HTTP/1.1 alive unless Connection says close", () => {
  assert.equal(reqHead("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keepAlive, true);
  assert.equal(reqHead("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n").keepAlive, false);
  assert.equal(
    reqHead("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: x, close\r\n\r\n")
      .keepAlive,
    false,
  );
});

Deno.test("parseRequestHead() keeps HTTP/1.0 alive only with Connection: keep-alive", () => {
  assert.equal(reqHead("GET / HTTP/1.0\r\n\r\n").keepAlive, false);
  assert.equal(reqHead("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive, true);
  assert.equal(reqHead("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keepAlive, false);
});

Deno.test("parseRequestHead() lists the lowercased tokens of every Connection field", () => {
  const h = reqHead(
    "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive ,X-Hop\r\nConnection: ,, TE ,\r\n\r\n",
  );
  assert.deepEqual(h.connection, ["keep-alive", "x-hop", "te"]);
});

Deno.test("parseRequestHead() reports Upgrade only when Connection lists upgrade", () => {
  const ws = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  assert.equal(reqHead(ws).upgrade, "websocket");
  assert.equal(reqHead("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n").upgrade, null);
  assert.equal(
    reqHead(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: a\r\nUpgrade: b/2\r\n\r\n",
    )
      .upgrade,
    "a, b/2",
  );
});

Deno.test("parseRequestHead() ignores Upgrade and Expect in HTTP/1.0 (RFC 9110 §7.8, §10.1.1)", () => {
  const h = reqHead(
    "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\n\r\n",
  );
  assert.equal(h.upgrade, null);
  assert.equal(h.expectContinue, false);
});

Deno.test("parseRequestHead() notices Expect: 100-continue in any case", () => {
  const h = reqHead(
    "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
  );
  assert.equal(h.expectContinue, true);
  assert.equal(
    reqHead("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n\r\n").expectContinue,
    false,
  );
});

Deno.test("parseRequestHead() frames a body by Content-Length", () => {
  assert.deepEqual(reqHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n").body, {
    kind: "length",
    length: 42,
  });
  assert.deepEqual(reqHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").body, {
    kind: "length",
    length: 0,
  });
  assert.deepEqual(reqHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n").body, {
    kind: "length",
    length: 7,
  });
  assert.deepEqual(
    reqHead(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${Number.MAX_SAFE_INTEGER}\r\n\r\n`)
      .body,
    { kind: "length", length: Number.MAX_SAFE_INTEGER },
  );
});

Deno.test("parseRequestHead() accepts repeated identical Content-Length values as one", () => {
  assert.deepEqual(reqHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5 ,5\r\n\r\n").body, {
    kind: "length",
    length: 5,
  });
  assert.deepEqual(
    reqHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n").body,
    { kind: "length", length: 5 },
  );
});

Deno.test("parseRequestHead() frames a body as chunked for Transfer-Encoding: chunked in any case", () => {
  for (const te of ["chunked", "Chunked", "CHUNKED", "\tchunked", "chunked\t", " chunked  "]) {
    assert.deepEqual(
      reqHead(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:${te}\r\n\r\n`).body,
      { kind: "chunked" },
      JSON.stringify(te),
    );
  }
});

Deno.test("parseRequestHead() skips up to four empty lines before the request line", () => {
  const h = reqHead("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.equal(h.method, "GET");
  assert.equal(h.end, 8 + 27);
});

Deno.test("parseRequestHead() stops at the end of the head and ignores what follows", () => {
  const head = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n";
  const h = reqHead(head + "body" + "GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.equal(h.end, head.length);
  assert.equal(h.headers.length, 2);
});

Deno.test("parseRequestHead() accepts exactly maxHeaders fields and a head of exactly maxHeadBytes", () => {
  const head = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
  const r = req(head, { maxHeaders: 3, maxHeadBytes: head.length });
  assert.equal(r.kind, "head");
});

// ---------------------------------------------------------------------------------------------
// Incomplete heads and limits.

const VALID_REQUESTS = [
  CURL_GET,
  "\r\nPOST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\n",
  "OPTIONS * HTTP/1.1\r\nHost: [::1]:8\r\nX: \xff\r\n\r\n",
  "GET / HTTP/1.0\r\n\r\n",
];

Deno.test("parseRequestHead() answers incomplete for every proper prefix of a valid head", () => {
  for (const head of VALID_REQUESTS) {
    const buf = bytes(head);
    for (let n = 0; n < buf.length; n++) {
      assert.deepEqual(parseRequestHead(buf.subarray(0, n)), { kind: "incomplete" }, `${n} bytes`);
    }
    assert.equal(parseRequestHead(buf).kind, "head");
  }
});

Deno.test("parseRequestHead() answers 414 when the request line alone exceeds maxHeadBytes", () => {
  const limits = { maxHeadBytes: 64, maxHeaders: 10 };
  assert.deepEqual(req(`GET /${"a".repeat(58)}`, limits), { kind: "incomplete" });
  assert.deepEqual(req(`GET /${"a".repeat(59)}`, limits), {
    kind: "error",
    status: 414,
    reason: "request line too long",
  });
  assert.deepEqual(req(`GET /${"a".repeat(200)} HTTP/1.1\r\n\r\n`, limits), {
    kind: "error",
    status: 414,
    reason: "request line too long",
  });
});

Deno.test("parseRequestHead() answers 431 when the fields exceed maxHeadBytes", () => {
  const limits = { maxHeadBytes: 64, maxHeaders: 10 };
  const r = req(`GET / HTTP/1.1\r\nHost: a\r\nX: ${"b".repeat(40)}\r\n`, limits);
  assert.deepEqual(r, { kind: "error", status: 431, reason: "request head too large" });
  // The terminator arriving one byte past the cap does not help.
  const head = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
  assert.equal(req(head, { maxHeadBytes: head.length - 1, maxHeaders: 10 }).kind, "error");
});

Deno.test("parseRequestHead() defaults to a 32 KiB head and 100 fields", () => {
  assert.deepEqual(DEFAULT_HEAD_LIMITS, { maxHeadBytes: 32768, maxHeaders: 100 });
  const start = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
  const fill = (n: number) => start + "v".repeat(n - start.length - 4) + "\r\n\r\n";
  assert.equal(req(fill(32768)).kind, "head");
  assert.deepEqual(req(fill(32769)), {
    kind: "error",
    status: 431,
    reason: "request head too large",
  });
  const fields = (n: number) =>
    "GET / HTTP/1.1\r\n" + "Host: a\r\n" + "X: y\r\n".repeat(n - 1) + "\r\n";
  assert.equal(req(fields(100)).kind, "head");
  assert.deepEqual(req(fields(101)), {
    kind: "error",
    status: 431,
    reason: "too many header fields",
  });
});

Deno.test("parseRequestHead() answers 431 for more than maxHeaders fields", () => {
  const head = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
  assert.deepEqual(req(head, { maxHeaders: 2, maxHeadBytes: 1000 }), {
    kind: "error",
    status: 431,
    reason: "too many header fields",
  });
  const many = "GET / HTTP/1.1\r\nHost: a\r\n" + "X: y\r\n".repeat(100) + "\r\n";
  assert.equal((req(many) as { status?: number }).status, 431);
});

Deno.test("parseRequestHead() refuses a head with bare-LF line endings as soon as it ends", () => {
  const bareLf = { kind: "error", status: 400, reason: "bare lf in head" };
  assert.deepEqual(req("GET / HTTP/1.0\n\n"), bareLf);
  assert.deepEqual(req("GET / HTTP/1.1\nHost: a\n\n"), bareLf);
  assert.deepEqual(req("GET / HTTP/1.1\r\nHost: a\n\r\n"), bareLf);
  assert.deepEqual(req("\n"), bareLf);
  assert.deepEqual(req("\r\n\nGET"), bareLf);
  assert.deepEqual(req("\r\n\r\n"), { kind: "incomplete" });
  assert.deepEqual(req("\r\n\r\nG"), { kind: "incomplete" });
  assert.deepEqual(res("HTTP/1.1 200 OK\nContent-Length: 0\n\n"), {
    kind: "error",
    reason: "bare lf in head",
  });
});

const SMALL_HEAD = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n";

Deno.test("parseRequestHead() refuses a bare LF anywhere in a complete head", () => {
  for (let i = 0; i <= SMALL_HEAD.length - 4; i++) {
    // An LF inserted right after a CR would make a proper CRLF.
    if (SMALL_HEAD[i - 1] === "\r") continue;
    const r = req(SMALL_HEAD.slice(0, i) + "\n" + SMALL_HEAD.slice(i));
    assert.equal(r.kind === "error" && r.status, 400, `LF at ${i}: ${JSON.stringify(r)}`);
  }
});

Deno.test("parseRequestHead() refuses a bare CR anywhere in a complete head", () => {
  for (let i = 0; i <= SMALL_HEAD.length - 4; i++) {
    // A CR inserted right before an LF would make a proper CRLF.
    if (SMALL_HEAD[i] === "\n") continue;
    const r = req(SMALL_HEAD.slice(0, i) + "\r" + SMALL_HEAD.slice(i));
    assert.equal(r.kind === "error" && r.status, 400, `CR at ${i}: ${JSON.stringify(r)}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Requests that are refused: the smuggling vectors and the rest of the grammar.

const H = "GET / HTTP/1.1\r\nHost: a.example\r\n";
const P = "POST / HTTP/1.1\r\nHost: a.example\r\n";

const REFUSED: [what: string, head: string, status: number, reason: string][] = [
  // Framing.
  [
    "Content-Length together with Transfer-Encoding",
    `${P}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`,
    400,
    "both transfer-encoding and content-length",
  ],
  [
    "Transfer-Encoding before Content-Length",
    `${P}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n`,
    400,
    "both transfer-encoding and content-length",
  ],
  [
    "Transfer-Encoding: xchunked",
    `${P}Transfer-Encoding: xchunked\r\n\r\n`,
    400,
    "unknown transfer coding",
  ],
  [
    "Transfer-Encoding: chunk",
    `${P}Transfer-Encoding: chunk\r\n\r\n`,
    400,
    "unknown transfer coding",
  ],
  [
    "Transfer-Encoding: identity",
    `${P}Transfer-Encoding: identity\r\n\r\n`,
    400,
    "unknown transfer coding",
  ],
  [
    "whitespace between Transfer-Encoding and the colon",
    `${P}Transfer-Encoding : chunked\r\n\r\n`,
    400,
    "whitespace before colon in header field",
  ],
  [
    "Transfer-Encoding in HTTP/1.0",
    "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    400,
    "transfer-encoding in http/1.0 request",
  ],
  [
    "Transfer-Encoding: chunked, chunked",
    `${P}Transfer-Encoding: chunked, chunked\r\n\r\n`,
    400,
    "chunked is not the final transfer coding",
  ],
  [
    "two Transfer-Encoding fields",
    `${P}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`,
    400,
    "multiple transfer-encoding fields",
  ],
  [
    "Transfer-Encoding: chunked, gzip",
    `${P}Transfer-Encoding: chunked, gzip\r\n\r\n`,
    400,
    "chunked is not the final transfer coding",
  ],
  [
    "Transfer-Encoding: gzip",
    `${P}Transfer-Encoding: gzip\r\n\r\n`,
    400,
    "chunked is not the final transfer coding",
  ],
  [
    "Transfer-Encoding: gzip, chunked",
    `${P}Transfer-Encoding: gzip, chunked\r\n\r\n`,
    501,
    "unsupported transfer coding",
  ],
  [
    "Transfer-Encoding: chunked;q=1",
    `${P}Transfer-Encoding: chunked;q=1\r\n\r\n`,
    400,
    "malformed transfer-encoding",
  ],
  [
    "Transfer-Encoding: chunked, (trailing comma)",
    `${P}Transfer-Encoding: chunked,\r\n\r\n`,
    400,
    "malformed transfer-encoding",
  ],
  [
    "Transfer-Encoding: , chunked (empty element)",
    `${P}Transfer-Encoding: , chunked\r\n\r\n`,
    400,
    "malformed transfer-encoding",
  ],
  [
    'Transfer-Encoding: "chunked"',
    `${P}Transfer-Encoding: "chunked"\r\n\r\n`,
    400,
    "malformed transfer-encoding",
  ],
  [
    "an empty Transfer-Encoding",
    `${P}Transfer-Encoding: \r\n\r\n`,
    400,
    "malformed transfer-encoding",
  ],
  [
    "a vertical tab after chunked",
    `${P}Transfer-Encoding: chunked\x0b\r\n\r\n`,
    400,
    "invalid byte in header field value",
  ],
  [
    "two different Content-Length fields",
    `${P}Content-Length: 5\r\nContent-Length: 6\r\n\r\n`,
    400,
    "conflicting content-length values",
  ],
  [
    "a Content-Length list with different values",
    `${P}Content-Length: 5, 6\r\n\r\n`,
    400,
    "invalid content-length",
  ],
  ["Content-Length: +5", `${P}Content-Length: +5\r\n\r\n`, 400, "invalid content-length"],
  ["Content-Length: -1", `${P}Content-Length: -1\r\n\r\n`, 400, "invalid content-length"],
  ["Content-Length: 5 5", `${P}Content-Length: 5 5\r\n\r\n`, 400, "invalid content-length"],
  ["Content-Length: 0x5", `${P}Content-Length: 0x5\r\n\r\n`, 400, "invalid content-length"],
  ["Content-Length: 5,,5", `${P}Content-Length: 5,,5\r\n\r\n`, 400, "invalid content-length"],
  [
    "Content-Length: 5, (trailing comma)",
    `${P}Content-Length: 5,\r\n\r\n`,
    400,
    "invalid content-length",
  ],
  ["an empty Content-Length", `${P}Content-Length:\r\n\r\n`, 400, "invalid content-length"],
  ["Content-Length: 1.0", `${P}Content-Length: 1.0\r\n\r\n`, 400, "invalid content-length"],
  [
    "a Content-Length above Number.MAX_SAFE_INTEGER",
    `${P}Content-Length: 9007199254740992\r\n\r\n`,
    400,
    "invalid content-length",
  ],
  // Line structure.
  ["obs-fold", `${H}X-A: b\r\n c\r\n\r\n`, 400, "obs-fold in header field"],
  ["obs-fold with a tab", `${H}X-A: b\r\n\tc\r\n\r\n`, 400, "obs-fold in header field"],
  [
    "a field line starting with a space right after the request line",
    "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    400,
    "obs-fold in header field",
  ],
  ["a bare LF ending a field line", `${H}X-A: b\nX-B: c\r\n\r\n`, 400, "bare lf in head"],
  ["a bare LF ending the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare lf in head"],
  ["a bare LF as the terminator", `${H}\n`, 400, "bare lf in head"],
  ["a bare CR inside a value", `${H}X-A: b\rc\r\n\r\n`, 400, "bare cr in head"],
  [
    "a bare CR inside the request line",
    "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "bare cr in head",
  ],
  [
    "a bare CR before the version's CRLF",
    "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n",
    400,
    "bare cr in head",
  ],
  ["a CR CR LF terminator", `${H}\r\r\n\r\n`, 400, "bare cr in head"],
  ["a NUL in a value", `${H}X-A: b\x00c\r\n\r\n`, 400, "invalid byte in header field value"],
  ["a DEL in a value", `${H}X-A: b\x7fc\r\n\r\n`, 400, "invalid byte in header field value"],
  ["an escape in a value", `${H}X-A: \x1b[31m\r\n\r\n`, 400, "invalid byte in header field value"],
  [
    "whitespace before the colon",
    `${H}X-A : b\r\n\r\n`,
    400,
    "whitespace before colon in header field",
  ],
  [
    "a tab before the colon",
    `${H}X-A\t: b\r\n\r\n`,
    400,
    "whitespace before colon in header field",
  ],
  ["an empty field name", `${H}: b\r\n\r\n`, 400, "empty header field name"],
  [
    "a field line without a colon",
    `${H}X-A b\r\n\r\n`,
    400,
    "whitespace before colon in header field",
  ],
  ["a field line that is only a name", `${H}X-A\r\n\r\n`, 400, "header field without colon"],
  ["a non-token field name", `${H}X(A): b\r\n\r\n`, 400, "invalid header field name"],
  ["an obs-text field name", `${H}X\xe9: b\r\n\r\n`, 400, "invalid header field name"],
  [
    "five empty lines before the request line",
    "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "too many empty lines before request line",
  ],
  [
    "a bare LF before the request line",
    "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "bare lf in head",
  ],
  [
    "a bare CR before the request line",
    "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "bare cr in head",
  ],
  // Request line.
  [
    "two spaces after the method",
    "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "invalid request-target",
  ],
  [
    "two spaces before the version",
    "GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "invalid http version",
  ],
  ["a tab as separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid method"],
  ["a space before the method", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid method"],
  [
    "a trailing space after the version",
    "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
    400,
    "invalid http version",
  ],
  ["a non-token method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid method"],
  ["a request line without a version", "GET /\r\nHost: a\r\n\r\n", 400, "missing http version"],
  [
    "a space inside the target",
    "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "invalid http version",
  ],
  [
    "a fragment in the target",
    "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "invalid request-target",
  ],
  [
    "obs-text in the target",
    "GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "invalid request-target",
  ],
  ["a DEL in the target", "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request-target"],
  ["a lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, "invalid http version"],
  ["HTTP/1", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400, "invalid http version"],
  ["HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, "invalid http version"],
  ["HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported http version"],
  ["HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "unsupported http version"],
  ["HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, "unsupported http version"],
  // Target forms.
  [
    "an ftp absolute-form target",
    "GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
    400,
    "invalid absolute-form target",
  ],
  [
    "a target that is neither origin- nor absolute-form",
    "GET a.example/x HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "invalid absolute-form target",
  ],
  [
    "a scheme without //",
    "GET http:/x HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "invalid absolute-form target",
  ],
  [
    "userinfo in an absolute-form target",
    "GET http://u:p@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
    400,
    "userinfo in absolute-form target",
  ],
  [
    "an empty authority in an absolute-form target",
    "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "invalid absolute-form target",
  ],
  [
    "CONNECT without a port",
    "CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n",
    400,
    "invalid authority-form target",
  ],
  [
    "CONNECT with an origin-form target",
    "CONNECT / HTTP/1.1\r\nHost: a.example\r\n\r\n",
    400,
    "connect needs an authority-form target",
  ],
  [
    "an authority-form target without CONNECT",
    "GET a.example:443 HTTP/1.1\r\nHost: a.example\r\n\r\n",
    400,
    "invalid absolute-form target",
  ],
  [
    "an asterisk-form target without OPTIONS",
    "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    400,
    "asterisk-form target without options",
  ],
  // Host.
  ["a missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "missing host"],
  [
    "a missing Host in HTTP/1.1 with an absolute-form target",
    "GET http://a.example/ HTTP/1.1\r\n\r\n",
    400,
    "missing host",
  ],
  [
    "two Host fields",
    "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    400,
    "multiple host fields",
  ],
  [
    "two identical Host fields",
    "GET / HTTP/1.1\r\nHost: a.example\r\nhost: a.example\r\n\r\n",
    400,
    "multiple host fields",
  ],
  [
    "two Host fields in HTTP/1.0",
    "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    400,
    "multiple host fields",
  ],
  ["an empty Host in HTTP/1.1", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, "empty host"],
  [
    "an invalid Host next to an absolute-form target",
    "GET http://a.example/ HTTP/1.1\r\nHost: a b\r\n\r\n",
    400,
    "invalid host",
  ],
];

const BAD_HOSTS = [
  "a b",
  "a,b",
  "a@b",
  "a/b",
  "a%62",
  "é.example",
  "a..b",
  ".a",
  ".",
  "a.example..",
  "-:80x",
  "a:",
  "a:0",
  "a:080",
  "a:65536",
  "a:123456",
  "a:8a",
  "a:80:80",
  ":80",
  "127.1",
  "x1.2.3.4",
  "0x7f.0.0.1",
  "1.2.3.256",
  "1.2.3.04",
  "1.2.3.4.",
  "example.123",
  "a.0x1f",
  "[::1",
  "::1",
  "[::1]x",
  "[::1]:",
  "[1:2:3:4:5:6:7:8:9]",
  "[1::2::3]",
  "[12345::]",
  "[:1]",
  "[1:]",
  "[fe80::1%25eth0]",
  "[v1.x]",
  "[::1.2.3]",
  "[1:2:3:4:5:6:7::8]",
  "[]",
  "[g::]",
];
for (const host of BAD_HOSTS) {
  REFUSED.push([
    `the Host ${JSON.stringify(host)}`,
    `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    400,
    "invalid host",
  ]);
}

for (const [what, head, status, reason] of REFUSED) {
  Deno.test(`parseRequestHead() answers ${status} for ${what}`, () => {
    assert.deepEqual(req(head), { kind: "error", status, reason });
  });
}

// ---------------------------------------------------------------------------------------------
// Responses.

Deno.test("parseResponseHead() parses a 200 with Content-Length", () => {
  const head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n";
  assert.deepEqual(resHead(head + "hello"), {
    version: 11,
    status: 200,
    reason: "OK",
    headers: [["content-type", "text/plain"], ["content-length", "5"]],
    body: { kind: "length", length: 5 },
    keepAlive: true,
    connection: [],
    end: head.length,
  });
});

Deno.test("parseResponseHead() keeps a reason phrase with tabs and obs-text", () => {
  assert.equal(
    resHead("HTTP/1.1 404 Not\tFound \xe9\r\nContent-Length: 0\r\n\r\n").reason,
    "Not\tFound \xe9",
  );
});

Deno.test("parseResponseHead() accepts an empty reason with or without its space", () => {
  assert.equal(resHead("HTTP/1.1 204 \r\n\r\n").reason, "");
  assert.equal(resHead("HTTP/1.1 204\r\n\r\n").reason, "");
});

Deno.test("parseResponseHead() frames no body for HEAD, 1xx, 204 and 304", () => {
  const withLength = (status: string) => `HTTP/1.1 ${status}\r\nContent-Length: 10\r\n\r\n`;
  assert.deepEqual(resHead(withLength("200 OK"), "HEAD").body, { kind: "none" });
  assert.deepEqual(resHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD").body, {
    kind: "none",
  });
  for (
    const status of [
      "100 Continue",
      "101 Switching Protocols",
      "103 Early Hints",
      "204 No Content",
      "304 Not Modified",
    ]
  ) {
    assert.deepEqual(resHead(withLength(status)).body, { kind: "none" }, status);
  }
});

Deno.test("parseResponseHead() frames no body for a 2xx answer to CONNECT, and a body otherwise", () => {
  assert.deepEqual(resHead("HTTP/1.1 200 Connection Established\r\n\r\n", "CONNECT").body, {
    kind: "none",
  });
  assert.deepEqual(resHead("HTTP/1.1 407 Auth\r\nContent-Length: 3\r\n\r\n", "CONNECT").body, {
    kind: "length",
    length: 3,
  });
});

Deno.test("parseResponseHead() lets chunked win over Content-Length", () => {
  const h = resHead(
    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
  );
  assert.deepEqual(h.body, { kind: "chunked" });
  assert.equal(h.keepAlive, true);
});

Deno.test("parseResponseHead() reads to close when chunked is not the final coding", () => {
  const h = resHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
  assert.deepEqual(h.body, { kind: "close" });
  assert.equal(h.keepAlive, false);
});

Deno.test("parseResponseHead() reads several Transfer-Encoding fields as one list", () => {
  const te = (a: string, b: string) =>
    resHead(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${a}\r\nTransfer-Encoding: ${b}\r\n\r\n`).body;
  assert.deepEqual(te("gzip", "chunked"), { kind: "chunked" });
  assert.deepEqual(te("chunked", "gzip"), { kind: "close" });
});

Deno.test("parseResponseHead() reads to close without framing, and then does not keep alive", () => {
  const h = resHead("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n");
  assert.deepEqual(h.body, { kind: "close" });
  assert.equal(h.keepAlive, false);
});

Deno.test("parseResponseHead() keeps alive per version and Connection tokens", () => {
  assert.equal(
    resHead("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").keepAlive,
    false,
  );
  assert.equal(resHead("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keepAlive, false);
  const h = resHead("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n");
  assert.equal(h.keepAlive, true);
  assert.deepEqual(h.connection, ["keep-alive"]);
});

const VALID_RESPONSES = [
  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
  "HTTP/1.0 404\r\n\r\n",
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
];

Deno.test("parseResponseHead() answers incomplete for every proper prefix of a valid head", () => {
  for (const head of VALID_RESPONSES) {
    const buf = bytes(head);
    for (let n = 0; n < buf.length; n++) {
      assert.deepEqual(
        parseResponseHead(buf.subarray(0, n), "GET"),
        { kind: "incomplete" },
        `${n} bytes`,
      );
    }
    assert.equal(parseResponseHead(buf, "GET").kind, "head");
  }
});

const BAD_RESPONSES: [what: string, head: string, reason: string][] = [
  [
    "an invalid Content-Length",
    "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
    "invalid content-length",
  ],
  [
    "an invalid Content-Length on a 204",
    "HTTP/1.1 204 OK\r\nContent-Length: -0\r\n\r\n",
    "invalid content-length",
  ],
  [
    "two different Content-Length fields",
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "conflicting content-length values",
  ],
  [
    "Transfer-Encoding in HTTP/1.0",
    "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    "transfer-encoding in http/1.0 response",
  ],
  [
    "Transfer-Encoding: chunked, chunked",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
    "malformed transfer-encoding",
  ],
  [
    "chunked in two Transfer-Encoding fields",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    "malformed transfer-encoding",
  ],
  [
    "a malformed Transfer-Encoding",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x\r\n\r\n",
    "malformed transfer-encoding",
  ],
  ["status 099", "HTTP/1.1 099 X\r\n\r\n", "invalid status code"],
  ["status 600", "HTTP/1.1 600 X\r\n\r\n", "invalid status code"],
  ["a two-digit status", "HTTP/1.1 20 OK\r\n\r\n", "invalid status code"],
  ["a four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", "invalid status code"],
  ["two spaces before the status", "HTTP/1.1  200 OK\r\n\r\n", "invalid status code"],
  ["HTTP/2", "HTTP/2 200\r\n\r\n", "invalid http version"],
  ["HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", "unsupported http version"],
  ["a lower-case version", "http/1.1 200 OK\r\n\r\n", "invalid http version"],
  ["a NUL in the reason", "HTTP/1.1 200 O\x00K\r\n\r\n", "invalid byte in reason phrase"],
  ["a bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bare lf in head"],
  ["a bare CR", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "bare cr in head"],
  ["obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "obs-fold in header field"],
  [
    "whitespace before a colon",
    "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",
    "whitespace before colon in header field",
  ],
  [
    "an empty line before the status line",
    "\r\nHTTP/1.1 200 OK\r\n\r\n",
    "empty line before status line",
  ],
];

for (const [what, head, reason] of BAD_RESPONSES) {
  Deno.test(`parseResponseHead() refuses ${what}`, () => {
    assert.deepEqual(res(head), { kind: "error", reason });
  });
}

Deno.test("parseResponseHead() refuses a head over maxHeadBytes or with too many fields", () => {
  assert.deepEqual(
    res(`HTTP/1.1 200 OK\r\nX: ${"a".repeat(100)}`, "GET", { maxHeadBytes: 64, maxHeaders: 5 }),
    {
      kind: "error",
      reason: "response head too large",
    },
  );
  assert.deepEqual(
    res("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", "GET", { maxHeadBytes: 64, maxHeaders: 1 }),
    {
      kind: "error",
      reason: "too many header fields",
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Properties: generated heads, random splits, random mutations, and a reference grammar check.

const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const SPECIAL = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "upgrade",
  "expect",
]);
const valueChars = [
  ...Array.from({ length: 0x7f - 0x21 }, (_, i) => String.fromCharCode(0x21 + i)),
  ...Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(0x80 + i)),
];
const nameArb = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 20 })
  .filter((n) => !SPECIAL.has(n.toLowerCase()));
const owsArb = fc.string({ unit: fc.constantFrom(" ", "\t"), maxLength: 3 });
const valueArb = fc.tuple(
  fc.string({ unit: fc.constantFrom(...valueChars), maxLength: 30 }),
  fc.string({ unit: fc.constantFrom(...valueChars, " ", "\t"), maxLength: 30 }),
).map(([a, b]) => (a + b + a).replace(/^[ \t]+|[ \t]+$/g, ""));
const fieldArb = fc.tuple(nameArb, owsArb, valueArb, owsArb);
const requestArb = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "M-SEARCH"),
  path: fc.string({ unit: fc.constantFrom(..."abcXYZ019/-._~%?=&;:@!$'()*+,"), maxLength: 40 }).map(
    (p) => "/" + p,
  ),
  host: fc.constantFrom(
    "example.com",
    "Mixed.Case.Example:8443",
    "127.0.0.1",
    "[::1]:8080",
    "a_b.local.",
  ),
  fields: fc.array(fieldArb, { maxLength: 20 }),
  length: fc.option(fc.nat({ max: 1_000_000 })),
  chunked: fc.boolean(),
  leadingEmptyLines: fc.nat({ max: 2 }),
});

type RequestSpec = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function encodeRequest(spec: RequestSpec): string {
  let s = "\r\n".repeat(spec.leadingEmptyLines) +
    `${spec.method} ${spec.path} HTTP/1.1\r\nHost: ${spec.host}\r\n`;
  for (const [name, ows1, value, ows2] of spec.fields) s += `${name}:${ows1}${value}${ows2}\r\n`;
  if (spec.length !== null) s += `Content-Length: ${spec.length}\r\n`;
  else if (spec.chunked) s += "Transfer-Encoding: chunked\r\n";
  return s + "\r\n";
}

/**
 * A slow reference for the line grammar, built from regular expressions straight off RFC 9112:
 * whatever the fast parser accepts, this must accept too.
 */
function referenceGrammarAccepts(text: string): boolean {
  const m = /^(?:\r\n){0,4}/.exec(text)!;
  const rest = text.slice(m[0].length);
  const end = rest.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const lines = rest.slice(0, end).split("\r\n");
  const tchar = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]";
  const requestLine = new RegExp(`^${tchar}+ [\\x21\\x22\\x24-\\x7e]+ HTTP/1\\.[01]$`);
  const fieldLine = new RegExp(`^${tchar}+:[\\t\\x20-\\x7e\\x80-\\xff]*$`);
  if (!requestLine.test(lines[0])) return false;
  return lines.slice(1).every((l) => fieldLine.test(l));
}

/** No CTL but HTAB inside, no SP or HTAB at either end. */
function isCleanValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return false;
  }
  return !/^[ \t]|[ \t]$/.test(value);
}

/** The framing RFC 9112 §6.3 gives, computed the slow way from the parsed fields. */
function referenceFraming(headers: [string, string][]): string {
  const te = headers.filter(([n]) => n === "transfer-encoding").map(([, v]) => v);
  const cl = headers.filter(([n]) => n === "content-length").flatMap(([, v]) => v.split(","));
  if (te.length > 0) {
    return cl.length === 0 && te.length === 1 && te[0].toLowerCase() === "chunked"
      ? JSON.stringify({ kind: "chunked" })
      : "refused";
  }
  if (cl.length === 0) return JSON.stringify({ kind: "none" });
  const values = new Set(cl.map((v) => v.trim()).map((v) => /^[0-9]+$/.test(v) ? Number(v) : NaN));
  if (values.size !== 1) return "refused";
  const [length] = values;
  return Number.isSafeInteger(length) ? JSON.stringify({ kind: "length", length }) : "refused";
}

function latin1String(buf: Uint8Array): string {
  let s = "";
  for (const b of buf) s += String.fromCharCode(b);
  return s;
}

Deno.test("parseRequestHead() returns exactly the fields of generated valid heads", () => {
  fc.assert(
    fc.property(requestArb, (spec) => {
      const text = encodeRequest(spec);
      const h = reqHead(text);
      assert.equal(referenceGrammarAccepts(text), true);
      assert.equal(h.method, spec.method);
      assert.equal(h.path, spec.path);
      assert.equal(h.authority, spec.host.toLowerCase());
      assert.equal(h.end, text.length);
      const expected: [string, string][] = [["host", spec.host]];
      for (const [name, , value] of spec.fields) expected.push([name.toLowerCase(), value]);
      if (spec.length !== null) expected.push(["content-length", String(spec.length)]);
      else if (spec.chunked) expected.push(["transfer-encoding", "chunked"]);
      assert.deepEqual(h.headers, expected);
      assert.deepEqual(
        h.body,
        spec.length !== null
          ? { kind: "length", length: spec.length }
          : spec.chunked
          ? { kind: "chunked" }
          : { kind: "none" },
      );
    }),
    { numRuns: 300 },
  );
});

Deno.test("parseRequestHead() answers incomplete before the end of a head split at any point", () => {
  fc.assert(
    fc.property(requestArb, fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), (spec, cuts) => {
      const buf = bytes(encodeRequest(spec) + "TRAILING BYTES");
      const end = buf.length - 14;
      for (const cut of cuts) {
        const n = cut % (buf.length + 1);
        const r = parseRequestHead(buf.subarray(0, n));
        if (n < end) assert.deepEqual(r, { kind: "incomplete" });
        else assert.equal(r.kind === "head" && r.head.end, end);
      }
    }),
    { numRuns: 200 },
  );
});

const mutationArb = fc.array(
  fc.tuple(
    fc.nat(),
    fc.constantFrom(
      0x00,
      0x09,
      0x0a,
      0x0b,
      0x0d,
      0x20,
      0x2c,
      0x3a,
      0x3b,
      0x7f,
      0x80,
      0xff,
      0x41,
      0x30,
      0x22,
    ),
    fc.constantFrom("set", "insert", "delete"),
  ),
  { minLength: 1, maxLength: 4 },
);

function mutate(buf: Uint8Array, mutations: [number, number, string][]): Uint8Array {
  const out = [...buf];
  for (const [at, byte, op] of mutations) {
    const i = at % (out.length + 1);
    if (op === "set" && i < out.length) out[i] = byte;
    else if (op === "insert") out.splice(i, 0, byte);
    else if (op === "delete") out.splice(i, 1);
  }
  return Uint8Array.from(out);
}

Deno.test("parseRequestHead() never throws on mutated heads and accepts only what the grammar allows", () => {
  fc.assert(
    fc.property(requestArb, mutationArb, (spec, mutations) => {
      const buf = mutate(bytes(encodeRequest(spec)), mutations);
      const r = parseRequestHead(buf);
      if (r.kind === "head") {
        assert.ok(referenceGrammarAccepts(latin1String(buf)), latin1String(buf));
        assert.equal(referenceFraming(r.head.headers), JSON.stringify(r.head.body));
        assert.match(r.head.authority ?? "", /^[a-z0-9._:\[\]-]*$/);
        for (const [name, value] of r.head.headers) {
          assert.match(name, /^[!#$%&'*+\-.^_`|~0-9a-z]+$/);
          assert.ok(isCleanValue(value), JSON.stringify(value));
        }
      } else if (r.kind === "error") {
        assert.ok([400, 414, 431, 501, 505].includes(r.status));
      }
    }),
    { numRuns: 1500 },
  );
});

Deno.test("parseResponseHead() never throws on mutated heads", () => {
  const base = bytes(
    "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
  );
  fc.assert(
    fc.property(mutationArb, fc.constantFrom("GET", "HEAD", "CONNECT"), (mutations, method) => {
      const r = parseResponseHead(mutate(base, mutations), method);
      assert.ok(["incomplete", "error", "head"].includes(r.kind));
    }),
    { numRuns: 1000 },
  );
});
