// The demo page in Debian's Chromium (driven by playwright-core) against a real `pushd
// standalone`: a message from the page's form and one from an HTTP client both show; after
// kill -9 and a restart the page reconnects by itself and shows what was sent meanwhile, once.
// Run by `cargo test -p pushd --test demo_browser`, which passes PUSHD_BIN, CHROMIUM,
// PUSHCLUSTER_NODE_MODULES and SCREENSHOT.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { Server, token } from "../../../../clients/js/test/harness.mjs";

const { chromium } = createRequire(`${process.env.PUSHCLUSTER_NODE_MODULES}/`)("playwright-core");
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
  "--disable-quic",
];
const WAIT = 15000;

let context;
let profile;
const problems = [];

before(async () => {
  profile = mkdtempSync(join(tmpdir(), "pushd-chromium-"));
  // A persistent context is how playwright takes a fresh --user-data-dir; `headless` adds
  // --headless.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
  });
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function openPage(server, user) {
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // Chromium logs each refused WebSocket connect (expected while the server is down).
    if (m.type() === "error" && !/^WebSocket connection to .* failed/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  // #token=: the fragment `make run` prints; it never reaches the server.
  await page.goto(`${server.http}/#token=${token(user)}`);
  return page;
}

const connected = (page) => page.waitForSelector('#state[data-state="connected"]', { timeout: WAIT });
const messageWith = (page, text) => page.waitForSelector(`li.message:has-text('${text}')`, { timeout: WAIT });

test("dev mode: form and HTTP messages show; after kill -9 + restart the page reconnects and shows the missed one once", async () => {
  const server = await Server.start(["--dev-api-key-in-page"]);
  try {
    const page = await openPage(server, "demo");
    await connected(page);
    assert.equal(await page.textContent("#user"), "as demo on node local");
    assert.equal(await page.inputValue("#send-to"), "demo", "the form sends to the token's user");

    // 1. Through the page's form (POST /v1/messages with the dev key).
    await page.fill("#send-payload", '{"via":"form"}');
    await page.click("#send");
    await messageWith(page, '{"via":"form"}');
    assert.match(await page.textContent("#send-result"), /^accepted: /);

    // 2. Through an HTTP client, as a business system would.
    await server.send(["demo"], { via: "http" });
    await messageWith(page, '{"via":"http"}');

    // 3. Crash the server; bring it back on the same port and data dir.
    const killedAt = performance.now();
    await server.kill9();
    await page.waitForSelector('#state[data-state="waiting"], #state[data-state="connecting"]', { timeout: WAIT });
    await server.restart();
    const restartedAt = performance.now();
    const downId = await server.send(["demo"], { via: "sent while the page was away" });
    const stateAtSend = await page.getAttribute("#state", "data-state");
    await connected(page);
    const reconnectedAt = performance.now();
    await messageWith(page, "sent while the page was away");
    // Let any redelivery arrive before counting.
    await page.waitForTimeout(500);
    const items = await page.$$eval("li.message", (lis) => lis.map((li) => ({ id: li.dataset.id, seq: Number(li.dataset.seq), text: li.textContent })));
    assert.equal(items.length, 3, JSON.stringify(items));
    assert.equal(items.filter((m) => m.id === downId).length, 1, "exactly once");
    assert.deepEqual(items.map((m) => m.seq), [1, 2, 3]);
    assert.equal(await page.textContent("#count"), "3");
    console.log(
      `MEASURED reconnect: ${Math.round(reconnectedAt - killedAt)} ms from kill -9 to connected, ` +
        `${Math.round(reconnectedAt - restartedAt)} ms after the restarted server listened ` +
        `(page state when the missed message was sent: ${stateAtSend})`,
    );

    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
    console.log(`SCREENSHOT ${process.env.SCREENSHOT}`);
    await page.close();
  } finally {
    await server.stop();
  }
  assert.deepEqual(problems, [], "no script errors, no CSP violations");
});

test("without the dev flag the page has no send form and no key", async () => {
  const server = await Server.start();
  try {
    const page = await openPage(server, "plain");
    await connected(page);
    assert.equal(await page.isHidden("#send-section"), true);
    assert.equal(await page.getAttribute('meta[name="pushcluster-dev-api-key"]', "content"), "");
    await page.close();
  } finally {
    await server.stop();
  }
  assert.deepEqual(problems, []);
});
