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

/** A message as the server delivered it. */
export interface Message {
  /** Message id: the same on every device and every redelivery. */
  id: string;
  /** The user's sequence number: increasing, not necessarily contiguous. */
  seq: number;
  /** Exactly the JSON the sender posted. */
  payload: unknown;
}

/** Where the client is. Every change is emitted as a `state` event. */
export type State =
  /** A connection attempt is under way (`attempt` counts failures since the last success). */
  | { state: "connecting"; attempt: number }
  /** The server's welcome arrived: from now on nothing sent to `user` can miss this client. */
  | { state: "connected"; user: string; node: string }
  /** Disconnected; the next attempt starts in `delayMs`. `code`/`reason`: why it ended. */
  | { state: "waiting"; delayMs: number; attempt: number; code?: number; reason: string }
  /** Given up: reconnecting cannot help (policy close code, expired token and no getToken). */
  | { state: "stopped"; code?: number; reason: string }
  /** `close()` was called. */
  | { state: "closed" };

/** An `error` frame from the server (it never closes the connection). */
export interface ServerError {
  code: string;
  message: string;
  id?: string;
}

/** The WebSocket API the client needs (the browser's, Node ≥ 22's, or the `ws` package's). */
// The handlers take `any` so that the DOM's WebSocket (whose handlers take Event subtypes)
// and other implementations are assignable.
/* eslint-disable @typescript-eslint/no-explicit-any */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface Options {
  /** A client JWT. Enough for a token that outlives the page; else give `getToken`. */
  token?: string;
  /** Returns a fresh token; called before the first connect when `token` is absent, when the
   * current token expires within `refreshMarginSecs`, and after a failed connect. */
  getToken?: () => string | Promise<string>;
  /** Resume after this seq (e.g. kept by the app across page loads). Default: none. */
  lastSeq?: number;
  /** Ack each message after the `message` listeners ran (default true). With false, call
   * `client.ack(id)` once the message is processed. */
  autoAck?: boolean;
  /** First back-off ceiling, ms (default 500); doubles per failure up to `maxDelayMs`. */
  baseDelayMs?: number;
  /** Largest back-off ceiling, ms (default 30000). */
  maxDelayMs?: number;
  /** Give up on a connection attempt that has not opened after this many ms (default 15000). */
  connectTimeoutMs?: number;
  /** Refresh a token that expires within this many seconds (default 30). */
  refreshMarginSecs?: number;
  /** Acks wait this long (ms, default 20) so that one ack covers a burst; the server keeps
   * unacked messages, so waiting costs nothing but a redelivery after a reconnect. */
  ackDelayMs?: number;
  /** How many recent message ids are remembered to drop duplicates (default 10000). */
  dedupeWindow?: number;
  /** WebSocket constructor (default: the global one; Node 20 has none). */
  WebSocket?: WebSocketConstructor;
  /** Random source in [0, 1) for the jitter (default Math.random; tests pin it). */
  random?: () => number;
}

export interface Events {
  message: Message;
  state: State;
  error: ServerError | Error;
}

export interface Client {
  /** Subscribes to an event; returns the function that unsubscribes. */
  on<E extends keyof Events>(event: E, listener: (value: Events[E]) => void): () => void;
  /** Acks a message (needed only with `autoAck: false`; until then its duplicates are not
   * acked either). */
  ack(id: string): void;
  /** Closes the connection for good. */
  close(): void;
  /** The highest seq seen: what the next connection resumes after. */
  readonly lastSeq: number;
  /** The current state's name. */
  readonly state: State["state"];
}

/** Close codes after which the client stops: the client (1003, 1007) or its user (1008,
 * 4001–4999) must change before a reconnect can succeed. 4000 (idle timeout) reconnects. */
export function isFatal(code: number): boolean {
  return code === 1003 || code === 1007 || code === 1008 || (code > 4000 && code < 5000);
}

/** The `exp` claim (Unix seconds) of a JWT, or undefined when it cannot be read. */
export function tokenExpiry(token: string): number | undefined {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part)).exp;
    return typeof exp === "number" ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** The back-off before attempt `attempt` (0-based): uniform in [0, min(max, base·2^attempt)). */
export function backoff(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30)));
}

/** Connects to `url` (`ws[s]://host/ws`; `http[s]:` and page-relative URLs are accepted) and
 * keeps the connection up until `close()`. Events start after the current task, so listeners
 * added right after `connect()` see every state. */
export function connect(url: string, options: Options): Client {
  const opts = options || {};
  const found = opts.WebSocket || (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!found) {
    throw new Error("no WebSocket: pass options.WebSocket (Node 20: node --experimental-websocket, or the ws package)");
  }
  const WS: WebSocketConstructor = found;
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
  const listeners: { [E in keyof Events]?: Set<(v: unknown) => void> } = {};
  // Recent message ids → whether they were acked (a duplicate of an acked one is acked again).
  const seen = new Map<string, boolean>();
  // Delivered messages not covered by an ack yet, in seq order; `ackedThrough` is the highest
  // seq an ack was sent for, `ackTimer` the pending send.
  const unacked: { seq: number; id: string; acked: boolean }[] = [];
  let ackedThrough = 0;
  let ackWanted = 0;
  let ackTimer: ReturnType<typeof setTimeout> | undefined;
  let token = opts.token;
  let stale = !token;
  let lastSeq = opts.lastSeq || 0;
  let state: State = { state: "connecting", attempt: 0 };
  let attempt = 0;
  let ws: WebSocketLike | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let done = false;

  function emit<E extends keyof Events>(event: E, value: Events[E]): void {
    const set = listeners[event];
    if (!set || !set.size) {
      if (event === "error") console.error("pushcluster:", value);
      return;
    }
    for (const fn of [...set]) {
      try {
        fn(value);
      } catch (e) {
        if (event === "error") console.error("pushcluster: error listener threw", e);
        else emit("error", e instanceof Error ? e : new Error(String(e)));
      }
    }
  }

  function setState(next: State): void {
    state = next;
    emit("state", next);
  }

  function send(frame: object): void {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
  }

  function flushAck(): void {
    ackTimer = undefined;
    if (ackWanted > 0 && ws && ws.readyState === 1) {
      send({ type: "ack", seq: ackWanted });
      ackedThrough = Math.max(ackedThrough, ackWanted);
      ackWanted = 0;
    }
  }

  function wantAck(seq: number): void {
    ackWanted = Math.max(ackWanted, seq);
    if (ackTimer === undefined) ackTimer = setTimeout(flushAck, ackDelay);
  }

  /** Marks `id` acked by the app and acks the prefix of `unacked` that is all acked. */
  function ack(id: string): void {
    if (seen.has(id)) seen.set(id, true);
    const entry = unacked.find((u) => u.id === id);
    if (entry) entry.acked = true;
    let through = 0;
    while (unacked.length && unacked[0].acked) through = unacked.shift()!.seq;
    if (through > 0) wantAck(through);
  }

  /** A new message: remembered in seq order until an ack covers it. */
  function delivered(id: string, seq: number): void {
    if (seq <= ackedThrough) return;
    let i = unacked.length;
    while (i > 0 && unacked[i - 1].seq > seq) i--;
    unacked.splice(i, 0, { seq, id, acked: false });
    if (unacked.length > windowSize) unacked.shift();
  }

  function stop(): void {
    if (ackTimer !== undefined) clearTimeout(ackTimer);
    ackTimer = undefined;
    if (timer !== undefined) clearTimeout(timer);
    if (heartbeat !== undefined) clearInterval(heartbeat);
    timer = heartbeat = undefined;
    const old = ws;
    ws = undefined;
    if (old) {
      old.onopen = old.onmessage = old.onclose = old.onerror = null;
      try {
        old.close(1000);
      } catch {
        /* already closing */
      }
    }
  }

  function retry(code: number | undefined, reason: string, delayMs?: number): void {
    stop();
    if (done) return;
    const delay = delayMs ?? backoff(attempt, base, max, random);
    attempt++;
    setState({ state: "waiting", delayMs: delay, attempt, code, reason });
    timer = setTimeout(open, delay);
  }

  function giveUp(code: number | undefined, reason: string): void {
    stop();
    done = true;
    setState({ state: "stopped", code, reason });
  }

  async function freshToken(): Promise<string | undefined> {
    const exp = token ? tokenExpiry(token) : undefined;
    const expiring = exp !== undefined && exp * 1000 - Date.now() < margin;
    if (opts.getToken && (stale || expiring)) {
      token = await opts.getToken();
      stale = false;
    } else if (exp !== undefined && exp * 1000 <= Date.now()) {
      return undefined;
    }
    return token;
  }

  async function open(): Promise<void> {
    timer = undefined;
    if (done) return;
    setState({ state: "connecting", attempt });
    let t: string | undefined;
    try {
      t = await freshToken();
    } catch (e) {
      return retry(undefined, `getToken failed: ${e instanceof Error ? e.message : e}`);
    }
    if (done) return;
    if (!t) return giveUp(undefined, "token expired and no getToken to refresh it");
    const u = new URL(url, (globalThis as { location?: { href: string } }).location?.href);
    u.protocol = u.protocol.replace(/^http/, "ws");
    u.searchParams.set("token", t);
    if (lastSeq > 0) u.searchParams.set("last_seq", String(lastSeq));
    else u.searchParams.delete("last_seq");
    let opened = false;
    let lastRx = Date.now();
    const socket = new WS(u.toString());
    ws = socket;
    // Refused before the upgrade: maybe a 401 (a browser cannot tell), so a new token next.
    const failed = (code: number, reason: string) => {
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
      if (!opened && ws === socket) failed(1006, "connect failed");
    };
    socket.onclose = (ev: { code: number; reason: string }) => {
      if (ws !== socket) return;
      if (!opened) return failed(ev.code, "connect failed");
      if (isFatal(ev.code)) return giveUp(ev.code, ev.reason || "closed by the server");
      retry(ev.code, ev.reason || "connection lost", ev.code === 1001 ? 0 : undefined);
    };
    socket.onmessage = (ev: { data: unknown }) => {
      lastRx = Date.now();
      let frame: {
        type?: string;
        id?: string;
        seq?: number;
        payload?: unknown;
        user?: string;
        node?: string;
        code?: string;
        message?: string;
        ping_interval_secs?: number;
      };
      try {
        frame = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      if (frame.type === "message" && typeof frame.id === "string" && typeof frame.seq === "number") {
        if (frame.seq > lastSeq) lastSeq = frame.seq;
        const acked = seen.get(frame.id);
        if (acked === undefined) {
          seen.set(frame.id, false);
          if (seen.size > windowSize) seen.delete(seen.keys().next().value as string);
          delivered(frame.id, frame.seq);
          emit("message", { id: frame.id, seq: frame.seq, payload: frame.payload });
          if (autoAck) ack(frame.id);
        } else if (acked && frame.seq <= ackedThrough) {
          // The server resends until it hears an ack: the first one may have been lost.
          wantAck(ackedThrough);
        }
      } else if (frame.type === "welcome") {
        attempt = 0;
        // An ack the last connection did not get to send.
        if (ackWanted > 0) wantAck(ackWanted);
        const every = (frame.ping_interval_secs || 25) * 1000;
        // The server's WebSocket pings are invisible to a page: send our own, and reconnect when
        // nothing at all arrives for two intervals (a dead node or a broken path).
        heartbeat = setInterval(() => {
          if (Date.now() - lastRx > 2 * every) retry(undefined, "no answer from the server");
          else send({ type: "ping" });
        }, every);
        setState({ state: "connected", user: String(frame.user), node: String(frame.node) });
      } else if (frame.type === "error") {
        emit("error", { code: String(frame.code), message: String(frame.message), id: frame.id });
      }
    };
  }

  Promise.resolve().then(open);

  return {
    on(event, listener) {
      const fn = listener as (v: unknown) => void;
      const set = (listeners[event] ||= new Set());
      set.add(fn);
      return () => {
        set.delete(fn);
      };
    },
    ack,
    close() {
      if (done && state.state === "closed") return;
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
