// The SDK against a real `pushd standalone` (started here; binary from $PUSHD_BIN).
// Run: cargo test -p pushd --test js_sdk (it builds pushd and passes PUSHD_BIN).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { connect } from "../dist/pushcluster.js";
import { Server, eventually, record, token } from "./harness.mjs";

let server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server?.stop();
});

test("a live message arrives, is acked, and the state goes connecting → connected", async () => {
  const client = connect(server.ws, { token: token("ann") });
  const rec = record(client);
  const connected = await rec.waitState("connected");
  assert.deepEqual([connected.user, connected.node], ["ann", "local"]);
  assert.deepEqual(rec.states, ["connecting", "connected"]);
  const id = await server.send(["ann"], { hello: "world" });
  const [m] = await rec.waitMessages(1);
  assert.deepEqual(m, { id, seq: 1, payload: { hello: "world" } });
  assert.equal(client.lastSeq, 1);
  await eventually(async () => (await server.stateOf(id, "ann")) === "acked", 15000, "acked");
  client.close();
  assert.equal(client.state, "closed");
  assert.equal(rec.states.at(-1), "closed");
});

test("offline messages arrive on connect, in order; autoAck: false leaves them to client.ack", async () => {
  const ids = [];
  for (let i = 1; i <= 3; i++) ids.push(await server.send(["bea"], i));
  const client = connect(server.ws, { token: token("bea"), autoAck: false });
  const rec = record(client);
  const got = await rec.waitMessages(3);
  assert.deepEqual(got.map((m) => m.id), ids);
  assert.deepEqual(got.map((m) => m.payload), [1, 2, 3]);
  await eventually(async () => (await server.stateOf(ids[0], "bea")) === "delivered", 15000, "delivered");
  client.ack(ids[0]);
  await eventually(async () => (await server.stateOf(ids[0], "bea")) === "acked", 15000, "acked");
  assert.equal(await server.stateOf(ids[1], "bea"), "delivered");
  client.close();
});

test("after kill -9 and a restart the client reconnects by itself, resumes, and sees each message once", async () => {
  const client = connect(server.ws, { token: token("cid"), baseDelayMs: 100, maxDelayMs: 1000 });
  const rec = record(client);
  await rec.waitState("connected");
  const first = await server.send(["cid"], "before");
  await rec.waitMessages(1);
  await eventually(async () => (await server.stateOf(first, "cid")) === "acked", 15000, "acked");
  const mark = rec.stateEvents.length;

  await server.kill9();
  const waiting = await rec.waitState("waiting", mark);
  assert.equal(waiting.code, 1006);
  await server.restart();
  const during = await server.send(["cid"], "while away");
  await rec.waitState("connected", mark);
  const got = await rec.waitMessages(2);
  assert.deepEqual(got.map((m) => m.payload), ["before", "while away"]);
  assert.equal(got[1].id, during);
  const after = await server.send(["cid"], "after");
  await rec.waitMessages(3);
  assert.equal(rec.messages[2].id, after);
  assert.equal(client.lastSeq, rec.messages[2].seq);
  assert.equal(new Set(rec.messages.map((m) => m.id)).size, 3, "no duplicates");
  client.close();
});

test("1001 going away (SIGTERM drain) reconnects at once, then backs off until the node is back", async () => {
  const client = connect(server.ws, { token: token("dan"), baseDelayMs: 100, maxDelayMs: 500 });
  const rec = record(client);
  await rec.waitState("connected");
  const mark = rec.stateEvents.length;
  await server.sigterm();
  const away = await rec.waitState("waiting", mark);
  assert.equal(away.code, 1001);
  assert.equal(away.reason, "going away, reconnect");
  assert.equal(away.delayMs, 0, "1001 reconnects at once");
  // The drained node is gone: the immediate attempt fails and the client backs off with jitter.
  await eventually(() => rec.stateEvents.slice(mark).filter((s) => s.state === "waiting").length >= 2, 15000, "a second wait");
  const backoff = rec.stateEvents.slice(mark).filter((s) => s.state === "waiting")[1];
  assert.equal(backoff.reason, "connect failed");
  assert.ok(backoff.delayMs >= 0 && backoff.delayMs < 200, `full jitter in [0, 200): ${backoff.delayMs}`);
  await server.restart();
  await rec.waitState("connected", mark + 1);
  client.close();
});

test("getToken: called when there is no token, again after a refused connect (401), and for a token near expiry", async () => {
  // 1. The first token is signed with the wrong secret: the server answers 401 before the
  //    upgrade, which the client only sees as a failed connect, so it asks for a new token.
  const given = [token("eve", 3600, "wrong-secret-0123456789"), token("eve")];
  let calls = 0;
  const client = connect(server.ws, { getToken: async () => given[calls++], baseDelayMs: 50 });
  const rec = record(client);
  await rec.waitState("connected");
  assert.equal(calls, 2);
  assert.equal(rec.stateEvents.find((s) => s.state === "waiting").reason, "connect failed");
  client.close();

  // 2. A token that expires within the refresh margin is replaced before connecting.
  let refreshed = 0;
  const soon = connect(server.ws, {
    token: token("eve", 10),
    refreshMarginSecs: 30,
    getToken: () => {
      refreshed++;
      return token("eve");
    },
  });
  const rec2 = record(soon);
  await rec2.waitState("connected");
  assert.equal(refreshed, 1);
  assert.deepEqual(rec2.states, ["connecting", "connected"]);
  soon.close();
});

test("an expired token without getToken stops the client and says why", async () => {
  const client = connect(server.ws, { token: token("fay", -60) });
  const rec = record(client);
  const stopped = await rec.waitState("stopped");
  assert.match(stopped.reason, /token expired/);
  assert.equal(client.state, "stopped");
});

test("connect refuses to start without a WebSocket or a token", () => {
  assert.throws(() => connect(server.ws, {}), /token or options.getToken/);
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = undefined;
  try {
    assert.throws(() => connect(server.ws, { token: "t" }), /no WebSocket: pass options.WebSocket/);
  } finally {
    globalThis.WebSocket = saved;
  }
});

test("options.WebSocket is used instead of the global one (Node 20, the ws package)", async () => {
  const urls = [];
  class Counting extends globalThis.WebSocket {
    constructor(url) {
      super(url);
      urls.push(url);
    }
  }
  const client = connect(server.http + "/ws", { token: token("gus"), WebSocket: Counting, lastSeq: 7 });
  await record(client).waitState("connected");
  assert.equal(urls.length, 1);
  const u = new URL(urls[0]);
  assert.equal(u.protocol, "ws:", "http: is turned into ws:");
  assert.equal(u.searchParams.get("last_seq"), "7");
  client.close();
});
