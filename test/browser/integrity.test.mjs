// Integrity end to end, with the page in web/ and the real flow.js in
// Chromium: every chunk goes with the SHA-256 of its bytes, a chunk damaged
// on the way is refused (422) and sent again, and the finished file is right
// and carries its CRC-64/NVME and type in its status; a file the site does
// not take is refused at once (415) and the page says why.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import * as h from "./helpers.mjs";

const { KiB } = h;

let plain, picky, browser;
before(async () => {
  [plain, picky, browser] = await Promise.all([
    h.startServer(),
    h.startServer({ env: { FLOWGATE_ALLOWED_TYPES: "image/*, .png, .jpg" } }),
    h.launchBrowser(),
  ]);
});
after(async () => {
  await browser?.close();
  await plain?.kill();
  await picky?.kill();
});

// CRC-64/NVME (bit-reversed polynomial, all-ones in and out), as S3 and
// flowgate compute it, base64 of the 8 bytes big-endian.
const POLY = 0x9a6c9329ac4bc9b5n;
const TABLE = Array.from({ length: 256 }, (_, i) => {
  let c = BigInt(i);
  for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ POLY : c >> 1n;
  return c;
});
function crc64nvme(buf) {
  let c = 0xffffffffffffffffn;
  for (const b of buf) c = TABLE[Number((c ^ BigInt(b)) & 0xffn)] ^ (c >> 8n);
  c ^= 0xffffffffffffffffn;
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(c);
  return out.toString("base64");
}

const field = (body, name) => new RegExp(`name="${name}"\r\n\r\n([^\r]*)\r\n`).exec(body.toString("latin1"))?.[1];

test("a chunk damaged on the way is refused with 422, sent again, and the file arrives intact with its checksum", { timeout: 60_000 }, async () => {
  const f = h.makeFile(h.tmpDir("integrity"), "damaged.bin", 700 * KiB);
  const page = await h.newPage(browser);
  const posts = []; // { chunk, sha256, status }
  let damaged = false;
  await page.route((u) => u.pathname === "/upload", async (route) => {
    const req = route.request();
    if (req.method() !== "POST") return route.continue();
    const body = req.postDataBuffer();
    const post = { chunk: Number(field(body, "flowChunkNumber")), sha256: field(body, "checksumSha256"), status: 0 };
    posts.push(post);
    let postData;
    if (post.chunk === 2 && !damaged) {
      // Flip one byte of the chunk's bytes, after its part's headers.
      damaged = true;
      const at = body.indexOf('name="file"');
      const start = body.indexOf("\r\n\r\n", at) + 4;
      postData = Buffer.from(body);
      postData[start + 1000] ^= 0x01;
    }
    const res = await route.fetch(postData ? { postData } : {});
    post.status = res.status();
    await route.fulfill({ response: res });
  });
  await page.goto(plain.url + "/?chunkSize=" + 256 * KiB);
  await page.setInputFiles("#pick-files", f.path);
  await h.waitFinished(page, 1, 30_000);
  const [row] = await h.checkUploaded(assert, plain, page, [f]);

  assert.ok(damaged, "chunk 2 went through the route");
  assert.ok(posts.every((p) => /^[A-Za-z0-9+/]{43}=$/.test(p.sha256 ?? "")), `every chunk carries its SHA-256: ${JSON.stringify(posts)}`);
  const two = posts.filter((p) => p.chunk === 2).map((p) => p.status);
  assert.deepEqual(two, [422, 200], "chunk 2: refused as damaged, then taken when sent again");
  assert.deepEqual(posts.filter((p) => p.chunk !== 2).map((p) => p.status), [200, 200]);

  const st = await h.status(plain, h.flowFields({ ...row, forceChunkSize: true }));
  assert.equal(st.crc64nvme, crc64nvme(fs.readFileSync(f.path)), "the status carries the file's CRC-64/NVME");
  assert.equal(st.contentType, "application/octet-stream");
  assert.equal(st.contentDisposition, 'attachment; filename="damaged.bin"');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("allow-list: a file of another type is refused at once with 415 and the page says why; an image is taken", { timeout: 60_000 }, async () => {
  const dir = h.tmpDir("integrity-allowed");
  const notes = h.makeFile(dir, "notes.txt", 3 * KiB);
  const pic = h.makeFile(dir, "pic.png", 300 * KiB);
  const page = await h.newPage(browser);
  const w = await h.watchUploads(page, { bodies: false });
  await page.goto(picky.url + "/");
  await page.setInputFiles("#pick-files", [notes.path, pic.path]);
  const rows = await h.waitFinished(page, 2, 30_000);
  const refused = rows.find((r) => r.rel === "notes.txt");
  assert.equal(refused.state, "failed");
  assert.match(refused.text, /415.*not accepted here.*allowed: image\/\*, \.png, \.jpg/);
  await h.checkUploaded(assert, picky, page, [pic]);
  const row = rows.find((r) => r.rel === "pic.png");
  const st = await h.status(picky, h.flowFields({ ...row, forceChunkSize: true }));
  assert.equal(st.contentType, "image/png");
  assert.equal(w.posts, 1, "the refused file sent no bytes: its test GET was refused");
  await page.context().close();
});
