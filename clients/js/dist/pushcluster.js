/**
 * pushcluster client: one WebSocket to a push node, kept open.
 *
 * - Reconnects with exponential back-off and full jitter (a restarted node is not hit by every
 *   client at the same instant); at once after 1001 "going away" (a draining node).
 * - Resumes with `last_seq` (the highest seq seen), so a reconnect receives only what it missed.
 * - Acks cumulatively: `{"type":"ack","seq":N}` covers every message up to seq N, so a burst
 *   costs one ack (sent `ackDelayMs` after the first message it covers). With `autoAck: false`
 *   the ack covers only the messages the app acked with nothing unacked before them. An acked
 *   message that comes back is acked again (the first ack may have been lost).
 * - Drops duplicates by message id (delivery is at-least-once on the wire).
 * - Takes a fresh token from `getToken()` when the current one is about to expire and after a
 *   connection attempt that failed before it opened (a browser never sees the HTTP 401).
 * - Stops, and reports why, on close codes that reconnecting cannot fix (see `FATAL`).
 *
 * No dependencies; runs in browsers and in Node ≥ 22 (Node 20: pass `WebSocket`, see README).
 * Protocol: docs/protocol.md.
 */
/** Close codes after which the client stops: the client (1003, 1007) or its user (1008,
 * 4001–4999) must change before a reconnect can succeed. 4000 (idle timeout) reconnects. */
export function isFatal(code) {
    return code === 1003 || code === 1007 || code === 1008 || (code > 4000 && code < 5000);
}
/** The `exp` claim (Unix seconds) of a JWT, or undefined when it cannot be read. */
export function tokenExpiry(token) {
    try {
        const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
        const exp = JSON.parse(atob(part)).exp;
        return typeof exp === "number" ? exp : undefined;
    }
    catch {
        return undefined;
    }
}
/** The back-off before attempt `attempt` (0-based): uniform in [0, min(max, base·2^attempt)). */
export function backoff(attempt, baseMs, maxMs, random) {
    return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30)));
}
/** Connects to `url` (`ws[s]://host/ws`; `http[s]:` and page-relative URLs are accepted) and
 * keeps the connection up until `close()`. Events start after the current task, so listeners
 * added right after `connect()` see every state. */
export function connect(url, options) {
    const opts = options || {};
    const found = opts.WebSocket || globalThis.WebSocket;
    if (!found) {
        throw new Error("no WebSocket: pass options.WebSocket (Node 20: node --experimental-websocket, or the ws package)");
    }
    const WS = found;
    if (!opts.token && !opts.getToken) {
        throw new Error("options.token or options.getToken is required");
    }
    const base = opts.baseDelayMs ?? 500;
    const max = opts.maxDelayMs ?? 30000;
    const margin = (opts.refreshMarginSecs ?? 30) * 1000;
    const connectTimeout = opts.connectTimeoutMs ?? 15000;
    const windowSize = opts.dedupeWindow ?? 10000;
    const random = opts.random || Math.random;
    const autoAck = opts.autoAck !== false;
    const ackDelay = opts.ackDelayMs ?? 20;
    const listeners = {};
    // Recent message ids → whether they were acked (a duplicate of an acked one is acked again).
    const seen = new Map();
    // Delivered messages not covered by an ack yet, in seq order; `ackedThrough` is the highest
    // seq an ack was sent for, `ackTimer` the pending send.
    const unacked = [];
    let ackedThrough = 0;
    let ackWanted = 0;
    let ackTimer;
    let token = opts.token;
    let stale = !token;
    let lastSeq = opts.lastSeq || 0;
    let state = { state: "connecting", attempt: 0 };
    let attempt = 0;
    let ws;
    let timer;
    let heartbeat;
    let done = false;
    function emit(event, value) {
        const set = listeners[event];
        if (!set || !set.size) {
            if (event === "error")
                console.error("pushcluster:", value);
            return;
        }
        for (const fn of [...set]) {
            try {
                fn(value);
            }
            catch (e) {
                if (event === "error")
                    console.error("pushcluster: error listener threw", e);
                else
                    emit("error", e instanceof Error ? e : new Error(String(e)));
            }
        }
    }
    function setState(next) {
        state = next;
        emit("state", next);
    }
    function send(frame) {
        if (ws && ws.readyState === 1)
            ws.send(JSON.stringify(frame));
    }
    function flushAck() {
        ackTimer = undefined;
        if (ackWanted > 0 && ws && ws.readyState === 1) {
            send({ type: "ack", seq: ackWanted });
            ackedThrough = Math.max(ackedThrough, ackWanted);
            ackWanted = 0;
        }
    }
    function wantAck(seq) {
        ackWanted = Math.max(ackWanted, seq);
        if (ackTimer === undefined)
            ackTimer = setTimeout(flushAck, ackDelay);
    }
    /** Marks `id` acked by the app and acks the prefix of `unacked` that is all acked. */
    function ack(id) {
        if (seen.has(id))
            seen.set(id, true);
        const entry = unacked.find((u) => u.id === id);
        if (entry)
            entry.acked = true;
        let through = 0;
        while (unacked.length && unacked[0].acked)
            through = unacked.shift().seq;
        if (through > 0)
            wantAck(through);
    }
    /** A new message: remembered in seq order until an ack covers it. */
    function delivered(id, seq) {
        if (seq <= ackedThrough)
            return;
        let i = unacked.length;
        while (i > 0 && unacked[i - 1].seq > seq)
            i--;
        unacked.splice(i, 0, { seq, id, acked: false });
        if (unacked.length > windowSize)
            unacked.shift();
    }
    function stop() {
        if (ackTimer !== undefined)
            clearTimeout(ackTimer);
        ackTimer = undefined;
        if (timer !== undefined)
            clearTimeout(timer);
        if (heartbeat !== undefined)
            clearInterval(heartbeat);
        timer = heartbeat = undefined;
        const old = ws;
        ws = undefined;
        if (old) {
            old.onopen = old.onmessage = old.onclose = old.onerror = null;
            try {
                old.close(1000);
            }
            catch {
                /* already closing */
            }
        }
    }
    function retry(code, reason, delayMs) {
        stop();
        if (done)
            return;
        const delay = delayMs ?? backoff(attempt, base, max, random);
        attempt++;
        setState({ state: "waiting", delayMs: delay, attempt, code, reason });
        timer = setTimeout(open, delay);
    }
    function giveUp(code, reason) {
        stop();
        done = true;
        setState({ state: "stopped", code, reason });
    }
    async function freshToken() {
        const exp = token ? tokenExpiry(token) : undefined;
        const expiring = exp !== undefined && exp * 1000 - Date.now() < margin;
        if (opts.getToken && (stale || expiring)) {
            token = await opts.getToken();
            stale = false;
        }
        else if (exp !== undefined && exp * 1000 <= Date.now()) {
            return undefined;
        }
        return token;
    }
    async function open() {
        timer = undefined;
        if (done)
            return;
        setState({ state: "connecting", attempt });
        let t;
        try {
            t = await freshToken();
        }
        catch (e) {
            return retry(undefined, `getToken failed: ${e instanceof Error ? e.message : e}`);
        }
        if (done)
            return;
        if (!t)
            return giveUp(undefined, "token expired and no getToken to refresh it");
        const u = new URL(url, globalThis.location?.href);
        u.protocol = u.protocol.replace(/^http/, "ws");
        u.searchParams.set("token", t);
        if (lastSeq > 0)
            u.searchParams.set("last_seq", String(lastSeq));
        else
            u.searchParams.delete("last_seq");
        let opened = false;
        let lastRx = Date.now();
        const socket = new WS(u.toString());
        ws = socket;
        // Refused before the upgrade: maybe a 401 (a browser cannot tell), so a new token next.
        const failed = (code, reason) => {
            stale = true;
            retry(code, reason);
        };
        timer = setTimeout(() => failed(1006, "connect timed out"), connectTimeout);
        socket.onopen = () => {
            opened = true;
            clearTimeout(timer);
            timer = undefined;
        };
        socket.onerror = () => {
            // After an open the close event follows and carries the code. Before, some
            // implementations (Node 20's) fire no close at all.
            if (!opened && ws === socket)
                failed(1006, "connect failed");
        };
        socket.onclose = (ev) => {
            if (ws !== socket)
                return;
            if (!opened)
                return failed(ev.code, "connect failed");
            if (isFatal(ev.code))
                return giveUp(ev.code, ev.reason || "closed by the server");
            retry(ev.code, ev.reason || "connection lost", ev.code === 1001 ? 0 : undefined);
        };
        socket.onmessage = (ev) => {
            lastRx = Date.now();
            let frame;
            try {
                frame = JSON.parse(String(ev.data));
            }
            catch {
                return;
            }
            if (frame.type === "message" && typeof frame.id === "string" && typeof frame.seq === "number") {
                if (frame.seq > lastSeq)
                    lastSeq = frame.seq;
                const acked = seen.get(frame.id);
                if (acked === undefined) {
                    seen.set(frame.id, false);
                    if (seen.size > windowSize)
                        seen.delete(seen.keys().next().value);
                    delivered(frame.id, frame.seq);
                    emit("message", { id: frame.id, seq: frame.seq, payload: frame.payload });
                    if (autoAck)
                        ack(frame.id);
                }
                else if (acked && frame.seq <= ackedThrough) {
                    // The server resends until it hears an ack: the first one may have been lost.
                    wantAck(ackedThrough);
                }
            }
            else if (frame.type === "welcome") {
                attempt = 0;
                // An ack the last connection did not get to send.
                if (ackWanted > 0)
                    wantAck(ackWanted);
                const every = (frame.ping_interval_secs || 25) * 1000;
                // The server's WebSocket pings are invisible to a page: send our own, and reconnect when
                // nothing at all arrives for two intervals (a dead node or a broken path).
                heartbeat = setInterval(() => {
                    if (Date.now() - lastRx > 2 * every)
                        retry(undefined, "no answer from the server");
                    else
                        send({ type: "ping" });
                }, every);
                setState({ state: "connected", user: String(frame.user), node: String(frame.node) });
            }
            else if (frame.type === "error") {
                emit("error", { code: String(frame.code), message: String(frame.message), id: frame.id });
            }
        };
    }
    Promise.resolve().then(open);
    return {
        on(event, listener) {
            const fn = listener;
            const set = (listeners[event] ||= new Set());
            set.add(fn);
            return () => {
                set.delete(fn);
            };
        },
        ack,
        close() {
            if (done && state.state === "closed")
                return;
            done = true;
            stop();
            setState({ state: "closed" });
        },
        get lastSeq() {
            return lastSeq;
        },
        get state() {
            return state.state;
        },
    };
}
