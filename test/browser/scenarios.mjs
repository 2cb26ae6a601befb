// The uploads every server must take intact, run against `make run`'s
// server (defaults.test.mjs, page.test.mjs, resumable.test.mjs) and against
// `make dev`'s (dev.test.mjs): files of 0 B, 1 B, exactly chunkSize,
// chunkSize+1, 2×chunkSize−1 and 50 MiB chosen at once, then a folder, with
//   - flow.js's default options (only `target` set),
//   - the page in web/ with its own options, and
//   - Resumable.js 1.1.0, with its default options or others.
// Each finished file's sha256 must equal its source's.

import assert from "node:assert/strict";
import path from "node:path";
import * as h from "./helpers.mjs";
import { openLibPage, startUploader, waitLibRun } from "./libs.mjs";

const { MiB, KiB } = h;
export const DEFAULT_CHUNK = 1 * MiB; // flow.js's default chunkSize
export const PAGE_CHUNK = 4 * MiB; // web/config.js

// edgeFiles makes the files in dir; their names start with prefix, so that
// uploads of several runs against one server never share an identifier
// (size-name, by default, in one public namespace).
function edgeFiles(dir, chunk, { big = true, prefix = "" } = {}) {
  const files = [
    h.makeFile(dir, `${prefix}zero.bin`, 0),
    h.makeFile(dir, `${prefix}one.bin`, 1),
    h.makeFile(dir, `${prefix}exact.bin`, chunk),
    h.makeFile(dir, `${prefix}exact-plus-one.bin`, chunk + 1),
    h.makeFile(dir, `${prefix}twice-minus-one.bin`, 2 * chunk - 1),
    ...(big ? [h.makeFile(dir, `${prefix}big.bin`, 50 * MiB)] : []),
  ];
  const album = `${prefix}album`;
  const folder = [
    h.makeFile(dir, `${album}/notes.txt`, 10 * KiB),
    h.makeFile(dir, `${album}/sub/b.bin`, chunk + chunk / 4 + 3),
    h.makeFile(dir, `${album}/sub/deeper/c.bin`, 3 * chunk + 7),
  ];
  return { dir, album, files, folder, all: [...files, ...folder] };
}

/**
 * withDefaults uploads the edge files with `new Flow({ target })` and nothing
 * else. The page is loaded from http://localhost:<port> and the API is
 * http://127.0.0.1:<port>: another origin, so every request is also CORS,
 * as from a static site.
 */
export async function withDefaults(browser, server) {
  const { dir, files, folder, all } = edgeFiles(h.tmpDir(`defaults-${Date.now()}`), DEFAULT_CHUNK);
  const page = await h.newPage(browser);
  const w = await h.watchUploads(page, { bodies: false });
  await page.goto(`http://localhost:${server.port}/`);
  const opts = await page.evaluate((target) => {
    const flow = new Flow({ target });
    const pick = (id, folderInput) => {
      const input = document.createElement("input");
      input.type = "file";
      input.id = id;
      document.body.append(input);
      flow.assignBrowse(input, folderInput);
    };
    pick("defaults-files", false);
    pick("defaults-folder", true);
    const run = { done: {}, errors: [] };
    flow.on("filesSubmitted", () => flow.upload());
    flow.on("fileSuccess", (f) => {
      run.done[f.relativePath] = { identifier: f.uniqueIdentifier, name: f.name, size: f.size, chunkSize: f.chunkSize, chunks: f.chunks.length };
    });
    flow.on("fileError", (f, message) => run.errors.push(`${f.relativePath}: ${message}`));
    window.defaultsRun = run;
    return flow.opts;
  }, `${server.url}/upload`);
  assert.equal(opts.chunkSize, DEFAULT_CHUNK);
  assert.equal(opts.forceChunkSize, false);
  assert.equal(opts.testChunks, true);
  assert.equal(opts.method, "multipart");
  assert.equal(opts.generateUniqueIdentifier, null);

  await page.setInputFiles("#defaults-files", files.map((f) => f.path));
  await page.setInputFiles("#defaults-folder", path.join(dir, "album"));
  const done = await h.until("flow.js to report every file uploaded", async () => {
    const run = await page.evaluate(() => window.defaultsRun);
    if (run.errors.length) throw new Error(`flow.js reported errors: ${run.errors.join("; ")}`);
    return Object.keys(run.done).length === all.length && run.done;
  }, 90_000, 100);

  let expectedPosts = 0;
  for (const f of all) {
    const got = done[f.rel];
    assert.ok(got, `flow.js uploaded ${f.rel} (relative path kept)`);
    // flow.js's default identifier is size-path, and with forceChunkSize
    // false it sends floor(size/chunkSize) chunks, the last with the rest
    // (up to 2×chunkSize−1 bytes).
    assert.equal(got.identifier, `${f.size}-${f.rel.replace(/[^0-9a-zA-Z_-]/g, "")}`);
    const chunks = Math.max(Math.floor(f.size / DEFAULT_CHUNK), 1);
    assert.equal(got.chunks, chunks, `${f.rel}: chunks`);
    expectedPosts += chunks;

    const st = await h.waitComplete(server, h.flowFields({ ...got, forceChunkSize: false }));
    assert.equal(st.size, f.size, `${f.rel}: size on the server`);
    assert.equal(st.total, chunks, `${f.rel}: chunks on the server`);
    assert.equal(await h.finishedSha256(server, st.location, f.name), f.sha256, `${f.rel}: sha256 of the finished file`);
  }

  // Each chunk was sent once and accepted: nothing refused, nothing resent.
  assert.equal(w.posts, expectedPosts, "chunk POSTs");
  assert.equal(w.acked.length, expectedPosts, "chunks acknowledged");
  assert.ok(w.statuses.every((s) => s === 200), `every POST answered 200, got ${[...new Set(w.statuses)]}`);
  assert.deepEqual(page.errors, []);
  await page.context().close();
  return { files, folder };
}

/** withPage uploads the edge files through the page in web/, as a visitor. */
export async function withPage(browser, server) {
  const { dir, files, folder, all } = edgeFiles(h.tmpDir(`page-${Date.now()}`), PAGE_CHUNK);
  const page = await h.newPage(browser);
  const w = await h.watchUploads(page, { bodies: false });
  await page.goto(server.url + "/");
  assert.equal(await page.evaluate(() => window.flowgatePage.chunkSize), PAGE_CHUNK);
  assert.equal(await page.evaluate(() => window.flowgatePage.flow.opts.forceChunkSize), true);
  assert.match(await page.locator("footer").textContent(), /in pieces of 4\.0 MiB/);

  await page.setInputFiles("#pick-files", files.map((f) => f.path));
  await page.setInputFiles("#pick-folder", path.join(dir, "album"));
  const rows = await h.waitFinished(page, all.length, 90_000);
  await h.checkUploaded(assert, server, page, all, { chunkSize: PAGE_CHUNK });

  // Relative paths are kept and shown; identifiers are random and distinct.
  for (const f of folder) assert.ok(rows.some((r) => r.shownName === f.rel), `row shows ${f.rel}`);
  const ids = rows.map((r) => r.identifier);
  assert.ok(ids.every((id) => /^[0-9a-f]{32}$/.test(id)), `random identifiers: ${ids}`);
  assert.equal(new Set(ids).size, ids.length);

  // With forceChunkSize no chunk is over 4 MiB (the Lambda limit):
  // ceil(size / 4 MiB) chunks each, every one sent once.
  const expected = all.reduce((n, f) => n + Math.max(Math.ceil(f.size / PAGE_CHUNK), 1), 0);
  assert.equal(w.posts, expected, "chunk POSTs");
  assert.equal(w.acked.length, expected, "chunks acknowledged");

  await page.waitForFunction((n) => document.getElementById("overall").textContent.startsWith(`${n} of ${n} files complete`), all.length, { timeout: 5_000 });
  assert.equal(await page.locator("#overall-bar").evaluate((e) => e.value), 1);
  // Finished uploads leave nothing behind in localStorage.
  assert.deepEqual(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("flowgate:"))), []);
  assert.deepEqual(page.errors, []);
  await page.context().close();
  return { files, folder };
}

/**
 * withResumable uploads the edge files with Resumable.js 1.1.0 and opts
 * (none: its defaults, only `target` set), the page on http://localhost:<port>
 * and the API on http://127.0.0.1:<port> (another origin). Resumable.js
 * refuses empty files itself unless minFileSize is 0 (with an alert, and
 * it drops the files chosen after the empty one with it), so then the 0 B
 * file is chosen alone and must be refused by the library, never sent.
 * Every file must arrive byte-exact, each chunk POSTed once and answered
 * 200; the status endpoint is asked in Resumable.js's names.
 */
export async function withResumable(browser, server, { opts = {}, label = "resumable", big = true } = {}) {
  const chunk = opts.chunkSize ?? DEFAULT_CHUNK;
  const force = opts.forceChunkSize ?? false;
  const prefix = opts.parameterNamespace ?? "";
  const { dir, album, files, folder, all } = edgeFiles(h.tmpDir(`${label}-${Date.now()}`), chunk, { big, prefix: `${label}-` });
  let w;
  const page = await openLibPage(browser, `http://localhost:${server.port}/`, async (p) => { w = await h.watchUploads(p, { bodies: false }); });
  const target = `${server.url}/upload`;
  const got = await startUploader(page, { id: `${label}-files`, lib: "resumable", opts: { target, ...opts } });
  await startUploader(page, { id: `${label}-folder`, lib: "resumable", opts: { target, ...opts }, folder: true });
  assert.equal(got.chunkSize, chunk);
  assert.equal(got.forceChunkSize, force);
  assert.equal(got.testChunks, true);
  assert.equal(got.method, opts.method ?? "multipart");
  assert.deepEqual(got.permanentErrors, [400, 404, 415, 500, 501], "Resumable.js gives up on 400; flowgate's statuses are chosen for it");

  const emptyAllowed = got.minFileSize === 0;
  const expected = all.filter((f) => emptyAllowed || f.size > 0);
  if (!emptyAllowed) {
    await page.setInputFiles(`#${label}-files`, files[0].path);
    await h.until("Resumable.js to refuse the empty file", () => page.dialogs.length > 0);
    assert.match(page.dialogs[0], new RegExp(`^${label}-zero\\.bin is too small`), "Resumable.js refused the empty file itself");
  }
  await page.setInputFiles(`#${label}-files`, expected.filter((f) => files.includes(f)).map((f) => f.path));
  await page.setInputFiles(`#${label}-folder`, path.join(dir, album));
  const fileRun = await waitLibRun(page, `${label}-files`, expected.filter((f) => files.includes(f)).length);
  const folderRun = await waitLibRun(page, `${label}-folder`, folder.length);
  const done = { ...fileRun.done, ...folderRun.done };
  assert.equal(Object.keys(done).length, expected.length, `files reported done: ${Object.keys(done)}`);

  let expectedPosts = 0;
  for (const f of expected) {
    const d = done[f.rel];
    assert.ok(d, `Resumable.js uploaded ${f.rel} (relative path kept)`);
    // Its default identifier is flow.js's: size-path, so either library
    // names a file the same.
    assert.equal(d.identifier, `${f.size}-${f.rel.replace(/[^0-9a-zA-Z_-]/g, "")}`);
    const round = force ? Math.ceil : Math.floor;
    const chunks = Math.max(round(f.size / chunk), 1);
    assert.equal(d.chunks, chunks, `${f.rel}: chunks`);
    expectedPosts += chunks;
    const st = await h.waitComplete(server, h.resumableFields({ ...d, chunkSize: chunk, forceChunkSize: force }, prefix));
    assert.equal(st.size, f.size, `${f.rel}: size on the server`);
    assert.equal(st.total, chunks, `${f.rel}: chunks on the server`);
    assert.equal(await h.finishedSha256(server, st.location, f.name), f.sha256, `${f.rel}: sha256 of the finished file`);
  }
  assert.equal(w.posts, expectedPosts, "chunk POSTs");
  assert.equal(w.acked.length, expectedPosts, "chunks acknowledged");
  assert.ok(w.statuses.every((s) => s === 200), `every POST answered 200, got ${[...new Set(w.statuses)]}`);
  assert.deepEqual(page.errors, []);
  await page.context().close();
  return { files, folder };
}
