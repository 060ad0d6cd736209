// The demo page's script: the SDK does the protocol; this only shows what it reports.
import { connect } from "/sdk/pushcluster.js";

const $ = (id) => document.getElementById(id);
const apiKey = document.querySelector('meta[name="pushcluster-dev-api-key"]')?.content || "";
// `make run` prints the page URL with #token=… (a fragment never reaches a server or a log);
// ?token=… works too.
const given = new URLSearchParams(location.hash.slice(1)).get("token") || new URLSearchParams(location.search).get("token");
let client;

function subject(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub || "";
  } catch {
    return "";
  }
}

function showState(s) {
  const el = $("state");
  el.dataset.state = s.state;
  el.textContent = {
    connecting: () => (s.attempt ? `connecting (attempt ${s.attempt + 1})…` : "connecting…"),
    connected: () => "connected",
    waiting: () => `disconnected (${s.code ?? "-"} ${s.reason}); retrying in ${(s.delayMs / 1000).toFixed(1)} s`,
    stopped: () => `stopped: ${s.reason}${s.code ? ` (${s.code})` : ""}`,
    closed: () => "disconnected",
  }[s.state]();
  $("user").textContent = s.state === "connected" ? `as ${s.user} on node ${s.node}` : "";
  const live = s.state !== "closed" && s.state !== "stopped";
  $("connect").disabled = live;
  $("disconnect").disabled = !live;
}

function showMessage(m) {
  const li = document.createElement("li");
  li.className = "message";
  li.dataset.id = m.id;
  li.dataset.seq = String(m.seq);
  const seq = document.createElement("span");
  seq.className = "seq";
  seq.textContent = `#${m.seq}`;
  li.append(seq, JSON.stringify(m.payload));
  $("messages").append(li);
  $("count").textContent = String($("messages").children.length);
}

function start(token) {
  client?.close();
  client = connect("/ws", { token });
  client.on("state", showState);
  client.on("message", showMessage);
  if (!$("send-to").value) $("send-to").value = subject(token);
}

$("connect-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = $("token").value.trim();
  if (token) start(token);
});
$("disconnect").addEventListener("click", () => client?.close());

if (apiKey) {
  $("send-section").hidden = false;
  $("send-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const result = $("send-result");
    let payload;
    try {
      payload = JSON.parse($("send-payload").value);
    } catch (e) {
      result.textContent = `payload is not JSON: ${e.message}`;
      return;
    }
    result.textContent = "sending…";
    try {
      const res = await fetch("/v1/messages", {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ to: [$("send-to").value.trim()], payload }),
      });
      const body = await res.json();
      result.textContent = res.ok ? `accepted: ${body.id}` : `${res.status}: ${body.error}`;
      result.dataset.id = res.ok ? body.id : "";
    } catch (e) {
      result.textContent = `failed: ${e.message}`;
    }
  });
}

if (given) {
  $("token").value = given;
  start(given);
}
