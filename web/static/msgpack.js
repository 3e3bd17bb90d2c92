/* Canonical msgpack, encoder only: the bytes msgpack-python writes for the same
 * value (shortest headers, str and bin types apart, map keys sorted by their UTF-8
 * bytes), which is what the node signs and checks. Integers: Number (safe range)
 * or BigInt; no floats. Plain script, no build step; also loads under Node.js for
 * the cross-check in tests/web. */
(function (root) {
  "use strict";
  const utf8 = new TextEncoder();

  function cmpBytes(a, b) {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  }

  function encode(value) {
    const out = [];
    const push = (...bytes) => { for (const b of bytes) out.push(b); };
    const be = (n, width) => {  // n: BigInt, big-endian in `width` bytes
      for (let i = width - 1; i >= 0; i--) out.push(Number((n >> BigInt(8 * i)) & 0xffn));
    };
    const bytes = (arr) => { for (let i = 0; i < arr.length; i++) out.push(arr[i]); };

    function int(v) {
      const n = BigInt(v);
      if (n >= 0n) {
        if (n < 128n) push(Number(n));
        else if (n < 256n) { push(0xcc); be(n, 1); }
        else if (n < 65536n) { push(0xcd); be(n, 2); }
        else if (n < 4294967296n) { push(0xce); be(n, 4); }
        else if (n < 18446744073709551616n) { push(0xcf); be(n, 8); }
        else throw new RangeError("integer out of range");
      } else {
        const u = (bits) => (n + (1n << BigInt(bits)));  // two's complement
        if (n >= -32n) push(Number(u(8)));
        else if (n >= -128n) { push(0xd0); be(u(8), 1); }
        else if (n >= -32768n) { push(0xd1); be(u(16), 2); }
        else if (n >= -2147483648n) { push(0xd2); be(u(32), 4); }
        else if (n >= -9223372036854775808n) { push(0xd3); be(u(64), 8); }
        else throw new RangeError("integer out of range");
      }
    }

    function header(len, fix, fixMax, c8, c16, c32) {
      if (len < fixMax) push(fix | len);
      else if (c8 !== null && len < 256) push(c8, len);
      else if (len < 65536) { push(c16); be(BigInt(len), 2); }
      else { push(c32); be(BigInt(len), 4); }
    }

    function enc(v) {
      if (v === null || v === undefined) push(0xc0);
      else if (v === false) push(0xc2);
      else if (v === true) push(0xc3);
      else if (typeof v === "bigint") int(v);
      else if (typeof v === "number") {
        if (!Number.isSafeInteger(v)) throw new TypeError("only safe integers, no floats");
        int(v);
      } else if (typeof v === "string") {
        const b = utf8.encode(v);
        header(b.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
        bytes(b);
      } else if (v instanceof Uint8Array) {
        if (v.length < 256) push(0xc4, v.length);
        else if (v.length < 65536) { push(0xc5); be(BigInt(v.length), 2); }
        else { push(0xc6); be(BigInt(v.length), 4); }
        bytes(v);
      } else if (Array.isArray(v)) {
        header(v.length, 0x90, 16, null, 0xdc, 0xdd);
        for (const x of v) enc(x);
      } else if (typeof v === "object") {
        const keys = Object.keys(v).map((k) => [utf8.encode(k), k]);
        keys.sort((a, b) => cmpBytes(a[0], b[0]));
        header(keys.length, 0x80, 16, null, 0xde, 0xdf);
        for (const [, k] of keys) { enc(k); enc(v[k]); }
      } else throw new TypeError("cannot encode " + typeof v);
    }

    enc(value);
    return Uint8Array.from(out);
  }

  const api = { encode };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.AllmendeMsgpack = api;
})(this);
