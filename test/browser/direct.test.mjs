// The direct data path (FLOWGATE_DATA_PATH=direct) with the page in web/ and
// the real flow.js 2.14.1, against `make dev`: the page asks the API for its
// data path, then for presigned URLs (a batch at a time, each chunk with its
// CRC-64/NVME), and PUTs each chunk of 8 MiB straight into MinIO (through
// make dev's plain-HTTP door to it, another origin: CORS is MinIO's);
// MinIO's notifications reach the counting function's bootstrap under the
// Lambda emulator, the ledger's stream the assembler's. Every finished
// object is read back from MinIO and its sha256 compared. Chunk PUTs are
// counted as the browser sends them: a chunk the server has is never sent
// again.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import * as h from "./helpers.mjs";

const { MiB, KiB } = h;
const CHUNK = 8 * MiB;

let server, browser;
before(async () => {
  [server, browser] = await Promise.all([h.startDevServer({ FLOWGATE_DATA_PATH: "direct" }), h.launchBrowser()]);
}, { timeout: 400_000 });
after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * watchDirect counts what the page sends: chunk PUTs to the bucket (through
 * the door), with their chunk numbers and statuses (200, or 412: already
 * there), URL requests and test GETs to the API, and any chunk POST (there
 * must be none). delayMs holds each PUT back, so that an upload is caught
 * halfway; refuse(n, attempt) can answer a PUT as S3 would refuse it.
 */
async function watchDirect(page, { delayMs = 0, refuse } = {}) {
  const w = { puts: 0, sent: [], acked: [], statuses: [], urlRequests: 0, urlChunks: 0, gets: 0, posts: 0, refused: 0 };
  const isDoor = (u) => u.href.startsWith(server.door + "/");
  const attempts = new Map();
  await page.route((u) => isDoor(u), async (route) => {
    const req = route.request();
    if (req.method() === "PUT") {
      const n = Number(new URL(req.url()).searchParams.get("flowChunkNumber"));
      const a = (attempts.get(n) ?? 0) + 1;
      attempts.set(n, a);
      if (refuse && refuse(n, a)) {
        w.refused++;
        return route.fulfill({ status: 403, contentType: "application/xml", headers: { "Access-Control-Allow-Origin": "*" },
          body: "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>" });
      }
      if (delayMs) await h.sleep(delayMs);
    }
    try { await route.continue(); } catch { /* the page aborted it, navigated away or closed */ }
  });
  page.on("request", (req) => {
    const u = new URL(req.url());
    if (isDoor(u) && req.method() === "PUT") {
      w.puts++;
      w.sent.push(Number(u.searchParams.get("flowChunkNumber")));
    }
    if (u.pathname === "/upload" && req.method() === "GET") w.gets++;
    if (u.pathname === "/upload" && req.method() === "POST") w.posts++;
    if (u.pathname === "/upload/urls" && req.method() === "POST") {
      w.urlRequests++;
      w.urlChunks += JSON.parse(req.postData()).chunks.length;
    }
  });
  page.on("requestfinished", async (req) => {
    const u = new URL(req.url());
    if (!isDoor(u) || req.method() !== "PUT") return;
    const res = await req.response();
    if (!res) return;
    w.statuses.push(res.status());
    if (res.status() === 200 || res.status() === 412) w.acked.push(Number(u.searchParams.get("flowChunkNumber")));
  });
  return w;
}

async function openPage(opts = {}, query = "") {
  const page = await h.newPage(browser);
  const w = await watchDirect(page, opts);
  await page.goto(`${server.url}/${query}`);
  assert.equal(await page.evaluate(() => window.flowgatePage.ready), "direct", "the page follows the server's data path");
  return { page, w };
}

const chunksOf = (size) => Math.max(Math.ceil(size / CHUNK), 1);

test("make dev direct: 0 B, 1 B, a chunk, a chunk + 1, 20 MiB and a folder go straight to S3 in 8 MiB chunks, intact", { timeout: 180_000 }, async () => {
  const dir = h.tmpDir("direct-page");
  const files = [
    h.makeFile(dir, "zero.bin", 0), h.makeFile(dir, "one.bin", 1), h.makeFile(dir, "chunk.bin", CHUNK),
    h.makeFile(dir, "chunk-plus-one.bin", CHUNK + 1), h.makeFile(dir, "twenty.bin", 20 * MiB),
  ];
  const folder = [h.makeFile(dir, "album/a.jpg", 300 * KiB), h.makeFile(dir, "album/sub/b.png", 9 * MiB)];
  const all = [...files, ...folder];
  const { page, w } = await openPage();
  assert.equal(await page.evaluate(() => window.flowgatePage.chunkSize), CHUNK);
  assert.equal(await page.evaluate(() => window.flowgatePage.flow.opts.method), "octet");
  assert.match(await page.locator("footer").textContent(), /in pieces of 8\.0 MiB straight into storage/);

  await page.setInputFiles("#pick-files", files.map((f) => f.path));
  await page.setInputFiles("#pick-folder", path.join(dir, "album"));
  await h.waitFinished(page, all.length, 150_000);
  await h.checkUploaded(assert, server, page, all, { chunkSize: CHUNK });

  const chunks = all.reduce((n, f) => n + chunksOf(f.size), 0);
  assert.equal(w.posts, 0, "no chunk went through the API");
  assert.equal(w.puts, chunks, "each chunk PUT once");
  assert.deepEqual([...new Set(w.statuses)], [200]);
  assert.equal(w.urlChunks, chunks, "a URL asked for each chunk, once");
  assert.equal(w.urlRequests, all.length, "one URL request per file (a batch covers up to 16 chunks)");
  assert.equal(w.gets, 0, "no test GET for a chunk the URL answer said is not there");
  const stats = await (await fetch(`${server.url}/devstack/stats`)).json();
  assert.ok(stats.notifications.succeeded >= chunks, `notifications handled: ${JSON.stringify(stats.notifications)}`);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("make dev direct: pause and resume; a URL that ran out is fetched afresh", { timeout: 120_000 }, async () => {
  const f = h.makeFile(h.tmpDir("direct-pause"), "pause.bin", 48 * MiB);
  const chunks = chunksOf(f.size);
  // Chunk 4's first PUT is refused as an expired URL (S3's 403).
  const { page, w } = await openPage({ delayMs: 400, refuse: (n, attempt) => n === 4 && attempt === 1 });
  await page.setInputFiles("#pick-files", f.path);
  const row = page.locator("li.file", { hasText: "pause.bin" });

  await h.until("2 chunks stored", () => w.acked.length >= 2, 60_000);
  await page.getByRole("button", { name: "Pause pause.bin" }).click();
  await h.sleep(500); // PUTs cut off by the pause end
  const puts = w.puts;
  await h.sleep(1500);
  assert.equal(w.puts, puts, "no PUT while paused");
  assert.equal(await row.getAttribute("data-state"), "paused");
  await page.getByRole("button", { name: "Resume pause.bin" }).click();

  await h.waitFinished(page, 1, 90_000);
  await h.checkUploaded(assert, server, page, [f], { chunkSize: CHUNK });
  assert.equal(w.refused, 1);
  assert.equal(new Set(w.acked).size, chunks, "every chunk stored");
  assert.ok(w.urlRequests >= 2, "a fresh URL after the 403");
  // Only chunks cut off by the pause (3 in flight) and the refused one went again.
  assert.ok(w.puts <= chunks + 4, `${w.puts} PUTs for ${chunks} chunks`);
  assert.equal(w.posts, 0);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("make dev direct: a page reload resumes, the chunks S3 has are tested and not sent again", { timeout: 120_000 }, async () => {
  const f = h.makeFile(h.tmpDir("direct-reload"), "reload.bin", 56 * MiB);
  const chunks = chunksOf(f.size);
  const { page, w } = await openPage({ delayMs: 600 });
  await page.setInputFiles("#pick-files", f.path);
  await h.until("3 chunks stored", () => w.acked.length >= 3, 60_000);
  const stored = new Set(w.acked);
  const [row] = await h.pageFiles(page);

  await page.reload();
  assert.equal(await page.evaluate(() => window.flowgatePage.ready), "direct");
  await page.locator("#unfinished").waitFor({ state: "visible" });
  const sentBefore = w.sent.length, getsBefore = w.gets;
  await page.setInputFiles("#pick-files", f.path);
  await h.waitFinished(page, 1, 90_000);
  await h.checkUploaded(assert, server, page, [f], { chunkSize: CHUNK });
  const [again] = await h.pageFiles(page);
  assert.equal(again.identifier, row.identifier, "the same upload");

  const resent = w.sent.slice(sentBefore).filter((n) => stored.has(n));
  assert.deepEqual(resent, [], "no chunk S3 had was sent again");
  assert.ok(w.gets - getsBefore >= stored.size, "the chunks the server had were tested");
  assert.deepEqual(new Set([...stored, ...w.sent.slice(sentBefore)]).size, chunks);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
