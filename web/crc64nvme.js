// CRC-64/NVME of a chunk, as S3 computes and keeps it (x-amz-checksum-crc64nvme):
// reflected polynomial 0x9A6C9329AC4BC9B5, initial value and final xor all ones.
// On the direct data path the page sends each chunk straight to S3 with this
// checksum signed into its URL: S3 refuses other bytes, and keeps the checksum,
// from which the finished file's is proved.
//
// Browsers have no CRC-64 (WebCrypto has only SHA digests, which S3 cannot
// combine into a whole file's checksum), so it is computed here: 64-bit values
// as two 32-bit halves, eight bytes at a time (slicing-by-8: eight tables of
// 256 entries, one per byte position).
//
//   flowgateCRC64NVME(bytes)  -> the checksum as S3 writes it: base64 of 8 bytes, big-endian
(function (root) {
  "use strict";

  var POLY_HI = 0x9a6c9329, POLY_LO = 0xac4bc9b5;
  var LO = new Uint32Array(8 * 256), HI = new Uint32Array(8 * 256);

  for (var i = 0; i < 256; i++) {
    var lo = i, hi = 0;
    for (var b = 0; b < 8; b++) {
      var odd = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (odd) { lo = (lo ^ POLY_LO) >>> 0; hi = (hi ^ POLY_HI) >>> 0; }
    }
    LO[i] = lo; HI[i] = hi;
  }
  for (var k = 1; k < 8; k++) {
    for (i = 0; i < 256; i++) {
      var pl = LO[(k - 1) * 256 + i], ph = HI[(k - 1) * 256 + i], idx = pl & 0xff;
      LO[k * 256 + i] = (((pl >>> 8) | (ph << 24)) ^ LO[idx]) >>> 0;
      HI[k * 256 + i] = ((ph >>> 8) ^ HI[idx]) >>> 0;
    }
  }

  var littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

  function crc64nvme(data) {
    var bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    var lo = 0xffffffff, hi = 0xffffffff, n = bytes.length, i = 0;
    var blocks = n >>> 3;
    var words = null;
    if (littleEndian && bytes.byteOffset % 4 === 0) {
      words = new Uint32Array(bytes.buffer, bytes.byteOffset, blocks * 2);
    }
    for (var j = 0; j < blocks; j++) {
      var a, c;
      if (words) {
        a = words[2 * j]; c = words[2 * j + 1];
      } else {
        a = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
        c = bytes[i + 4] | (bytes[i + 5] << 8) | (bytes[i + 6] << 16) | (bytes[i + 7] << 24);
      }
      i += 8;
      var xl = (lo ^ a) >>> 0, xh = (hi ^ c) >>> 0;
      var t0 = 7 * 256 + (xl & 0xff), t1 = 6 * 256 + ((xl >>> 8) & 0xff), t2 = 5 * 256 + ((xl >>> 16) & 0xff), t3 = 4 * 256 + (xl >>> 24);
      var t4 = 3 * 256 + (xh & 0xff), t5 = 2 * 256 + ((xh >>> 8) & 0xff), t6 = 256 + ((xh >>> 16) & 0xff), t7 = xh >>> 24;
      lo = LO[t0] ^ LO[t1] ^ LO[t2] ^ LO[t3] ^ LO[t4] ^ LO[t5] ^ LO[t6] ^ LO[t7];
      hi = HI[t0] ^ HI[t1] ^ HI[t2] ^ HI[t3] ^ HI[t4] ^ HI[t5] ^ HI[t6] ^ HI[t7];
    }
    for (; i < n; i++) {
      var x = (lo ^ bytes[i]) & 0xff;
      lo = (LO[x] ^ ((lo >>> 8) | (hi << 24))) >>> 0;
      hi = (HI[x] ^ (hi >>> 8)) >>> 0;
    }
    lo = (lo ^ 0xffffffff) >>> 0;
    hi = (hi ^ 0xffffffff) >>> 0;
    var s = String.fromCharCode(hi >>> 24, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff,
      lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff);
    return typeof btoa === "function" ? btoa(s) : Buffer.from(s, "latin1").toString("base64");
  }

  root.flowgateCRC64NVME = crc64nvme;
  if (typeof module === "object" && module.exports) { module.exports = crc64nvme; }
})(typeof window !== "undefined" ? window : globalThis);
