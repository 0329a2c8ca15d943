// Follows OET's Server-Sent Events stream with fetch, not EventSource: OET names each message
// after its topic, which an EventSource only delivers to listeners registered for that exact
// name; fetch also lets a reconnect send Last-Event-ID and the token. Messages are handed on in
// the chunks they arrive in, so a burst costs one callback per network read, not one per event.

import { API_ROOT, authorised, tokenRefused } from "./api.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The server sends a keep-alive comment every 15 s: this long without a byte, the connection
// is dead even if no error said so (a network cut leaves no reset to notice).
const SILENCE_MS = 45_000;

export class EventStream {
  // onEvents(list of {id, topic, data}); onStatus("connecting"|"connected"|"disconnected", detail);
  // onOpen(reconnected): called on every successful (re)connection.
  constructor({ onEvents, onStatus, onOpen }) {
    this.onEvents = onEvents;
    this.onStatus = onStatus;
    this.onOpen = onOpen;
    this.lastId = null;
    this.connectedOnce = false;
  }

  async run() {
    let delay = 500;
    this.onStatus("connecting");
    for (;;) {
      let detail = "the server closed the stream";
      const abort = new AbortController();
      this.heard = Date.now();
      const watchdog = setInterval(() => {
        if (Date.now() - this.heard > SILENCE_MS) abort.abort(new Error("the server fell silent"));
      }, 5000);
      try {
        const headers = authorised({ Accept: "text/event-stream" });
        if (this.lastId) headers["Last-Event-ID"] = this.lastId;
        const response = await fetch(new URL("stream", API_ROOT), {
          headers,
          cache: "no-store",
          signal: abort.signal,
        });
        if (response.status === 401 && !(await tokenRefused(response))) continue;
        if (!response.ok) throw new Error(`the stream answered ${response.status}`);
        const reconnected = this.connectedOnce;
        this.connectedOnce = true;
        delay = 500;
        this.onStatus("connected");
        this.onOpen(reconnected);
        await this.read(response.body);
      } catch (error) {
        detail = error.message;
      } finally {
        clearInterval(watchdog);
      }
      this.onStatus("disconnected", detail);
      await sleep(delay);
      delay = Math.min(delay * 2, 4000);
    }
  }

  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let rest = "";
    let data = [];
    let topic = null;
    let id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      this.heard = Date.now();
      let text = rest + value;
      let held = "";
      if (text.endsWith("\r")) {
        held = "\r"; // may be the first half of a \r\n split across reads
        text = text.slice(0, -1);
      }
      const lines = text.split(/\r\n|\r|\n/);
      rest = lines.pop() + held;
      const messages = [];
      for (const line of lines) {
        if (line === "") {
          if (data.length) messages.push(this.message(id, topic, data.join("\n")));
          data = [];
          topic = null;
          id = null;
          continue;
        }
        if (line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const field = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "data") data.push(field);
        else if (name === "event") topic = field;
        else if (name === "id") id = field;
      }
      if (messages.length) this.onEvents(messages);
    }
  }

  message(id, topic, text) {
    if (id !== null) this.lastId = id;
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      data = { text };
    }
    if (!data || typeof data !== "object" || Array.isArray(data)) data = { value: data };
    return { id, topic: topic ?? data.topic ?? "message", data };
  }
}
