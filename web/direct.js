// The direct data path for flow.js 2.14.1, unchanged: each chunk goes straight
// into the bucket with a URL the API signed for it, not through the API. The
// page uses this when the API says its data path is "direct" (GET
// /upload/config); everything else (the test GET, the status, resuming) stays
// with the API.
//
// How flow.js's own options do it:
//   preprocess   runs before a chunk is tested and sent: the chunk's CRC-64/NVME
//                (crc64nvme.js) and its URL are fetched here, a batch of chunks
//                at a time (one POST /upload/urls for the next BATCH chunks);
//                a chunk of a new upload that the answer says is not there is not
//                tested (flow.js's chunk.tested), one that is there, or any of an
//                upload resumed, is (the test GET answers 200 for a chunk stored);
//   target       the API for the test GET, the chunk's URL for the chunk itself;
//   method octet, uploadMethod PUT: the body is the chunk, and flow.js appends its
//                fields to the URL's query, which the URL has signed in;
//   headers      the URL's own (If-None-Match: *, the checksum) for the PUT, and
//                never the API's Authorization (S3 refuses a request with two);
//   query        nothing: a field more would break the URL's signature;
//   successStatuses  412 too: If-None-Match found the chunk already there;
//   permanentErrors  not 400 (S3's answer to bytes damaged on the way: send
//                again), 403 (a URL that ran out: a fresh one is fetched before
//                the retry, see retried) or 500 (S3 says: retry).
// A URL request that fails for good fails the file (flow.js's fileError, with
// chunk.flowgateStatus set to the API's status).
//
// flowgateDirect(settings) returns {options, retried}: the options to give
// Flow, and what to call from its fileRetry event.
(function (root) {
  "use strict";

  var BATCH = 16;          // chunks per URL request
  var FRESH_FOR = 60000;   // a URL with less life than this left is fetched again (ms)

  function flowgateDirect(s) {
    // s: api (the upload API's URL), headers (object, or function of the file),
    // chunkSize, maxRetries, retryDelay(attempt) in ms, crc (flowgateCRC64NVME).
    var apiHeaders = function (file) { return typeof s.headers === "function" ? s.headers(file) : (s.headers || {}); };

    function state(file) {
      return file.flowgateDirect || (file.flowgateDirect = { urls: {}, crcs: {}, pending: {} });
    }

    function live(u) { return u && u.expires - Date.now() > FRESH_FOR; }

    function chunkOf(file, n) { return file.chunks[n - 1]; }

    function readBlob(blob) {
      if (blob.arrayBuffer) { return blob.arrayBuffer(); }
      return new Promise(function (resolve, reject) {
        var r = new FileReader();
        r.onload = function () { resolve(r.result); };
        r.onerror = function () { reject(r.error); };
        r.readAsArrayBuffer(blob);
      });
    }

    // crcOf is chunk n's CRC-64/NVME, computed once per file.
    function crcOf(file, n) {
      var st = state(file);
      if (st.crcs[n]) { return Promise.resolve(st.crcs[n]); }
      var c = chunkOf(file, n);
      return readBlob(file.file.slice(c.startByte, c.endByte)).then(function (bytes) {
        st.crcs[n] = s.crc(bytes);
        return st.crcs[n];
      });
    }

    // fetchURLs asks for the URLs of chunks, one after the other's checksum.
    function fetchURLs(file, chunks) {
      var st = state(file);
      var crcs = [];
      var next = Promise.resolve();
      chunks.forEach(function (n) {
        next = next.then(function () { return crcOf(file, n); }).then(function (crc) { crcs.push(crc); });
      });
      return next.then(function () {
        var first = chunkOf(file, chunks[0]).getParams();
        var shared = {};
        Object.keys(first).forEach(function (k) {
          if (k !== "flowChunkNumber" && k !== "flowCurrentChunkSize") { shared[k] = String(first[k]); }
        });
        var body = {
          fields: shared, contentType: file.file.type || "",
          chunks: chunks.map(function (n, i) {
            var p = chunkOf(file, n).getParams();
            return { flowChunkNumber: String(p.flowChunkNumber), flowCurrentChunkSize: String(p.flowCurrentChunkSize), checksumCrc64nvme: crcs[i] };
          }),
        };
        return post(file, body, 0);
      }).then(function (answer) {
        var expires = Date.parse(answer.expires || "") || 0;
        // The first answer of this page says whether the upload was under
        // way before: then every chunk is tested before it is sent (one
        // stored whose notification has not been handled yet is counted by
        // its test, not sent again).
        if (st.resumed === undefined) { st.resumed = !!answer.resumed; }
        (answer.chunks || []).forEach(function (a) {
          st.urls[a.chunk] = { url: a.url, method: a.method || "PUT", headers: a.headers || {}, present: !!a.present, expires: a.present ? Infinity : expires };
        });
      });
    }

    // post sends a URL request, retried as a chunk would be.
    function post(file, body, attempt) {
      var headers = Object.assign({ "Content-Type": "application/json" }, apiHeaders(file));
      return fetch(urlsEndpoint(), { method: "POST", headers: headers, body: JSON.stringify(body), cache: "no-store" })
        .then(function (r) {
          return r.text().then(function (text) {
            if (r.ok) { return JSON.parse(text); }
            throw { status: r.status, text: text };
          });
        }, function (e) { throw { status: 0, text: String(e) }; })
        .catch(function (err) {
          var transient = err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500;
          if (!transient || attempt >= s.maxRetries) { throw err; }
          return new Promise(function (resolve) { setTimeout(resolve, s.retryDelay(attempt)); })
            .then(function () { return post(file, body, attempt + 1); });
        });
    }

    function urlsEndpoint() {
      var u = new URL(s.api, location.href);
      u.pathname = u.pathname.replace(/\/$/, "") + "/urls";
      return u.href;
    }

    // preprocess gives chunk its URL (flow.js calls it before testing and
    // sending the chunk, and waits for preprocessFinished).
    function preprocess(chunk) {
      var file = chunk.fileObj, n = chunk.offset + 1, st = state(file);
      var ready = function () {
        var u = st.urls[n];
        chunk.flowgateURL = u;
        // A new upload's chunk that is not there: no test GET needed
        // (If-None-Match covers one stored since). There, or maybe there
        // (resuming): the test GET says so, and nothing is sent.
        if (u && !u.present && !st.resumed) { chunk.tested = true; }
        chunk.preprocessFinished();
      };
      if (live(st.urls[n])) { ready(); return; }
      var p = st.pending[n];
      if (!p) {
        var list = [];
        for (var k = n; k <= file.chunks.length && list.length < BATCH; k++) {
          if (!live(st.urls[k]) && !st.pending[k]) { list.push(k); }
        }
        p = fetchURLs(file, list);
        list.forEach(function (k) { st.pending[k] = p; });
        var done = function () { list.forEach(function (k) { if (st.pending[k] === p) { delete st.pending[k]; } }); };
        p.then(done, done);
      }
      p.then(function () {
        if (file.chunks.indexOf(chunk) < 0) { return; } // the file started again meanwhile
        if (!st.urls[n]) { throw { status: 0, text: "no URL for chunk " + n + " in the server's answer" }; }
        ready();
      }).catch(function (err) {
        if (file.chunks.indexOf(chunk) < 0 || file.error) { return; }
        chunk.flowgateStatus = err.status || 0;
        file.chunkEvent(chunk, "error", err.text || "");
      });
    }

    return {
      options: {
        target: function (file, chunk, isTest) {
          return isTest || !chunk.flowgateURL ? s.api : chunk.flowgateURL.url;
        },
        headers: function (file, chunk, isTest) {
          return isTest || !chunk.flowgateURL ? apiHeaders(file) : chunk.flowgateURL.headers;
        },
        query: function () { return {}; },
        method: "octet",
        uploadMethod: function (file, chunk) { return chunk.flowgateURL ? chunk.flowgateURL.method : "PUT"; },
        testMethod: "GET",
        preprocess: preprocess,
        // A file of more than 10,000 chunks (80 GB of 8 MiB) gets larger
        // ones: S3 assembles at most 10,000 copied parts.
        chunkSize: function (file) {
          return Math.max(s.chunkSize, Math.ceil(file.size / 10000 / (1 << 20)) * (1 << 20));
        },
        forceChunkSize: true,
        withCredentials: false,
        successStatuses: [200, 201, 202, 412],
        permanentErrors: [401, 404, 409, 413, 415, 501],
      },
      // retried is called from flow.js's fileRetry event: before the chunk
      // is sent again, a URL refused (403: run out) or that met a network
      // error is fetched afresh (flow.js runs preprocess again when its
      // state is back to 0).
      retried: function (file, chunk) {
        var status = chunk.xhr ? chunk.xhr.status : 0;
        if (status === 403 || status === 0) {
          delete state(file).urls[chunk.offset + 1];
          chunk.flowgateURL = null;
          chunk.preprocessState = 0;
        }
      },
    };
  }

  root.flowgateDirect = flowgateDirect;
})(window);
