// HEALTHCHECK of the stackgen node-red twin (/healthcheck.js): our own equivalent of
// node-red/node-red-docker's docker-custom/healthcheck.js. It loads /data/settings.js (so it
// fails when that file is missing), asks the editor on 127.0.0.1:<uiPort, default 1880> over
// HTTPS when settings.https is set (without verifying the certificate) else HTTP, and exits 0
// for a status 200-499, 1 for anything else, an error or no answer within 4 s.
const http = require("http");
const https = require("https");
const settings = require("/data/settings.js");

const useTls = Object.prototype.hasOwnProperty.call(settings, "https");
if (useTls) {
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
}
const client = useTls ? https : http;
const request = client.request(
    { host: "127.0.0.1", port: settings.uiPort || 1880, timeout: 4000 },
    (response) => process.exit(response.statusCode >= 200 && response.statusCode < 500 ? 0 : 1),
);
request.on("timeout", () => request.destroy(new Error("timeout")));
request.on("error", () => process.exit(1));
request.end();
