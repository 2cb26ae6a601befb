// The same uploads against `make dev`: the AWS code path (the upload Lambda's
// handler behind an emulated API Gateway REST proxy with its 6 MB limit and
// base64 bodies, chunks in S3 on MinIO, the ledger in DynamoDB on dynalite,
// the stream-driven assembler building the object with a multipart upload).
// Each finished object is read back from MinIO and its sha256 compared.
// Resumable.js 1.1.0 with its defaults goes the same way.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as h from "./helpers.mjs";
import { withDefaults, withPage, withResumable } from "./scenarios.mjs";

let server, browser;
before(async () => {
  // localaws builds MinIO on first use (about 4 minutes); `make deps` does it ahead.
  [server, browser] = await Promise.all([h.startDevServer(), h.launchBrowser()]);
}, { timeout: 400_000 });
after(async () => {
  await browser?.close();
  await server?.stop(); // SIGTERM: localaws stops MinIO and dynalite and removes their data
});

test("make dev, the page's options: the edge sizes, 50 MiB and a folder arrive intact in S3", { timeout: 150_000 }, async () => {
  await withPage(browser, server);
});

test("make dev, flow.js defaults (cross-origin): the edge sizes, 50 MiB and a folder arrive intact in S3", { timeout: 150_000 }, async () => {
  await withDefaults(browser, server);
  assert.ok(server.s3.endpoint.startsWith("https://127.0.0.1:"));
});

test("make dev, Resumable.js defaults (cross-origin): the edge sizes, 50 MiB and a folder arrive intact in S3", { timeout: 150_000 }, async () => {
  await withResumable(browser, server, { label: "dev-resumable" });
});

test("make dev, Resumable.js octet with a parameterNamespace: the edge sizes and a folder arrive intact in S3", { timeout: 150_000 }, async () => {
  await withResumable(browser, server, { label: "dev-resumable-octet", opts: { method: "octet", parameterNamespace: "up_", minFileSize: 0 }, big: false });
});
