// Where the upload API lives. For a static site calling the AWS deployment,
// paste the ApiUrl output of `sam deploy` here (it ends in /upload), or open
// the page with ?api=https://.../upload. The default is this server's own API.
window.FLOWGATE_CONFIG = {
  apiUrl: "/upload",
};
