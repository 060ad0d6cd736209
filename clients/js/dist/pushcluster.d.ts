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
{
    state: "connecting";
    attempt: number;
}
/** The server's welcome arrived: from now on nothing sent to `user` can miss this client. */
 | {
    state: "connected";
    user: string;
    node: string;
}
/** Disconnected; the next attempt starts in `delayMs`. `code`/`reason`: why it ended. */
 | {
    state: "waiting";
    delayMs: number;
    attempt: number;
    code?: number;
    reason: string;
}
/** Given up: reconnecting cannot help (policy close code, expired token and no getToken). */
 | {
    state: "stopped";
    code?: number;
    reason: string;
}
/** `close()` was called. */
 | {
    state: "closed";
};
/** An `error` frame from the server (it never closes the connection). */
export interface ServerError {
    code: string;
    message: string;
    id?: string;
}
/** The WebSocket API the client needs (the browser's, Node ≥ 22's, or the `ws` package's). */
export interface WebSocketLike {
    readonly readyState: number;
    onopen: ((ev: any) => void) | null;
    onmessage: ((ev: any) => void) | null;
    onclose: ((ev: any) => void) | null;
    onerror: ((ev: any) => void) | null;
    send(data: string): void;
    close(code?: number, reason?: string): void;
}
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
export declare function isFatal(code: number): boolean;
/** The `exp` claim (Unix seconds) of a JWT, or undefined when it cannot be read. */
export declare function tokenExpiry(token: string): number | undefined;
/** The back-off before attempt `attempt` (0-based): uniform in [0, min(max, base·2^attempt)). */
export declare function backoff(attempt: number, baseMs: number, maxMs: number, random: () => number): number;
/** Connects to `url` (`ws[s]://host/ws`; `http[s]:` and page-relative URLs are accepted) and
 * keeps the connection up until `close()`. Events start after the current task, so listeners
 * added right after `connect()` see every state. */
export declare function connect(url: string, options: Options): Client;
