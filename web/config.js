// Settings of the upload page. This is the only file to edit when the page is
// copied to a static host (S3/CloudFront, GitHub Pages, Netlify, ...).
window.FLOWGATE_CONFIG = {
  // Where the upload API lives. For the AWS deployment, paste the ApiUrl
  // output of `sam deploy` (https://....execute-api....amazonaws.com/v1/upload).
  // The default is the API of the server that serves this page (`make run`,
  // `make dev`). Opening the page with ?api=https://.../upload overrides it
  // without editing anything.
  apiUrl: "/upload",

  // Whether ?api= may override apiUrl. Handy to try the page against another
  // deployment; on a public site set it to false, so that a link cannot send
  // your visitors' files somewhere else.
  allowApiParam: true,

  // Bytes per request. API Gateway + Lambda refuse a request over 6 MB, and
  // the body reaches Lambda base64-encoded (4/3 larger), so a chunk must stay
  // under about 4.5 MiB: 4 MiB leaves room for the multipart framing. The page
  // also sets flow.js's forceChunkSize, so no chunk is ever larger than this
  // (flow.js's default lets the last chunk grow to twice chunkSize).
  // ?chunkSize=<bytes> overrides it (up to 4 MiB), e.g. to watch a small file
  // go up in many pieces.
  chunkSize: 4 * 1024 * 1024,

  // Bytes per chunk when the server's data path is direct (chunks go
  // straight into the bucket, not through API Gateway): any size S3 takes
  // in one PUT, at least 5 MiB; empty uses the server's suggestion (8 MiB).
  // Larger chunks mean fewer requests, which is what direct uploads cost.
  directChunkSize: 0,

  // Extra request headers, e.g. { Authorization: "Bearer ..." } when the API
  // checks a token, or a function returning them (called for every request,
  // so it can hand out a fresh token). Sent with every chunk and status request.
  headers: {},
};
