// The README's error table, rule by rule: for each status flowgate answers,
// what flow.js 2.14.1 (with its defaults, and with maxChunkRetries: 2) and
// Resumable.js 1.1.0 (with its defaults) do with it, in Chromium against
// `make run`'s server. Each condition is the real one where a browser test
// can bring it about (a malformed field, no token, a conflicting upload, a
// file over the limit, too many uploads at once, a body cut short in
// flight); a storage failure and a dropped connection are injected in the
// browser (page.route), answered as flowgate answers them.
//
// Each run uploads one small file (one chunk) and records the status of
// every test GET and POST, and whether the library reported the file done
// or failed.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as h from "./helpers.mjs";
import { openLibPage, startUploader, waitLibRun } from "./libs.mjs";

const { KiB, MiB } = h;
const JWT_SECRET = "0123456789abcdef0123456789abcdef-statuses";

// The three clients of each rule.
const CLIENTS = {
  "flow.js defaults": { lib: "flow", opts: {} }, // maxChunkRetries 0
  "flow.js maxChunkRetries: 2": { lib: "flow", opts: { maxChunkRetries: 2, chunkRetryInterval: 20 } },
  "Resumable.js defaults": { lib: "resumable", opts: {} }, // maxChunkRetries 100, at once
};

let servers, browser;
before(async () => {
  const [plain, limits, busy, jwt, picky, b] = await Promise.all([
    h.startServer(),
    h.startServer({ env: { FLOWGATE_MAX_FILE_SIZE: "1MiB" } }),
    h.startServer({ env: { FLOWGATE_MAX_UPLOADS_PER_NAMESPACE: "1" } }),
    h.startServer({ env: { FLOWGATE_AUTH: "jwt", FLOWGATE_JWT_SECRET: JWT_SECRET } }),
    h.startServer({ env: { FLOWGATE_ALLOWED_TYPES: "image/*, .png" } }),
    h.launchBrowser(),
  ]);
  servers = { plain, limits, busy, jwt, picky };
  browser = b;
});
after(async () => {
  await browser?.close();
  for (const s of Object.values(servers ?? {})) await s.kill();
});

let seq = 0;
/**
 * attempt uploads a one-chunk file of size bytes with client against server
 * and returns { outcome: "done" | "failed", message, gets, posts }: the
 * statuses of its test GETs and POSTs in order (0: no answer). route, if
 * given, intercepts /upload requests first; fnOpts are options given as
 * function source.
 */
async function attempt(server, client, { size = 1000, route, fnOpts } = {}) {
  const f = h.makeFile(h.tmpDir("statuses"), `s${++seq}-${client.lib}.bin`, size);
  const reqs = [];
  const page = await openLibPage(browser, `${server.url}/`, async (p) => {
    if (route) await p.route((u) => u.pathname === "/upload", route);
    p.on("request", (req) => {
      if (new URL(req.url()).pathname === "/upload") reqs.push({ req, method: req.method(), status: null });
    });
    p.on("requestfinished", async (req) => {
      const e = reqs.find((r) => r.req === req);
      if (e) e.status = (await req.response())?.status() ?? 0;
    });
    p.on("requestfailed", (req) => {
      const e = reqs.find((r) => r.req === req);
      if (e) e.status = 0;
    });
  });
  await startUploader(page, { id: "up", lib: client.lib, opts: { target: `${server.url}/upload`, ...client.opts }, fnOpts });
  await page.setInputFiles("#up", f.path);
  const run = await waitLibRun(page, "up", 1, { allowErrors: true, timeoutMs: 30_000 });
  await h.until("every request answered", () => reqs.every((r) => r.status !== null), 10_000);
  await page.context().close();
  const done = Object.keys(run.done).length === 1;
  return {
    outcome: done ? "done" : "failed",
    message: done ? null : Object.values(run.errors)[0],
    gets: reqs.filter((r) => r.method === "GET").map((r) => r.status),
    posts: reqs.filter((r) => r.method === "POST").map((r) => r.status),
    file: f,
  };
}

/** times is n copies of status. */
const times = (n, status) => Array.from({ length: n }, () => status);

/**
 * rule runs each client against server and checks what it did: want maps a
 * client's name to { outcome, posts, gets? }.
 */
async function rule(server, want, opts = {}) {
  for (const [name, client] of Object.entries(CLIENTS)) {
    const o = typeof opts === "function" ? await opts(name) : opts;
    const got = await attempt(server, client, o);
    const w = want[name];
    const check = { outcome: got.outcome, posts: got.posts, ...(w.gets ? { gets: got.gets } : {}) };
    assert.deepEqual(check, w, `${name}: ${JSON.stringify(got.message)}`);
    if (o.after) await o.after(name);
  }
}

test("400 (a malformed request): flow.js fails the file, or retries it maxChunkRetries times first; Resumable.js gives up at once", { timeout: 90_000 }, async () => {
  await rule(servers.plain, {
    "flow.js defaults": { outcome: "failed", gets: [400], posts: [400] },
    "flow.js maxChunkRetries: 2": { outcome: "failed", gets: [400], posts: times(3, 400) },
    "Resumable.js defaults": { outcome: "failed", gets: [400], posts: [400] },
  }, { fnOpts: { generateUniqueIdentifier: "() => 'not/allowed'" } });
});

test("401 (no token): flow.js fails the file or retries it maxChunkRetries times; Resumable.js retries it 100 times, at once, then fails", { timeout: 90_000 }, async () => {
  await rule(servers.jwt, {
    "flow.js defaults": { outcome: "failed", gets: [401], posts: [401] },
    "flow.js maxChunkRetries: 2": { outcome: "failed", gets: [401], posts: times(3, 401) },
    "Resumable.js defaults": { outcome: "failed", gets: [401], posts: times(101, 401) },
  });
});

test("408 (the body cut short in flight): retried by Resumable.js, and by flow.js when maxChunkRetries is set", { timeout: 90_000 }, async () => {
  await rule(servers.plain, {
    "flow.js defaults": { outcome: "failed", posts: [408] },
    "flow.js maxChunkRetries: 2": { outcome: "done", posts: [408, 200] },
    "Resumable.js defaults": { outcome: "done", posts: [408, 200] },
  }, () => {
    let posts = 0;
    return {
      // The first POST's multipart body loses its last 300 bytes on the
      // way: flowgate sees a body that ends before the chunk does.
      route: async (route) => {
        const req = route.request();
        if (req.method() === "POST" && posts++ === 0) {
          const body = req.postDataBuffer();
          return route.continue({ postData: body.subarray(0, body.length - 300) });
        }
        return route.fallback();
      },
    };
  });
});

test("409 (the identifier in use with another chunking): flow.js gets 409, Resumable.js 400, which it gives up on", { timeout: 90_000 }, async () => {
  // An upload in progress under the identifier the clients will use, cut in
  // chunks of 500 bytes: theirs (1 MiB chunks) conflicts with it.
  const id = `conflict-${Date.now()}`;
  const q = new URLSearchParams({
    flowChunkNumber: "1", flowChunkSize: "500", flowCurrentChunkSize: "500", flowTotalSize: "1000",
    flowIdentifier: id, flowFilename: "other.bin", flowTotalChunks: "2",
  });
  const r = await fetch(`${servers.plain.url}/upload?${q}`, { method: "POST", body: new Uint8Array(500), headers: { "Content-Type": "application/octet-stream" } });
  assert.equal(r.status, 200);
  await rule(servers.plain, {
    "flow.js defaults": { outcome: "failed", gets: [409], posts: [409] },
    "flow.js maxChunkRetries: 2": { outcome: "failed", gets: [409], posts: times(3, 409) },
    "Resumable.js defaults": { outcome: "failed", gets: [400], posts: [400] },
  }, { fnOpts: { generateUniqueIdentifier: `() => ${JSON.stringify(id)}` } });
});

test("413 (a file over the limit): flow.js fails at the test GET, sending nothing; Resumable.js gets 400 and fails at its first POST", { timeout: 90_000 }, async () => {
  await rule(servers.limits, {
    "flow.js defaults": { outcome: "failed", gets: [413], posts: [] },
    "flow.js maxChunkRetries: 2": { outcome: "failed", gets: [413], posts: [] },
    "Resumable.js defaults": { outcome: "failed", gets: [400], posts: [400] },
  }, { size: MiB + 512 * KiB });
});

test("415 (a file the allow-list does not take): flow.js fails at the test GET, sending nothing; Resumable.js fails at its first POST", { timeout: 90_000 }, async () => {
  await rule(servers.picky, {
    "flow.js defaults": { outcome: "failed", gets: [415], posts: [] },
    "flow.js maxChunkRetries: 2": { outcome: "failed", gets: [415], posts: [] },
    "Resumable.js defaults": { outcome: "failed", gets: [415], posts: [415] },
  });
});

test("422 (a chunk that does not match its checksum, damaged in flight): retried by Resumable.js, and by flow.js when maxChunkRetries is set", { timeout: 90_000 }, async () => {
  await rule(servers.plain, {
    "flow.js defaults": { outcome: "failed", posts: [422] },
    "flow.js maxChunkRetries: 2": { outcome: "done", posts: [422, 200] },
    "Resumable.js defaults": { outcome: "done", posts: [422, 200] },
  }, () => {
    let posts = 0;
    return {
      // Every POST gets the SHA-256 of the chunk its client sent
      // (checksumSha256, in the query string); the first one's body then
      // loses a bit on the way.
      route: async (route) => {
        const req = route.request();
        if (req.method() !== "POST") return route.fallback();
        const body = req.postDataBuffer();
        const start = body.indexOf("\r\n\r\n", body.indexOf('name="file"')) + 4;
        const url = new URL(req.url());
        url.searchParams.set("checksumSha256", createHash("sha256").update(body.subarray(start, start + 1000)).digest("hex"));
        let postData = body;
        if (posts++ === 0) {
          postData = Buffer.from(body);
          postData[start + 10] ^= 0x01;
        }
        return route.continue({ url: url.href, postData });
      },
    };
  });
});

test("429 (too many uploads at once): retried by Resumable.js (at once), and by flow.js when maxChunkRetries is set", { timeout: 90_000 }, async () => {
  // Another upload is in progress (FLOWGATE_MAX_UPLOADS_PER_NAMESPACE=1)
  // until its last chunk is sent: when a client has been refused twice.
  const send = (id, n) => {
    const q = new URLSearchParams({
      flowChunkNumber: String(n), flowChunkSize: "500", flowCurrentChunkSize: "500", flowTotalSize: "1000",
      flowIdentifier: id, flowFilename: "blocker.bin", flowTotalChunks: "2",
    });
    return fetch(`${servers.busy.url}/upload?${q}`, { method: "POST", body: new Uint8Array(500), headers: { "Content-Type": "application/octet-stream" } });
  };
  await rule(servers.busy, {
    "flow.js defaults": { outcome: "failed", posts: [429] },
    "flow.js maxChunkRetries: 2": { outcome: "done", posts: [429, 429, 200] },
    "Resumable.js defaults": { outcome: "done", posts: [429, 429, 200] },
  }, async (name) => {
    const id = `blocker-${name.replace(/\W/g, "")}-${Date.now()}`;
    assert.equal((await send(id, 1)).status, 200);
    let refused = 0, finished = false;
    const finish = async () => {
      if (!finished) { finished = true; assert.equal((await send(id, 2)).status, 200); }
    };
    return {
      // Each POST goes to flowgate as sent; the second 429 is handed to the
      // page only once the other upload is complete, so the retry after it
      // finds room, however soon it comes.
      route: async (route) => {
        if (route.request().method() !== "POST") return route.fallback();
        const res = await route.fetch();
        if (res.status() === 429 && ++refused === 2) await finish();
        return route.fulfill({ response: res });
      },
      after: finish,
    };
  });
});

test("503 (storage unavailable, injected): retried by Resumable.js, and by flow.js when maxChunkRetries is set", { timeout: 90_000 }, async () => {
  await rule(servers.plain, {
    "flow.js defaults": { outcome: "failed", posts: [503] },
    "flow.js maxChunkRetries: 2": { outcome: "done", posts: [503, 503, 200] },
    "Resumable.js defaults": { outcome: "done", posts: [503, 503, 200] },
  }, () => {
    let posts = 0;
    return {
      route: (route) => (route.request().method() === "POST" && posts++ < 2
        ? route.fulfill({ status: 503, headers: { "Retry-After": "1" }, contentType: "application/json", body: '{"error":"storage is unavailable; try again"}' })
        : route.fallback()),
    };
  });
});

test("no answer (the connection dropped, injected): retried by Resumable.js, and by flow.js when maxChunkRetries is set", { timeout: 90_000 }, async () => {
  await rule(servers.plain, {
    "flow.js defaults": { outcome: "failed", posts: [0] },
    "flow.js maxChunkRetries: 2": { outcome: "done", posts: [0, 200] },
    "Resumable.js defaults": { outcome: "done", posts: [0, 200] },
  }, () => {
    let posts = 0;
    return { route: (route) => (route.request().method() === "POST" && posts++ === 0 ? route.abort("connectionreset") : route.fallback()) };
  });
});
