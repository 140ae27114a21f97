import assert from "node:assert/strict";
import fc from "fast-check";
import { normalizePath, PATH_NORMALIZATIONS, pathRefusal } from "./path.ts";

Deno.test("normalizePath() returns an already normal path unchanged", () => {
  for (const p of ["/", "/a", "/a/b/", "/a/b?q=1", "/.well-known/acme-challenge/x", "/a..b/c."]) {
    assert.equal(normalizePath(p), p);
  }
});

Deno.test("normalizePath() decodes percent-encoded unreserved characters", () => {
  assert.equal(normalizePath("/%7e/%7Euser"), "/~/~user");
  assert.equal(normalizePath("/%41%42c%2d%5f%2E%30"), "/ABc-_.0");
  assert.equal(normalizePath("/%61dmin"), "/admin");
});

Deno.test("normalizePath() keeps other percent-encodings, with uppercase hex", () => {
  assert.equal(normalizePath("/%e2%82%ac"), "/%E2%82%AC");
  assert.equal(normalizePath("/100%25"), "/100%25");
  assert.equal(normalizePath("/a%3fb%3Bc%23d%20"), "/a%3Fb%3Bc%23d%20");
  // Near miss: a decoded "%25" would make "%2541" mean "%41", then "A"; it stays as it is.
  assert.equal(normalizePath("/%2541"), "/%2541");
  // Overlong and invalid UTF-8 stay bytes: %C0%AE is not a ".", to nginx or to edgemux.
  assert.equal(normalizePath("/a/%c0%ae%c0%ae/b"), "/a/%C0%AE%C0%AE/b");
  assert.equal(normalizePath("/%ff%fe"), "/%FF%FE");
});

Deno.test("normalizePath() removes dot-segments", () => {
  assert.equal(normalizePath("/a/../b"), "/b");
  assert.equal(normalizePath("/a/./b"), "/a/b");
  assert.equal(normalizePath("/.."), "/");
  assert.equal(normalizePath("/."), "/");
  assert.equal(normalizePath("/a/b/c/./../../g"), "/a/g"); // RFC 3986 §5.2.4
  assert.equal(normalizePath("/a/.."), "/");
  assert.equal(normalizePath("/a/b/.."), "/a/");
  // Near misses: dots inside a segment are ordinary characters.
  assert.equal(normalizePath("/a/.b/c."), "/a/.b/c.");
  assert.equal(normalizePath("/a/.../b"), "/a/.../b");
});

Deno.test("normalizePath() decodes before removing dot-segments, so %2e%2e counts as ..", () => {
  assert.equal(normalizePath("/public/%2e%2e/admin"), "/admin");
  assert.equal(normalizePath("/public/.%2E/admin"), "/admin");
  assert.equal(normalizePath("/public/%2e/admin"), "/public/admin");
  // Near miss: with "pass", an encoded slash is not a separator, so no segment here is "..".
  assert.equal(normalizePath("/public/..%2fadmin", "pass"), "/public/..%2Fadmin");
  assert.equal(normalizePath("/public%2f..%2fadmin", "pass"), "/public%2F..%2Fadmin");
});

Deno.test("normalizePath() with pass keeps repeated slashes, as RFC 3986 does", () => {
  assert.equal(normalizePath("//a", "pass"), "//a");
  assert.equal(normalizePath("/a//b", "pass"), "/a//b");
  assert.equal(normalizePath("/a//../b", "pass"), "/a/b");
  assert.equal(normalizePath("/a//.", "pass"), "/a//");
});

Deno.test("normalizePath() merges repeated slashes at every position, before dot-segments", () => {
  assert.equal(normalizePath("//admin"), "/admin");
  assert.equal(normalizePath("///admin/x"), "/admin/x");
  assert.equal(normalizePath("/admin//x///y"), "/admin/x/y");
  assert.equal(normalizePath("/admin//"), "/admin/");
  assert.equal(normalizePath("/a//../b"), "/b"); // nginx and Go's path.Clean merge first
  assert.equal(normalizePath("/a//."), "/a/");
  assert.equal(normalizePath("//%2e%2e//admin"), "/admin");
  // Near misses: one slash is left alone, and slashes in the query are the backend's business.
  assert.equal(normalizePath("/a/b/"), "/a/b/");
  assert.equal(normalizePath("/a?x=//y"), "/a?x=//y");
  assert.equal(normalizePath("/?//admin"), "/?//admin");
});

Deno.test("normalizePath() refuses encoded slashes and backslashes, unless told to pass them", () => {
  for (const bad of ["/admin%2Fsecret", "/%2fadmin", "/public%2f..%2fadmin", "/x/..%2fadmin"]) {
    assert.equal(normalizePath(bad), null, bad);
    assert.equal(pathRefusal(bad), "an encoded slash (%2F)");
  }
  assert.equal(normalizePath("/public/%2e%2e%2fadmin"), null);
  for (const bad of ["/admin%5csecret", "/%5Cadmin", "/x/..%5c/admin"]) {
    assert.equal(normalizePath(bad), null, bad);
    assert.equal(pathRefusal(bad), "an encoded backslash (%5C)");
  }
  // Near misses: %2F or %5C in the query, and %252F (an encoded "%", then "2F").
  assert.equal(normalizePath("/a?to=%2Fadmin%5C"), "/a?to=%2Fadmin%5C");
  assert.equal(normalizePath("/a%252Fb"), "/a%252Fb");
  assert.equal(normalizePath("/admin%2Fsecret", "pass"), "/admin%2Fsecret");
  assert.equal(normalizePath("/admin%5csecret", "pass"), "/admin%5Csecret");
});

Deno.test("normalizePath() refuses a raw backslash, unless told to pass it", () => {
  for (const bad of ["/admin\\x", "/\\admin", "/public\\..\\admin", "\\admin"]) {
    assert.equal(normalizePath(bad), null, bad);
  }
  assert.equal(pathRefusal("/a\\b"), "a backslash");
  // Near misses: in the query, and with pass.
  assert.equal(normalizePath("/a?b\\c"), "/a?b\\c");
  assert.equal(normalizePath("/a\\b", "pass"), "/a\\b");
});

Deno.test("normalizePath() refuses encoded control characters, unless told to pass them", () => {
  for (const bad of ["/a%01", "/a%0a/b", "/a%0D%0Ab", "/%1f", "/a%7f"]) {
    assert.equal(normalizePath(bad), null, bad);
    assert.equal(pathRefusal(bad), "an encoded control character");
  }
  // Near misses: the first and last bytes past the control range, and pass.
  assert.equal(normalizePath("/a%20b%7Bc"), "/a%20b%7Bc");
  assert.equal(normalizePath("/%01%0a", "pass"), "/%01%0A");
});

Deno.test("normalizePath() refuses dot-segments with parameters, which servlet containers resolve", () => {
  for (const bad of ["/public/..;/admin", "/public/..;x=1/admin", "/.;/admin", "/a/%2e%2e;/b"]) {
    assert.equal(normalizePath(bad), null, bad);
    assert.equal(pathRefusal(bad), "a dot-segment with parameters (..;)");
  }
  // Near misses: parameters on other segments, dots that are not a whole segment, the query.
  assert.equal(normalizePath("/admin;jsessionid=1"), "/admin;jsessionid=1");
  assert.equal(normalizePath("/a/...;/b"), "/a/...;/b");
  assert.equal(normalizePath("/a/x..;/b"), "/a/x..;/b");
  assert.equal(normalizePath("/a?/..;/b"), "/a?/..;/b");
  assert.equal(normalizePath("/public/..;/admin", "pass"), "/public/..;/admin");
});

Deno.test("normalizePath() refuses fragments and bytes outside visible ASCII, in both modes", () => {
  for (const mode of PATH_NORMALIZATIONS) {
    for (const bad of ["/admin#x", "/a?b#c", "/\u00e9", "/a\u0100", "/a?\u00ff"]) {
      assert.equal(normalizePath(bad, mode), null, `${mode} ${JSON.stringify(bad)}`);
    }
  }
  assert.equal(pathRefusal("/admin#x"), "a fragment (#)");
  assert.equal(pathRefusal("/\u00e9"), "a control character, space or non-ASCII byte");
  // Near miss: the same characters percent-encoded.
  assert.equal(normalizePath("/admin%23x/%C3%A9"), "/admin%23x/%C3%A9");
});

Deno.test("normalizePath() keeps trailing dots and case: nginx, Go and Node do too", () => {
  assert.equal(normalizePath("/admin."), "/admin.");
  assert.equal(normalizePath("/admin./x"), "/admin./x");
  assert.equal(normalizePath("/ADMIN"), "/ADMIN");
  assert.equal(normalizePath("/%41DMIN"), "/ADMIN");
  // Near miss: "." alone is a dot-segment.
  assert.equal(normalizePath("/admin/."), "/admin/");
});

Deno.test("normalizePath() keeps the query byte for byte", () => {
  assert.equal(normalizePath("/a/../b?x=/../%2e%7e&y=%zz"), "/b?x=/../%2e%7e&y=%zz");
  assert.equal(normalizePath("/%7e?%7e"), "/~?%7e");
  assert.equal(normalizePath("/?"), "/?");
  assert.equal(normalizePath("/a?b?c"), "/a?b?c");
});

Deno.test("normalizePath() follows the RFC 3986 §5.4 examples for absolute paths", () => {
  // Each §5.4.1/§5.4.2 reference, resolved against the base path "/b/c/d;p" and merged as
  // §5.2.3 says (the base's last segment replaced by the reference), before dot removal.
  const cases: [merged: string, expected: string][] = [
    ["/b/c/g", "/b/c/g"],
    ["/b/c/./g", "/b/c/g"],
    ["/b/c/g/", "/b/c/g/"],
    ["/g", "/g"],
    ["/b/c/d;p?y", "/b/c/d;p?y"],
    ["/b/c/g?y", "/b/c/g?y"],
    ["/b/c/;x", "/b/c/;x"],
    ["/b/c/g;x", "/b/c/g;x"],
    ["/b/c/g;x?y", "/b/c/g;x?y"],
    ["/b/c/.", "/b/c/"],
    ["/b/c/./", "/b/c/"],
    ["/b/c/..", "/b/"],
    ["/b/c/../", "/b/"],
    ["/b/c/../g", "/b/g"],
    ["/b/c/../..", "/"],
    ["/b/c/../../", "/"],
    ["/b/c/../../g", "/g"],
    // §5.4.2, abnormal examples
    ["/b/c/../../../g", "/g"],
    ["/b/c/../../../../g", "/g"],
    ["/./g", "/g"],
    ["/../g", "/g"],
    ["/b/c/g.", "/b/c/g."],
    ["/b/c/.g", "/b/c/.g"],
    ["/b/c/g..", "/b/c/g.."],
    ["/b/c/..g", "/b/c/..g"],
    ["/b/c/./../g", "/b/g"],
    ["/b/c/./g/.", "/b/c/g/"],
    ["/b/c/g/./h", "/b/c/g/h"],
    ["/b/c/g/../h", "/b/c/h"],
    ["/b/c/g;x=1/./y", "/b/c/g;x=1/y"],
    ["/b/c/g;x=1/../y", "/b/c/y"],
    ["/b/c/g?y/./x", "/b/c/g?y/./x"],
    ["/b/c/g?y/../x", "/b/c/g?y/../x"],
  ];
  for (const [merged, expected] of cases) {
    assert.equal(normalizePath(merged), expected, merged);
  }
});

Deno.test("normalizePath() refuses targets that are not origin-form paths", () => {
  for (const bad of ["", "a/b", "*", "http://a/b", "?q", " /a"]) {
    assert.equal(normalizePath(bad), null, JSON.stringify(bad));
  }
});

Deno.test("normalizePath() refuses bad percent-encodings, in the path but not the query", () => {
  for (const mode of PATH_NORMALIZATIONS) {
    for (const bad of ["/%zz", "/%4", "/%", "/a%g1", "/%4?1", "/%?ab", "/%%32%46"]) {
      assert.equal(normalizePath(bad, mode), null, bad);
    }
    assert.equal(normalizePath("/a?%zz%4%", mode), "/a?%zz%4%");
  }
  assert.equal(pathRefusal("/%zz"), "a % not followed by two hex digits");
});

Deno.test("normalizePath() refuses NUL, encoded or not, and other control characters", () => {
  for (const mode of PATH_NORMALIZATIONS) {
    for (const bad of ["/a\0b", "/a?\0", "/%00", "/a%00/b", "/a\tb", "/a\r\nb", "/a b", "/a\x7f"]) {
      assert.equal(normalizePath(bad, mode), null, JSON.stringify(bad));
    }
  }
  assert.equal(pathRefusal("/a%00/b", "pass"), "an encoded NUL (%00)");
  // Near miss: bytes that merely start with 0 are fine.
  assert.equal(normalizePath("/%30%0A", "pass"), "/0%0A");
});

// Property tests (STYLE.md §12). Paths are drawn from an alphabet rich in the characters that
// matter here, so dot-segments and percent-encodings come up often.
const PATH_UNITS = [
  ..."//..aB~-%2eEfF70",
  ...["5", "c", "\\", ";"],
];
const pathArb = fc.tuple(
  fc.string({ unit: fc.constantFrom(...PATH_UNITS), maxLength: 30 }),
  fc.option(fc.string({ unit: fc.constantFrom(...PATH_UNITS, "?", "="), maxLength: 10 })),
).map(([p, q]) => "/" + p + (q === null ? "" : "?" + q));

Deno.test("normalizePath() is idempotent, in both modes", () => {
  fc.assert(
    fc.property(pathArb, fc.constantFrom(...PATH_NORMALIZATIONS), (p, mode) => {
      const once = normalizePath(p, mode);
      if (once !== null) assert.equal(normalizePath(once, mode), once);
    }),
    { numRuns: 5000 },
  );
});

Deno.test("normalizePath() leaves nothing a decoding backend would split differently", () => {
  fc.assert(
    fc.property(pathArb, (p) => {
      const n = normalizePath(p);
      if (n === null) return;
      const q = n.indexOf("?");
      const path = q < 0 ? n : n.slice(0, q);
      assert.ok(!path.includes("//"), n);
      assert.ok(!/%(2F|5C|[01][0-9A-F]|7F)/i.test(path), n);
      assert.ok(!path.includes("\\"), n);
      // What strict takes, pass takes too, and strict only adds merged slashes.
      const passed = normalizePath(p, "pass");
      assert.ok(passed !== null, p);
      const pq = passed.indexOf("?");
      const passPath = pq < 0 ? passed : passed.slice(0, pq);
      if (!p.slice(0, p.includes("?") ? p.indexOf("?") : p.length).includes("//")) {
        assert.equal(path, passPath, p);
      }
    }),
    { numRuns: 5000 },
  );
});

Deno.test("normalizePath() never leaves a dot-segment and always keeps the query", () => {
  fc.assert(
    fc.property(pathArb, fc.constantFrom(...PATH_NORMALIZATIONS), (p, mode) => {
      const n = normalizePath(p, mode);
      if (n === null) return;
      const q = n.indexOf("?");
      const path = q < 0 ? n : n.slice(0, q);
      assert.ok(path.startsWith("/"));
      assert.ok(!path.split("/").some((s) => s === "." || s === ".."), n);
      assert.equal(q < 0 ? "" : n.slice(q), p.includes("?") ? p.slice(p.indexOf("?")) : "");
    }),
    { numRuns: 5000 },
  );
});

Deno.test("normalizePath() gives the same result whichever way unreserved characters are spelt", () => {
  const unreserved = /[A-Za-z0-9\-._~]/;
  fc.assert(
    fc.property(pathArb, fc.infiniteStream(fc.nat({ max: 2 })), (p, choices) => {
      const plain = normalizePath(p);
      if (plain === null) return;
      const q = p.indexOf("?");
      const end = q < 0 ? p.length : q;
      let spelt = "";
      for (let i = 0; i < end; i++) {
        const c = p[i];
        if (c === "%") { // copy a whole encoding as it is
          spelt += p.slice(i, i + 3);
          i += 2;
          continue;
        }
        const hex = c.charCodeAt(0).toString(16);
        const how = unreserved.test(c) ? choices.next().value : 0;
        spelt += how === 0 ? c : how === 1 ? "%" + hex : "%" + hex.toUpperCase();
      }
      assert.equal(normalizePath(spelt + p.slice(end)), plain, spelt);
    }),
    { numRuns: 3000 },
  );
});

Deno.test("normalizePath() ignores a /segment/.. put in front of a path", () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z]{1,5}$/), pathArb, (segment, p) => {
      assert.equal(normalizePath(`/${segment}/..${p}`), normalizePath(p));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("normalizePath() never throws on arbitrary strings", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" }), pathArb), (s) => {
      const n = normalizePath(s);
      assert.ok(n === null || n.startsWith("/"));
    }),
    { numRuns: 5000 },
  );
});
