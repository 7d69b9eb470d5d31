// Test harness for stackgen's login shield (stackgen/generate/blueprints/node-red/shield.js): loads it with a
// fake clock, a captured log and fake requests/responses, runs a scenario given as JSON on argv[3], and prints
// one JSON document: every step's outcome and the log lines. Used by tests/unit/generate/test_login_shield_js.py.
"use strict";
const { EventEmitter } = require("events");

const createShield = require(process.argv[2]);
const scenario = JSON.parse(process.argv[3]);
let clock = 1700000000000;
const lines = [];
const shield = createShield(scenario.options, {
    now: () => clock,
    log: (line) => lines.push(JSON.parse(line)),
});
// The password check of basicAuth: "right" is the only right password.
const basic = shield.basicAuth(scenario.user || "user", "HASH", (password, hash) => hash === "HASH" && password === "right");

function response() {
    const res = new EventEmitter();
    res.statusCode = 200;
    res.headers = {};
    res.body = null;
    res.setHeader = (name, value) => { res.headers[name.toLowerCase()] = value; };
    res.end = (body) => { res.body = body === undefined ? null : String(body); res.emit("finish"); };
    return res;
}

const results = [];
const deferred = [];
for (const step of scenario.steps) {
    if (step.release) {
        // Node-RED answers the attempts still being checked (sent in parallel).
        deferred.splice(0).forEach((finish) => finish());
        results.push({ released: true });
        continue;
    }
    if (step.advance) {
        clock += step.advance * 1000;
        results.push({ advanced: step.advance });
        continue;
    }
    const headers = Object.assign({}, step.headers || {});
    if (step.basic) {
        headers.authorization = "Basic " + Buffer.from(step.basic).toString("base64");
    }
    const req = {
        method: step.method || "POST",
        url: step.url || "/auth/token",
        originalUrl: step.url || "/auth/token",
        headers: headers,
        socket: { remoteAddress: step.peer || "172.18.0.5" },
    };
    const res = response();
    let reached = false;
    const upstream = () => {
        reached = true;
        // Node-RED's answer: the status the step says (a login's outcome), written after the shield let it pass.
        const finish = () => {
            res.statusCode = step.status || 200;
            res.end("{}");
        };
        if (step.defer) {
            deferred.push(finish);
        } else {
            finish();
        }
    };
    if (step.surface === "http-node") {
        shield.httpNode(req, res, () => basic(req, res, upstream));
    } else {
        shield.admin(req, res, upstream);
    }
    results.push({ status: res.statusCode, reached: reached, retry_after: res.headers["retry-after"] || null, body: res.body });
}
const keys = {};
for (const value of scenario.keys || []) {
    keys[value] = createShield.clientKey(value);
}
process.stdout.write(JSON.stringify({ results: results, log: lines, table: shield.table.size, keys: keys }));
