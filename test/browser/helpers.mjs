// Shared pieces of the browser tests: the real flowgate server (built from
// this checkout, started on a free port of 127.0.0.1 with its own data
// directory), Debian's Chromium driven by playwright-core, test files and
// their sha256, and the status endpoint.
//
// Nothing started here may outlive the test run: every server runs under
// `timeout` in a process group of its own, is killed (the whole group) when
// the test file ends or the process exits, and dies by itself after
// SERVER_LIFETIME anyway. Playwright closes Chromium when its driver exits.

import { spawn, execFile } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { once } from "node:events";
import fs from "node:fs";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const webDir = path.join(repoRoot, "web");
export const flowJsPath = path.join(webDir, "vendor", "flow.min.js");
// Resumable.js 1.1.0 from npm (package.json pins it; the page stays on flow.js).
export const resumableJsPath = path.join(repoRoot, "node_modules", "resumablejs", "resumable.js");
export const KiB = 1024;
export const MiB = 1024 * 1024;

const SERVER_LIFETIME = "600"; // seconds; a safety net, tests stop servers long before
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
  "--no-first-run", "--disable-quic", "--disable-sync",
];

// --- Temporary directory ----------------------------------------------------

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "flowgate-browser-"));
export function tmpDir(name) {
  const dir = path.join(tmpRoot, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

// --- Processes ----------------------------------------------------------------

const live = new Set(); // process group ids of running servers

function killGroup(pgid, signal = "SIGKILL") {
  try { process.kill(-pgid, signal); } catch { /* already gone */ }
}

function cleanupSync() {
  for (const pgid of live) { killGroup(pgid); }
  live.clear();
  try { fs.rmSync(tmpRoot, { recursive: true, force: true }); } catch { /* best effort */ }
}
process.on("exit", cleanupSync);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => { cleanupSync(); process.exit(130); });
}

// --- The servers --------------------------------------------------------------

const builds = new Map();
/** build compiles a Go main package once per test file and returns the binary. */
export function build(pkg, name) {
  if (!builds.has(pkg)) {
    const out = path.join(tmpDir("bin"), name);
    builds.set(pkg, promisify(execFile)("go", ["build", "-o", out, pkg], {
      cwd: repoRoot, timeout: 240_000, maxBuffer: 16 * MiB,
    }).then(() => out));
  }
  return builds.get(pkg);
}

export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** cleanEnv is this process's environment without FLOWGATE_* and AWS_* settings. */
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(FLOWGATE|AWS)_/.test(k)));
}

/**
 * spawnService runs bin (under `timeout`, in a process group of its own) and
 * waits until http://127.0.0.1:port/healthz answers. The result has kill(signal),
 * stop() (SIGTERM) and the output lines in logs.
 */
async function spawnService({ what, bin, args = [], port, env, readyMs = 20_000 }) {
  const logs = [];
  const child = spawn("timeout", ["--signal=KILL", SERVER_LIFETIME, bin, ...args], {
    cwd: repoRoot,
    detached: true, // its own process group: killing -pgid takes `timeout` and the server
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...cleanEnv(), ...env },
  });
  live.add(child.pid);
  let exited = false;
  child.on("exit", () => { exited = true; live.delete(child.pid); });
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding("utf8");
    let rest = "";
    stream.on("data", (s) => {
      const lines = (rest + s).split("\n");
      rest = lines.pop();
      for (const l of lines) { if (l) logs.push(l); }
    });
  }
  const svc = {
    url: `http://127.0.0.1:${port}`, port, logs,
    get exited() { return exited; },
    /** kill sends signal to the server (SIGKILL: as if the machine died). */
    async kill(signal = "SIGKILL") {
      if (exited) return;
      const gone = once(child, "exit");
      killGroup(child.pid, signal);
      let timer;
      await Promise.race([gone, new Promise((resolve) => { timer = setTimeout(resolve, 15_000); })]);
      clearTimeout(timer);
      if (!exited) { killGroup(child.pid, "SIGKILL"); await gone; }
    },
    stop() { return svc.kill("SIGTERM"); },
  };
  const deadline = Date.now() + readyMs;
  for (;;) {
    if (exited) throw new Error(`${what} exited at start:\n${logs.join("\n")}`);
    try {
      const r = await fetch(`${svc.url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      await svc.kill();
      throw new Error(`${what} did not answer /healthz within ${readyMs / 1000} s:\n${logs.join("\n")}`);
    }
    await sleep(50);
  }
  return svc;
}

/**
 * startServer runs flowgate (`make run`'s server, built from ./cmd/flowgate)
 * on 127.0.0.1:port (a free one unless given) with dataDir and extra
 * FLOWGATE_* variables, and waits for /healthz.
 */
export async function startServer({ dataDir, port, env = {} } = {}) {
  const bin = await build("./cmd/flowgate", "flowgate");
  dataDir ??= tmpDir(`data-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
  port ??= await freePort();
  const svc = await spawnService({
    what: "flowgate", bin, port,
    env: {
      FLOWGATE_ADDR: `127.0.0.1:${port}`,
      FLOWGATE_DATA_DIR: dataDir,
      FLOWGATE_WEB_DIR: webDir,
      FLOWGATE_LOG_LEVEL: "info",
      ...env,
    },
  });
  return Object.assign(svc, {
    dataDir, env,
    /** restart kills the server (SIGKILL) and starts it again on the same port and data. */
    async restart() {
      await svc.kill("SIGKILL");
      return startServer({ dataDir, port, env });
    },
  });
}

/**
 * startDevServer runs `make dev`'s server (flowgate-dev: the functions'
 * bootstraps under the Lambda emulator, several upload instances behind an
 * emulated API Gateway, S3 on MinIO, DynamoDB on dynalite behind the
 * emulated stream and TTL) on free ports, and returns it with what is needed to read the
 * finished objects back: s3 { endpoint, bucket, accessKey, secretKey, ca }.
 * MinIO is built on first use (about 4 minutes; `make deps` does it ahead).
 */
export async function startDevServer(env = {}) {
  const bin = await build("./internal/devstack/cmd/flowgate-dev", "flowgate-dev");
  const [port, minio, dynalite, dynamodb, door] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const svc = await spawnService({
    what: "flowgate-dev", bin, port, readyMs: 360_000,
    env: {
      FLOWGATE_ADDR: `127.0.0.1:${port}`,
      FLOWGATE_MINIO_ADDR: `127.0.0.1:${minio}`,
      FLOWGATE_DYNALITE_ADDR: `127.0.0.1:${dynalite}`,
      FLOWGATE_DEV_DYNAMODB_ADDR: `127.0.0.1:${dynamodb}`,
      FLOWGATE_DEV_S3_DOOR_ADDR: `127.0.0.1:${door}`,
      FLOWGATE_WEB_DIR: webDir,
      ...env,
    },
  });
  svc.door = `http://127.0.0.1:${door}`;
  const out = svc.logs.join("\n");
  const s3 = /S3 \(MinIO\)\s+(\S+)\s+bucket (\S+)\s+access key (\S+)\s+secret key (\S+)/.exec(out);
  const ca = /CA bundle\s+(\S+)/.exec(out);
  if (!s3 || !ca) {
    await svc.stop();
    throw new Error(`flowgate-dev did not print its S3 endpoint and CA bundle:\n${out}`);
  }
  svc.s3 = { endpoint: s3[1], bucket: s3[2], accessKey: s3[3], secretKey: s3[4], ca: fs.readFileSync(ca[1]) };
  return svc;
}

/**
 * s3Sha256 reads s3://bucket/key from MinIO (a GET signed with AWS
 * Signature Version 4) and returns the sha256 of its bytes.
 */
export async function s3Sha256(s3, location) {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(location ?? "");
  if (!m) throw new Error(`not an s3:// location: ${location}`);
  const [, bucket, key] = m;
  const enc = (seg) => encodeURIComponent(seg).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  const url = new URL(`${s3.endpoint}/${enc(bucket)}/${key.split("/").map(enc).join("/")}`);
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, "");
  const day = amzDate.slice(0, 8);
  const region = "us-east-1";
  const payload = "UNSIGNED-PAYLOAD";
  const signed = "host;x-amz-content-sha256;x-amz-date";
  const canonical = ["GET", url.pathname, "", `host:${url.host}`, `x-amz-content-sha256:${payload}`, `x-amz-date:${amzDate}`, "", signed, payload].join("\n");
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, createHash("sha256").update(canonical).digest("hex")].join("\n");
  const hmac = (k, v) => createHmac("sha256", k).update(v).digest();
  const key4 = hmac(hmac(hmac(hmac(`AWS4${s3.secretKey}`, day), region), "s3"), "aws4_request");
  const signature = createHmac("sha256", key4).update(toSign).digest("hex");
  const res = await new Promise((resolve, reject) => {
    const req = https.get(url, {
      ca: s3.ca, timeout: 30_000,
      headers: {
        "x-amz-date": amzDate, "x-amz-content-sha256": payload,
        authorization: `AWS4-HMAC-SHA256 Credential=${s3.accessKey}/${scope}, SignedHeaders=${signed}, Signature=${signature}`,
      },
    }, resolve);
    req.on("timeout", () => req.destroy(new Error("S3 GET timed out")));
    req.on("error", reject);
  });
  const hash = createHash("sha256");
  let body = "";
  for await (const buf of res) { if (res.statusCode === 200) hash.update(buf); else body += buf; }
  if (res.statusCode !== 200) throw new Error(`S3 GET ${location}: ${res.statusCode} ${body.slice(0, 300)}`);
  return hash.digest("hex");
}

// --- Status endpoint ----------------------------------------------------------

/** flowFields are the fields that name an upload, as flow.js sends them. */
export function flowFields({ identifier, name, size, chunkSize, forceChunkSize }) {
  const round = forceChunkSize ? Math.ceil : Math.floor;
  return {
    flowIdentifier: identifier,
    flowFilename: name,
    flowTotalSize: String(size),
    flowChunkSize: String(chunkSize),
    flowTotalChunks: String(Math.max(round(size / chunkSize), 1)),
  };
}

/**
 * resumableFields are the same fields as Resumable.js names them, after its
 * parameterNamespace option (prefix).
 */
export function resumableFields(file, prefix = "") {
  return Object.fromEntries(Object.entries(flowFields(file)).map(([k, v]) => [prefix + k.replace(/^flow/, "resumable"), v]));
}

export async function status(server, fields) {
  const r = await fetch(`${server.url}/upload/status?${new URLSearchParams(fields)}`, { signal: AbortSignal.timeout(5000) });
  if (!r.ok) throw new Error(`status: ${r.status} ${await r.text()}`);
  return r.json();
}

/** waitComplete polls the status until complete (or failed: an error). */
export async function waitComplete(server, fields, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let st;
  for (;;) {
    st = await status(server, fields);
    if (st.state === "complete") return st;
    if (st.state === "failed") throw new Error(`upload failed on the server: ${st.error}`);
    if (Date.now() > deadline) throw new Error(`upload not complete after ${timeoutMs} ms: ${JSON.stringify(st)}`);
    await sleep(100);
  }
}

/**
 * finishedSha256 is the sha256 of a finished file, read where the status
 * location says: under the data directory for flowgate, or from MinIO for
 * the dev server (s3://bucket/key). Its last path element must be name.
 */
export async function finishedSha256(server, location, name) {
  if (path.posix.basename(location ?? "") !== name) throw new Error(`location ${location} does not end in ${name}`);
  return server.s3 ? s3Sha256(server.s3, location) : sha256File(finishedPath(server, location));
}

/** finishedPath is where a complete upload's file is, from its status location. */
export function finishedPath(server, location) {
  if (!location || path.isAbsolute(location) || location.split("/").includes("..")) {
    throw new Error(`unexpected location ${JSON.stringify(location)}`);
  }
  return path.join(server.dataDir, ...location.split("/"));
}

// --- Files --------------------------------------------------------------------

/**
 * makeFile writes size random bytes to dir/rel (creating folders) and returns
 * { path, name, rel, size, sha256 }.
 */
export function makeFile(dir, rel, size) {
  const p = path.join(dir, ...rel.split("/"));
  fs.mkdirSync(path.dirname(p), { recursive: true });
  const hash = createHash("sha256");
  const fd = fs.openSync(p, "w");
  try {
    for (let left = size; left > 0;) {
      const n = Math.min(left, 4 * MiB);
      const buf = randomBytes(n);
      hash.update(buf);
      fs.writeSync(fd, buf);
      left -= n;
    }
  } finally { fs.closeSync(fd); }
  return { path: p, name: path.basename(p), rel, size, sha256: hash.digest("hex") };
}

export async function sha256File(p) {
  const hash = createHash("sha256");
  for await (const buf of fs.createReadStream(p)) hash.update(buf);
  return hash.digest("hex");
}

// --- Browser ------------------------------------------------------------------

/** launchBrowser starts Debian's Chromium with a fresh temporary profile. */
export async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run scripts/ensure-chromium.sh`);
  }
  if (!fs.existsSync(flowJsPath)) {
    throw new Error(`${flowJsPath} is missing: run make web`);
  }
  if (!fs.existsSync(resumableJsPath)) {
    throw new Error(`${resumableJsPath} is missing: run npm ci`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
}

/** newPage opens a page in a fresh context (its own storage: one visitor). */
export async function newPage(browser, opts = {}) {
  const context = await browser.newContext({ viewport: { width: 900, height: 760 }, ...opts });
  context.setDefaultTimeout(30_000);
  context.setDefaultNavigationTimeout(30_000);
  const page = await context.newPage();
  page.on("pageerror", (err) => { page.errors.push(err); });
  page.errors = [];
  return page;
}

/**
 * watchUploads records the page's requests to /upload: how many POSTs and
 * GETs it sent, the chunk number and identifier of each POST (`sent`,
 * `sentIds`, read from the form or the query string, in flow.js's or
 * Resumable.js's names),
 * the status of each POST answered, and the chunk numbers the server
 * acknowledged with 200 (`acked`: those chunks are stored and counted).
 * Call it before any other page.route of /upload; those can pass requests on
 * to it with route.fallback().
 */
export async function watchUploads(page, { delayMs = 0, bodies = true } = {}) {
  const w = { posts: 0, gets: 0, sent: [], sentIds: [], acked: [], statuses: [] };
  const isUpload = (req) => new URL(req.url()).pathname === "/upload";
  // Chromium hands a request's body to the request event only while requests
  // are intercepted: intercept, hold each POST back delayMs if asked (so that
  // an upload is reliably caught halfway), and let them through unchanged.
  // bodies: false skips that (sent and sentIds stay null) where only counts
  // matter: every intercepted body also crosses the DevTools protocol.
  if (bodies || delayMs) {
    await page.route((u) => u.pathname === "/upload", async (route) => {
      if (delayMs && route.request().method() === "POST") await sleep(delayMs);
      try { await route.continue(); } catch { /* the page aborted it, navigated away or closed */ }
    });
  }
  page.on("request", (req) => {
    if (!isUpload(req)) return;
    if (req.method() === "GET") w.gets++;
    if (req.method() !== "POST") return;
    w.posts++;
    const head = req.postDataBuffer()?.subarray(0, 2048).toString("latin1") ?? "";
    const query = new URL(req.url()).searchParams;
    const one = (name) => new RegExp(`name="${name}"\r\n\r\n([^\r]*)\r\n`).exec(head)?.[1] ?? query.get(name);
    const field = (name) => one(`flow${name}`) ?? one(`resumable${name}`);
    w.sent.push(Number(field("ChunkNumber")) || null);
    w.sentIds.push(field("Identifier"));
  });
  page.on("requestfinished", async (req) => {
    if (!isUpload(req) || req.method() !== "POST") return;
    try {
      const res = await req.response();
      w.statuses.push(res.status());
      if (res.status() === 200) w.acked.push((await res.json()).chunk);
    } catch { /* the page went away */ }
  });
  return w;
}

/**
 * throttlePosts delays every chunk POST by ms before it leaves the browser,
 * so that an upload is reliably caught halfway (watchUploads's delayMs does
 * the same for a watched page).
 */
export async function throttlePosts(page, ms) {
  await page.route((u) => u.pathname === "/upload", async (route) => {
    if (route.request().method() === "POST") await sleep(ms);
    try { await route.continue(); } catch { /* the page navigated away or closed */ }
  });
}

export function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

/** until polls fn until it returns a truthy value, or throws after timeoutMs. */
export async function until(what, fn, timeoutMs = 20_000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** screenshotDir is where screenshots go: $SCREENSHOT_DIR (e.g. docs), or nowhere. */
export function screenshotPath(name) {
  const dir = process.env.SCREENSHOT_DIR;
  if (!dir) return null;
  const abs = path.resolve(repoRoot, dir);
  fs.mkdirSync(abs, { recursive: true });
  return path.join(abs, name);
}

// --- The upload page (web/) ---------------------------------------------------

/** pageFiles lists the page's files: what flow.js knows and what each row shows. */
export function pageFiles(page) {
  return page.evaluate(() => Object.values(window.flowgatePage.entries).map((e) => ({
    rel: e.file.relativePath,
    name: e.file.name,
    size: e.file.size,
    identifier: e.file.uniqueIdentifier,
    chunkSize: e.file.chunkSize,
    state: e.li.getAttribute("data-state"),
    location: e.li.getAttribute("data-location"),
    shownName: e.li.querySelector(".name").textContent,
    text: e.li.querySelector(".status").textContent,
  })));
}

/** waitFinished waits until n files on the page are complete or failed. */
export async function waitFinished(page, n, timeoutMs = 60_000) {
  await page.waitForFunction((count) => {
    const rows = document.querySelectorAll("#files li.file");
    const done = document.querySelectorAll('#files li.file[data-state="complete"], #files li.file[data-state="failed"]');
    return rows.length === count && done.length === count;
  }, n, { timeout: timeoutMs, polling: 100 });
  return pageFiles(page);
}

/**
 * checkUploaded asserts that each source file is complete on the page and on
 * the server, at the location the page shows, with the same sha256.
 */
export async function checkUploaded(assert, server, page, sources, { chunkSize } = {}) {
  const rows = await pageFiles(page);
  for (const f of sources) {
    const row = rows.find((r) => r.rel === f.rel);
    assert.ok(row, `the page lists ${f.rel}`);
    assert.equal(row.state, "complete", `${f.rel}: ${row.text}`);
    if (chunkSize) assert.equal(row.chunkSize, chunkSize, `${f.rel}: chunk size`);
    const st = await waitComplete(server, flowFields({ ...row, forceChunkSize: true }));
    assert.equal(row.location, st.location, `${f.rel}: the page shows the server's location`);
    assert.equal(await finishedSha256(server, st.location, f.name), f.sha256, `${f.rel}: sha256 of the finished file`);
  }
  return rows;
}
