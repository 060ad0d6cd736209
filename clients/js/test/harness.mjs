// Test harness: a real `pushd standalone` (the binary in $PUSHD_BIN, built by cargo), tokens,
// and the HTTP API. Used by the SDK's tests and the demo page's browser test.

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";

export const SECRET = "test-jwt-secret-0123456789";
export const API_KEY = "test-api-key-0123456789";

/** An HS256 client token for `user`, expiring in `ttlSecs` (negative: already expired). */
export function token(user, ttlSecs = 3600, secret = SECRET) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: user, exp: Math.floor(Date.now() / 1000) + ttlSecs })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/** Polls `check` until it returns a truthy value (then returns it), up to `ms`. */
export async function eventually(check, ms = 15000, what = "condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await sleep(20);
  }
}

/** A running `pushd standalone` on a temp data dir; restartable on the same port. */
export class Server {
  static async start(args = []) {
    const bin = process.env.PUSHD_BIN;
    if (!bin) throw new Error("PUSHD_BIN is not set: run these tests through `cargo test -p pushd --test js_sdk`");
    const s = new Server(bin, mkdtempSync(join(tmpdir(), "pushd-js-")), args);
    await s.spawn("127.0.0.1:0");
    return s;
  }

  constructor(bin, dataDir, args) {
    this.bin = bin;
    this.dataDir = dataDir;
    this.args = args;
    this.proc = undefined;
    this.addr = undefined;
  }

  get http() {
    return `http://${this.addr}`;
  }

  get ws() {
    return `ws://${this.addr}/ws`;
  }

  async spawn(listen) {
    const proc = spawn(this.bin, ["standalone", "--listen", listen, "--data-dir", this.dataDir, ...this.args], {
      env: { ...process.env, PUSHD_JWT_SECRET: SECRET, PUSHD_API_KEY: API_KEY, RUST_LOG: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    this.proc = proc;
    const exited = new Promise((_, reject) => proc.once("exit", (code) => reject(new Error(`pushd exited (${code}) before listening`))));
    const lines = createInterface({ input: proc.stdout });
    const first = await Promise.race([
      new Promise((resolve) => lines.once("line", resolve)),
      exited,
      sleep(15000).then(() => Promise.reject(new Error("pushd did not start within 15 s"))),
    ]);
    const m = /^pushd listening on http:\/\/(.+)$/.exec(first);
    if (!m) throw new Error(`unexpected first line from pushd: ${first}`);
    this.addr = m[1];
  }

  /** SIGKILL, as a crash: no close frames, no drain. */
  async kill9() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await gone;
  }

  /** SIGTERM: the server drains (clients get 1001 "going away, reconnect") and exits. */
  async sigterm() {
    const proc = this.proc;
    const gone = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGTERM");
    await gone;
  }

  /** Starts again on the same port and data dir (the port may linger for a moment). */
  async restart() {
    let last;
    for (let i = 0; i < 50; i++) {
      try {
        return await this.spawn(this.addr);
      } catch (e) {
        last = e;
        await sleep(100);
      }
    }
    throw last;
  }

  async stop() {
    await this.kill9();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  async request(method, path, body) {
    const res = await fetch(this.http + path, {
      method,
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, body: json };
  }

  /** Posts a message; returns its id. */
  async send(to, payload) {
    const r = await this.request("POST", "/v1/messages", { to, payload });
    if (r.status !== 202) throw new Error(`POST /v1/messages: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.id;
  }

  /** The state of `user` for message `id` (pending, delivered, acked, expired). */
  async stateOf(id, user) {
    const r = await this.request("GET", `/v1/messages/${id}`);
    return r.body.recipients.find((x) => x.user === user).state;
  }
}

/** Records a client's events: `states` (names), `messages`, `errors`; `next*` wait for more. */
export function record(client) {
  const rec = { states: [], stateEvents: [], messages: [], errors: [] };
  client.on("state", (s) => {
    rec.states.push(s.state);
    rec.stateEvents.push(s);
  });
  client.on("message", (m) => rec.messages.push(m));
  client.on("error", (e) => rec.errors.push(e));
  rec.waitState = (name, after = 0) =>
    eventually(() => rec.stateEvents.slice(after).find((s) => s.state === name), 15000, `state ${name}`);
  rec.waitMessages = (n) => eventually(() => rec.messages.length >= n && rec.messages, 15000, `${n} messages`);
  return rec;
}
