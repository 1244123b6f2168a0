// realtime.js: a browser client for this service's WebSocket protocol.
//
// One ES module, no build step, no dependencies; the service serves it at
// /static/realtime.js for the demo page and for your own pages:
//
//   import { RealtimeClient } from "https://realtime.example.com/static/realtime.js";
//   const client = new RealtimeClient({ getToken: async () => (await fetch("/token")).text() });
//   await client.subscribe("chat:42", (message) => show(message.data));
//   const { offset, epoch } = await client.publish("chat:42", { text: "hi" });
//
// Options: url (default: `ws` beside this file's folder, .../static/realtime.js →
// .../ws, wss: when served over https), getToken, onStatus, onEvent, and backoff
// {initial: 500, max: 30000} in ms. onStatus hears {state: "connecting", attempt},
// {state: "open", client, user, expiresAt}, {state: "closed", code, reason, reconnect}
// and {state: "reconnecting", delay, attempt}; onEvent hears {type: "recovered" or
// "resync", channel, position, reason}, {type: "unsubscribed", channel, code, reason},
// {type: "refreshed", expiresAt} and {type: "error", code, reason, channel}.
//
// What it promises (the project README's "Browser client" section has the whole API):
// - One connection carries every channel. `subscribe`, `unsubscribe` and `publish`
//   return promises settled by the server's reply; an `error` frame rejects with a
//   RealtimeError whose `code` is the server's (`forbidden`, `bad_channel`, ...).
// - Commands called while not connected wait, in order, for the next welcome and are
//   sent then. A command already sent when the connection drops rejects with code
//   `disconnected`: the server may or may not have run it (a publish is not resent).
//   `close()` rejects whatever is waiting with code `closed`. Commands are paced
//   by the welcome's `rate` and `burst`, so a page with many channels resubscribes
//   them all after a reconnect without being refused (`rate_limited`, then 4029).
// - A lost connection is reconnected after a backoff with full jitter: a wait drawn
//   between 0 and min(backoff.max, backoff.initial * 2^n) ms for the n-th retry in a
//   row; a welcome starts n at 0 again. 4008 (the server refused our frames) stops
//   the client: reconnecting unchanged would only fail again. Every other close
//   (1012 restart, 1013 too slow, 4029 too many requests, a network loss) reconnects.
// - getToken({reason}) is called before every connection ("connect", "reconnect",
//   or "unauthorized" after a 4001 close: return a fresh token then, not a cached
//   one) and for a `refresh` a little before the token's `expires_at` ("refresh").
//   It returns a JWT, or null while the service runs without authentication.
// - Each channel remembers the last {offset, epoch} it delivered. After a reconnect
//   the client subscribes again with `since` that position, so the server sends what
//   was missed, then live messages; onEvent hears "recovered". When the server cannot
//   (history lost or too short: `recovered: false`, or a `resync` frame), onEvent
//   hears "resync" with the channel's new position, and delivery continues from
//   there: reload the channel's state. A message at or before the last delivered
//   offset of the same epoch is dropped, so none is delivered twice.

const DEFAULT_BACKOFF = { initial: 500, max: 30000 };
// Refresh this long before the token expires, or half its remaining life if shorter.
const REFRESH_AHEAD_MS = 30000;
// setTimeout's longest delay (about 24.8 days); a longer one would fire at once.
const MAX_TIMER_MS = 2 ** 31 - 1;
// Server error codes after which a subscribe is worth sending again later.
const TRANSIENT = new Set(["unavailable", "rate_limited"]);
// Codes of this client's own: the server did not refuse anything.
const LOCAL = new Set(["disconnected", "closed", "unsubscribed", "too_large"]);

/** A refused command: `code` is the server's error code, or `disconnected`, `closed`, `too_large`. */
export class RealtimeError extends Error {
  constructor(code, reason) {
    super(`${code}: ${reason}`);
    this.name = "RealtimeError";
    this.code = code;
    this.reason = reason;
  }
}

/** The service's WebSocket URL next to this module's (…/static/realtime.js → …/ws). */
export function defaultUrl(base = import.meta.url) {
  const url = new URL("../ws", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

// Of a welcome's `burst`, what the client allows itself at once (all of it when absent).
function usable(burst) {
  return burst == null ? Infinity : Math.max(1, burst - Math.max(1, Math.ceil(burst / 10)));
}

export class RealtimeClient {
  #url;
  #getToken;
  #onStatus;
  #onEvent;
  #backoff;
  #state = "connecting";
  #socket = null;     // the current WebSocket, null between connections
  #welcome = null;    // the current connection's welcome frame, null until it came
  #closed = false;    // close() was called, or the server said not to come back
  #attempt = 0;       // retries since the last welcome
  #reason = "connect";  // what the next getToken call is for
  #retryTimer = null;
  #refreshTimer = null;
  #nextId = 1;
  #pending = new Map();   // id -> a command sent on this connection, awaiting its answer
  #waiting = [];          // commands awaiting the next welcome
  #paced = [];            // commands of this connection waiting for the rate limit: [id, text, command]
  #tokens = 0;            // commands this connection may send now (the welcome's rate and burst)
  #tokensAt = 0;          // when #tokens was counted (performance.now(), ms)
  #paceTimer = null;
  #channels = new Map();  // name -> {onMessage, position, confirmed, retries, timer}

  /**
   * Connect at once. Options: url (default: the `ws` endpoint of the service that
   * served this file), getToken, onStatus(status), onEvent(event), backoff {initial, max} in ms.
   */
  constructor({ url, getToken = async () => null, onStatus, onEvent, backoff } = {}) {
    this.#url = url ?? defaultUrl();
    this.#getToken = getToken;
    this.#onStatus = onStatus ?? (() => {});
    this.#onEvent = onEvent ?? (() => {});
    this.#backoff = { ...DEFAULT_BACKOFF, ...backoff };
    this.#connect();
  }

  /** "connecting", "open" (welcomed), "reconnecting" (waiting to retry) or "closed" (for good). */
  get state() {
    return this.#state;
  }

  /** The current connection's welcome frame ({client, user, expires_at, ...}), or null. */
  get welcome() {
    return this.#welcome;
  }

  /**
   * Subscribe to `channel`; onMessage(envelope) gets each message, with its `data`,
   * `offset`, `epoch`, `sender`, `ts`. Resolves with {channel, offset, epoch} (the
   * position the subscription went live at); rejects with a RealtimeError.
   */
  subscribe(channel, onMessage) {
    if (this.#channels.has(channel)) {
      return Promise.reject(new RealtimeError("already_subscribed", `already subscribed: ${channel}`));
    }
    const entry = { onMessage, position: null, confirmed: false, retries: 0, timer: null };
    this.#channels.set(channel, entry);
    return this.#command("subscribe", { channel }, {
      entry,
      reply: (frame) => {
        entry.confirmed = true;
        entry.position = positionOf(frame);
        return { channel, ...entry.position };
      },
      refused: () => this.#forget(channel, entry),
    });
  }

  /** Stop delivering `channel` at once; resolves when the server confirms (at once if not connected). */
  unsubscribe(channel) {
    const entry = this.#channels.get(channel);
    if (!entry) return Promise.resolve({ channel });
    this.#forget(channel, entry);
    // Not connected: the next connection will not subscribe to it again.
    if (!this.#welcome) return Promise.resolve({ channel });
    return this.#command("unsubscribe", { channel }).then(() => ({ channel }));
  }

  /** Publish `data` (any JSON value) on `channel`; resolves with its {offset, epoch}. */
  publish(channel, data) {
    return this.#command("publish", { channel, data }, { reply: positionOf });
  }

  /** Close for good: no reconnect; whatever is pending or waiting rejects with code `closed`. */
  close() {
    this.#stop(1000, "closed by the client");
  }

  // --- Connection ------------------------------------------------------------

  async #connect() {
    this.#retryTimer = null;
    this.#state = "connecting";
    this.#status({ state: "connecting", attempt: this.#attempt });
    let token;
    try {
      token = await this.#getToken({ reason: this.#reason });
    } catch (error) {
      if (this.#closed) return;
      this.#event({ type: "error", code: "token", reason: String(error?.message ?? error) });
      this.#retry();
      return;
    }
    if (this.#closed) return;
    let socket;
    try {
      socket = new WebSocket(this.#url);
    } catch (error) {
      // Not a WebSocket URL: no retry can help.
      this.#event({ type: "error", code: "bad_url", reason: error.message });
      this.#stop(1006, `cannot connect to ${this.#url}`);
      return;
    }
    this.#socket = socket;
    socket.onopen = () => {
      socket.send(JSON.stringify(token == null ? { type: "connect" } : { type: "connect", token }));
    };
    socket.onmessage = (event) => {
      if (this.#socket === socket) this.#receive(event.data);
    };
    socket.onclose = (event) => {
      if (this.#socket === socket) this.#dropped(event.code, event.reason);
    };
  }

  #dropped(code, reason) {
    this.#socket = null;
    this.#welcome = null;
    clearTimeout(this.#refreshTimer);
    this.#rejectPending("disconnected", `the connection closed (${code})`);
    this.#state = "reconnecting";
    if (code === 4008) {
      // The server refused our frames: the same client would only be refused again.
      this.#stop(code, reason);
      return;
    }
    this.#status({ state: "closed", code, reason, reconnect: true });
    if (this.#closed) return;  // onStatus called close()
    this.#reason = code === 4001 ? "unauthorized" : "reconnect";
    this.#retry();
  }

  #retry() {
    const delay = this.#delay(this.#attempt);
    this.#attempt += 1;
    this.#state = "reconnecting";
    this.#status({ state: "reconnecting", delay, attempt: this.#attempt });
    if (!this.#closed) this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  // Full jitter (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/):
  // clients dropped together by a restart come back spread over the whole window.
  #delay(attempt) {
    const { initial, max } = this.#backoff;
    return Math.round(Math.random() * Math.min(max, initial * 2 ** attempt));
  }

  #stop(code, reason) {
    if (this.#closed) return;
    this.#closed = true;
    this.#state = "closed";
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#refreshTimer);
    for (const entry of this.#channels.values()) clearTimeout(entry.timer);
    this.#channels.clear();
    const socket = this.#socket;
    this.#socket = null;
    this.#welcome = null;
    if (socket) socket.close(1000);
    this.#rejectPending("closed", "the client is closed");
    for (const command of this.#waiting.splice(0)) command.reject(new RealtimeError("closed", "the client is closed"));
    this.#status({ state: "closed", code, reason, reconnect: false });
  }

  #rejectPending(code, reason) {
    clearTimeout(this.#paceTimer);
    const pending = [...this.#pending.values(), ...this.#paced.map(([, , command]) => command)];
    this.#pending.clear();
    this.#paced = [];
    for (const command of pending) this.#refuse(command, new RealtimeError(code, reason));
  }

  // --- Frames ----------------------------------------------------------------

  #receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.type === "welcome") this.#welcomed(frame);
    else if (frame.type === "message") this.#message(frame);
    else if (frame.type === "reply" || frame.type === "error") this.#answered(frame);
    else if (frame.type === "resync") this.#resync(frame);
  }

  #welcomed(frame) {
    this.#welcome = frame;
    this.#attempt = 0;
    this.#reason = "reconnect";
    this.#state = "open";
    this.#status({ state: "open", client: frame.client, user: frame.user, expiresAt: frame.expires_at });
    this.#scheduleRefresh(frame.expires_at);
    // The server's bucket starts full; ours starts a tenth short of it and refills
    // a little slower, so that a late first frame, clock drift and the network
    // never make the server refuse a command.
    this.#tokens = usable(frame.burst);
    this.#tokensAt = performance.now();
    for (const [channel, entry] of this.#channels) {
      clearTimeout(entry.timer);  // a retry planned on the lost connection: this replaces it
      if (entry.confirmed) this.#resubscribe(channel, entry);
    }
    for (const command of this.#waiting.splice(0)) this.#send(command);
  }

  #message(frame) {
    const entry = this.#channels.get(frame.channel);
    if (!entry || !entry.confirmed) return;
    const last = entry.position;
    // Defensive: the server sends nothing twice, but a recovery must never replay.
    if (last && last.epoch === frame.epoch && frame.offset <= last.offset) return;
    entry.position = positionOf(frame);
    const { type, ...envelope } = frame;
    try {
      entry.onMessage(envelope);
    } catch (error) {
      reportError(error);  // the application's bug: reported, and the next message still comes
    }
  }

  #answered(frame) {
    const command = this.#pending.get(frame.id);
    if (!command) {
      if (frame.type === "error") this.#event({ type: "error", code: frame.code, reason: frame.reason });
      return;
    }
    this.#pending.delete(frame.id);
    if (frame.type === "reply") {
      command.resolve(command.reply ? command.reply(frame) : frame);
    } else {
      this.#refuse(command, new RealtimeError(frame.code, frame.reason));
    }
  }

  #resync(frame) {
    const entry = this.#channels.get(frame.channel);
    if (!entry) return;
    entry.position = frame.offset == null ? null : positionOf(frame);
    this.#event({ type: "resync", channel: frame.channel, position: entry.position, reason: frame.reason });
  }

  // --- Commands --------------------------------------------------------------

  // `options.reply(frame)` makes the resolved value; `options.refused(frame)` runs on an error frame.
  #command(kind, fields, options = {}) {
    return new Promise((resolve, reject) => {
      this.#send({ kind, fields, resolve, reject, ...options });
    });
  }

  #send(command) {
    if (this.#closed) {
      command.reject(new RealtimeError("closed", "the client is closed"));
      return;
    }
    if (command.entry && this.#channels.get(command.fields.channel) !== command.entry) {
      // A subscribe that waited while its channel was unsubscribed.
      command.reject(new RealtimeError("unsubscribed", `unsubscribed from ${command.fields.channel}`));
      return;
    }
    if (!this.#welcome) {
      this.#waiting.push(command);
      return;
    }
    const id = this.#nextId++;
    const text = JSON.stringify({ type: command.kind, id, ...command.fields });
    const limit = this.#welcome.max_message_size;
    if (new TextEncoder().encode(text).length > limit) {
      // Sent, it would close the connection with 1009.
      this.#refuse(command, new RealtimeError("too_large", `the frame would be over ${limit} bytes`));
      return;
    }
    this.#paced.push([id, text, command]);
    this.#transmit();
  }

  // Send what the rate limit allows now (a resubscription of many channels after a
  // reconnect, say); the rest when tokens come back. Without this, more commands
  // than the welcome's `burst` at once get `rate_limited` and then close 4029.
  #transmit() {
    clearTimeout(this.#paceTimer);
    const rate = (this.#welcome?.rate ?? Infinity) * 0.9;
    const burst = usable(this.#welcome?.burst);
    const now = performance.now();
    const elapsed = (now - this.#tokensAt) / 1000;
    this.#tokens = Number.isFinite(rate) ? Math.min(burst, this.#tokens + elapsed * rate) : burst;
    this.#tokensAt = now;
    while (this.#paced.length && this.#tokens >= 1) {
      const [id, text, command] = this.#paced.shift();
      this.#tokens -= 1;
      this.#pending.set(id, command);
      this.#socket.send(text);
    }
    if (this.#paced.length) {
      const wait = Math.ceil(((1 - this.#tokens) / rate) * 1000);
      this.#paceTimer = setTimeout(() => this.#transmit(), wait);
    }
  }

  #refuse(command, error) {
    command.refused?.(error);
    command.reject(error);
  }

  // Subscribe again after a reconnect, from the last position delivered.
  #resubscribe(channel, entry) {
    const since = entry.position;
    this.#command("subscribe", since ? { channel, since } : { channel }, {
      entry,
      reply: (frame) => {
        entry.retries = 0;
        if (frame.recovered) {
          this.#event({ type: "recovered", channel, position: since });
          return;
        }
        entry.position = positionOf(frame);
        const reason = since
          ? "the history does not reach back to the last message delivered"
          : "no position to recover from";
        this.#event({ type: "resync", channel, position: entry.position, reason });
      },
      refused: (error) => {
        // Dropped again, the next welcome subscribes again; refused for now, later (below).
        if (TRANSIENT.has(error.code) || LOCAL.has(error.code)) return;
        this.#forget(channel, entry);
        this.#event({ type: "unsubscribed", channel, code: error.code, reason: error.reason });
      },
    }).catch((error) => {
      if (!TRANSIENT.has(error.code) || this.#channels.get(channel) !== entry) return;
      const delay = this.#delay(entry.retries);
      entry.retries += 1;
      this.#event({ type: "error", channel, code: error.code, reason: error.reason, retryIn: delay });
      entry.timer = setTimeout(() => {
        if (this.#welcome && this.#channels.get(channel) === entry) this.#resubscribe(channel, entry);
      }, delay);
    });
  }

  #forget(channel, entry) {
    clearTimeout(entry.timer);
    if (this.#channels.get(channel) === entry) this.#channels.delete(channel);
  }

  // --- Token refresh ---------------------------------------------------------

  #scheduleRefresh(expiresAt) {
    clearTimeout(this.#refreshTimer);
    if (expiresAt == null) return;
    const left = expiresAt * 1000 - Date.now();
    const delay = Math.max(0, left - Math.min(REFRESH_AHEAD_MS, left / 2));
    this.#refreshTimer = delay > MAX_TIMER_MS
      ? setTimeout(() => this.#scheduleRefresh(expiresAt), MAX_TIMER_MS)
      : setTimeout(() => this.#refresh(expiresAt), delay);
  }

  async #refresh(expiresAt) {
    const welcome = this.#welcome;
    let token;
    try {
      token = await this.#getToken({ reason: "refresh" });
    } catch (error) {
      this.#event({ type: "error", code: "token", reason: String(error?.message ?? error) });
      return;
    }
    if (this.#welcome !== welcome || welcome === null) return;  // reconnected meanwhile
    this.#command("refresh", { token }).then(
      (reply) => {
        this.#event({ type: "refreshed", expiresAt: reply.expires_at });
        // A token that lives no longer is not refreshed again: at expiry the server
        // closes with 4001, and the reconnect asks getToken for a fresh one.
        if (reply.expires_at > expiresAt) this.#scheduleRefresh(reply.expires_at);
      },
      (error) => {
        if (error.code !== "disconnected" && error.code !== "closed") {
          this.#event({ type: "error", code: error.code, reason: error.reason });
        }
      },
    );
  }

  // --- Callbacks -------------------------------------------------------------

  #status(status) {
    this.#call(this.#onStatus, status);
  }

  #event(event) {
    this.#call(this.#onEvent, event);
  }

  #call(callback, value) {
    try {
      callback(value);
    } catch (error) {
      reportError(error);
    }
  }
}

function positionOf(frame) {
  return { offset: frame.offset, epoch: frame.epoch };
}
