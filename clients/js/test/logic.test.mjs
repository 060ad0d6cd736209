// Unit tests of the client's pure logic, on a scripted socket: what the server cannot be made
// to do on demand (send a frame twice, close with a policy code, go silent).

import assert from "node:assert/strict";
import { test } from "node:test";

import { backoff, connect, isFatal, tokenExpiry } from "../dist/pushcluster.js";
import { eventually, record, token } from "./harness.mjs";

/** A socket the test drives: `sockets` holds every one the client opened. */
function scripted() {
  const sockets = [];
  class Fake {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    send(data) {
      this.sent.push(JSON.parse(data));
    }
    close() {
      this.readyState = 3;
    }
    // Test side:
    open(user = "u") {
      this.readyState = 1;
      this.onopen?.({});
      this.frame({ type: "welcome", user, node: "n1", ping_interval_secs: 25 });
    }
    frame(f) {
      this.onmessage?.({ data: JSON.stringify(f) });
    }
    end(code, reason = "") {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
  }
  return { sockets, Fake };
}

const nextSocket = (sockets, n) => eventually(() => sockets.length >= n && sockets[n - 1], 2000, `socket ${n}`);

/** Lets the client's ack timer (ackDelayMs: 0) fire. */
const acksSent = () => new Promise((resolve) => setTimeout(resolve, 5));

test("a burst is acked once, cumulatively; a duplicate of an acked message is acked again", async () => {
  const { sockets, Fake } = scripted();
  const client = connect("ws://x/ws", { token: "t", WebSocket: Fake, ackDelayMs: 0 });
  const rec = record(client);
  const s = await nextSocket(sockets, 1);
  s.open();
  const m = { type: "message", id: "a", seq: 4, payload: { n: 1 } };
  s.frame(m);
  s.frame(m);
  s.frame({ ...m, id: "b", seq: 5 });
  assert.deepEqual(rec.messages.map((x) => x.id), ["a", "b"]);
  await acksSent();
  assert.deepEqual(s.sent, [{ type: "ack", seq: 5 }], "one ack covers the burst");
  s.frame(m);
  await acksSent();
  assert.deepEqual(s.sent, [
    { type: "ack", seq: 5 },
    { type: "ack", seq: 5 },
  ]);
  assert.equal(client.lastSeq, 5);
  client.close();
});

test("autoAck: false acks nothing by itself, not even a duplicate, until the app acks", async () => {
  const { sockets, Fake } = scripted();
  const client = connect("ws://x/ws", { token: "t", WebSocket: Fake, autoAck: false, ackDelayMs: 0 });
  const rec = record(client);
  const s = await nextSocket(sockets, 1);
  s.open();
  const m = { type: "message", id: "a", seq: 1, payload: 0 };
  s.frame(m);
  s.frame(m);
  await acksSent();
  assert.deepEqual(s.sent, [], "still being processed: no ack");
  client.ack("a");
  await acksSent();
  s.frame(m);
  await acksSent();
  assert.deepEqual(s.sent, [
    { type: "ack", seq: 1 },
    { type: "ack", seq: 1 },
  ]);
  assert.equal(rec.messages.length, 1);
  client.close();
});

test("autoAck: false: an ack covers only what the app acked with nothing unacked before it", async () => {
  const { sockets, Fake } = scripted();
  const client = connect("ws://x/ws", { token: "t", WebSocket: Fake, autoAck: false, ackDelayMs: 0 });
  const s = await nextSocket(sockets, 1);
  s.open();
  for (const [id, seq] of [["a", 1], ["b", 2], ["c", 3]]) s.frame({ type: "message", id, seq, payload: 0 });
  client.ack("b");
  client.ack("c");
  await acksSent();
  assert.deepEqual(s.sent, [], "a (seq 1) is still being processed");
  client.ack("a");
  await acksSent();
  assert.deepEqual(s.sent, [{ type: "ack", seq: 3 }]);
  client.close();
});

test("the dedupe window forgets the oldest ids first", async () => {
  const { sockets, Fake } = scripted();
  const client = connect("ws://x/ws", { token: "t", WebSocket: Fake, dedupeWindow: 2 });
  const rec = record(client);
  const s = await nextSocket(sockets, 1);
  s.open();
  for (const [id, seq] of [["a", 1], ["b", 2], ["c", 3], ["a", 1], ["c", 3]]) s.frame({ type: "message", id, seq, payload: 0 });
  assert.deepEqual(rec.messages.map((x) => x.id), ["a", "b", "c", "a"]);
  client.close();
});

test("policy close codes stop the client; 4000 and 1013 back off; 1001 reconnects at once with last_seq", async () => {
  for (const code of [1003, 1007, 1008, 4001, 4403]) {
    const { sockets, Fake } = scripted();
    const client = connect("ws://x/ws", { token: "t", WebSocket: Fake });
    const rec = record(client);
    const s = await nextSocket(sockets, 1);
    s.open();
    s.end(code, "nope");
    assert.deepEqual(rec.stateEvents.at(-1), { state: "stopped", code, reason: "nope" });
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(sockets.length, 1, `no reconnect after ${code}`);
  }
  for (const code of [4000, 1013, 1011, 1006]) {
    const { sockets, Fake } = scripted();
    const client = connect("ws://x/ws", { token: "t", WebSocket: Fake, random: () => 0.5, baseDelayMs: 40 });
    const rec = record(client);
    (await nextSocket(sockets, 1)).open();
    sockets[0].end(code, "r");
    assert.deepEqual(rec.stateEvents.at(-1), { state: "waiting", delayMs: 20, attempt: 1, code, reason: "r" });
    await nextSocket(sockets, 2);
    client.close();
  }
  const { sockets, Fake } = scripted();
  const client = connect("ws://x/ws?app=1", { token: "t", WebSocket: Fake });
  const rec = record(client);
  const s = await nextSocket(sockets, 1);
  s.open();
  s.frame({ type: "message", id: "a", seq: 9, payload: 0 });
  s.end(1001, "going away, reconnect");
  assert.equal(rec.stateEvents.at(-1).delayMs, 0);
  const again = await nextSocket(sockets, 2);
  const u = new URL(again.url);
  assert.deepEqual([u.searchParams.get("app"), u.searchParams.get("token"), u.searchParams.get("last_seq")], ["1", "t", "9"]);
  client.close();
});

test("back-off: full jitter under a doubling ceiling, reset by a welcome", async () => {
  assert.equal(backoff(0, 500, 30000, () => 0.999999), 499);
  assert.equal(backoff(3, 500, 30000, () => 0.5), 2000);
  assert.equal(backoff(10, 500, 30000, () => 0.5), 15000, "capped at maxDelayMs");
  assert.equal(backoff(5000, 500, 30000, () => 0.5), 15000, "no overflow");
  assert.equal(backoff(2, 500, 30000, () => 0), 0);

  const { sockets, Fake } = scripted();
  const client = connect("ws://x/ws", { token: "t", WebSocket: Fake, random: () => 0.99, baseDelayMs: 10, maxDelayMs: 1000 });
  const rec = record(client);
  for (let i = 1; i <= 3; i++) (await nextSocket(sockets, i)).end(1006);
  const waits = rec.stateEvents.filter((s) => s.state === "waiting").map((s) => s.delayMs);
  assert.deepEqual(waits, [9, 19, 39]);
  (await nextSocket(sockets, 4)).open();
  sockets[3].end(1006);
  assert.equal(rec.stateEvents.at(-1).delayMs, 9, "the attempt count starts over after a welcome");
  client.close();
});

test("a failed connect makes the next attempt ask getToken again; a getToken that throws is retried", async () => {
  const { sockets, Fake } = scripted();
  let calls = 0;
  const client = connect("ws://x/ws", {
    WebSocket: Fake,
    baseDelayMs: 1,
    getToken: () => {
      calls++;
      if (calls === 2) throw new Error("auth service down");
      return `t${calls}`;
    },
  });
  const rec = record(client);
  (await nextSocket(sockets, 1)).end(1006); // refused before opening (e.g. 401)
  const s = await nextSocket(sockets, 2);
  assert.equal(calls, 3);
  assert.equal(new URL(s.url).searchParams.get("token"), "t3");
  assert.ok(rec.stateEvents.some((e) => e.reason === "getToken failed: auth service down"));
  s.open();
  s.end(1006); // dropped after opening: the token is still good, no new one
  await nextSocket(sockets, 3);
  assert.equal(calls, 3);
  client.close();
});

test("tokenExpiry reads exp; unreadable tokens have none", () => {
  const t = token("u", 100);
  const exp = tokenExpiry(t);
  assert.ok(Math.abs(exp - (Date.now() / 1000 + 100)) < 5);
  assert.equal(tokenExpiry("not-a-jwt"), undefined);
  assert.equal(tokenExpiry("a.!!!.c"), undefined);
  assert.equal(isFatal(4000), false);
  assert.equal(isFatal(4999), true);
});

test("server error frames and throwing listeners surface as error events, and delivery goes on", async () => {
  const { sockets, Fake } = scripted();
  const client = connect("ws://x/ws", { token: "t", WebSocket: Fake, ackDelayMs: 0 });
  const rec = record(client);
  client.on("message", (m) => {
    if (m.id === "boom") throw new Error("listener failed");
  });
  const s = await nextSocket(sockets, 1);
  s.open();
  s.frame({ type: "error", code: "unknown_id", message: "no such message for this user", id: "z" });
  s.frame({ type: "message", id: "boom", seq: 1, payload: 0 });
  s.frame({ type: "message", id: "ok", seq: 2, payload: 0 });
  s.frame("not an object");
  await acksSent();
  assert.deepEqual(rec.errors[0], { code: "unknown_id", message: "no such message for this user", id: "z" });
  assert.equal(rec.errors[1].message, "listener failed");
  assert.deepEqual(rec.messages.map((m) => m.id), ["boom", "ok"]);
  assert.deepEqual(s.sent, [{ type: "ack", seq: 2 }], "a throwing listener does not stop the ack");
  client.close();
});

test("close() ends everything: no reconnect, no more events", async () => {
  const { sockets, Fake } = scripted();
  const client = connect("ws://x/ws", { token: "t", WebSocket: Fake, baseDelayMs: 1 });
  const rec = record(client);
  (await nextSocket(sockets, 1)).end(1006);
  client.close();
  const n = rec.stateEvents.length;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(sockets.length, 1);
  assert.equal(rec.stateEvents.length, n);
  assert.equal(rec.states.at(-1), "closed");
});

test("heartbeat: pings every ping interval; a silent server is left after two intervals", async () => {
  const { sockets, Fake } = scripted();
  const client = connect("ws://x/ws", { token: "t", WebSocket: Fake, random: () => 0 });
  const rec = record(client);
  const s = await nextSocket(sockets, 1);
  s.readyState = 1;
  s.frame({ type: "welcome", user: "u", node: "n", ping_interval_secs: 0.02 });
  await eventually(() => s.sent.some((f) => f.type === "ping"), 2000, "a ping");
  const w = await rec.waitState("waiting");
  assert.equal(w.reason, "no answer from the server");
  await nextSocket(sockets, 2);
  client.close();
});
