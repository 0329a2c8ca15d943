// The event log: every event kept in memory (bounded), the newest few hundred matching the
// topic filter drawn, appended in one batch per animation frame; paused, it stops moving.

import { clock, eventFields } from "./format.js";

const KEPT = 5000; // events remembered for filtering and per-procedure views
const DRAWN = 400; // rows in the log at most
const PER_PROCEDURE = 200;

export function eventRow(event) {
  const row = document.createElement("li");
  const { data } = event;
  row.dataset.topic = event.topic;
  if (event.id !== null) row.dataset.id = event.id;
  if (typeof data.time === "number") row.dataset.time = data.time;
  const when = document.createElement("time");
  when.textContent = clock(data.time, true);
  const pid = document.createElement("span");
  pid.className = "pid";
  pid.textContent = data.procedure_id == null ? "" : `#${data.procedure_id}`;
  const topic = document.createElement("span");
  topic.className = "topic";
  topic.textContent = event.topic;
  const fields = document.createElement("span");
  fields.className = "fields";
  for (const [key, value] of eventFields(data)) {
    const field = document.createElement("span");
    field.className = "field";
    const text = `${key}=${value}`;
    field.textContent = text.length > 300 ? `${text.slice(0, 300)}…` : text;
    if (text.length > 300) field.title = text;
    fields.append(field);
  }
  if (event.topic.startsWith("procedure.lifecycle.failed")) row.classList.add("bad");
  if (event.topic === "stream.resync" || event.topic === "console.gap") row.classList.add("gap");
  row.append(when, " ", pid, " ", topic, " ", fields);
  return row;
}

export class EventLog {
  constructor(list, counter) {
    this.list = list;
    this.counter = counter;
    this.events = [];
    this.byProcedure = new Map();
    this.filter = "";
    this.hideRequests = true;
    this.paused = false;
    this.waiting = 0;
    this.total = 0;
  }

  matches(event) {
    if (this.hideRequests && event.topic.startsWith("request.")) return false;
    return !this.filter || event.topic.toLowerCase().includes(this.filter);
  }

  // Remember a batch of events and, unless paused, draw the ones that match.
  add(batch) {
    this.total += batch.length;
    this.events.push(...batch);
    if (this.events.length > KEPT) this.events.splice(0, this.events.length - KEPT);
    for (const event of batch) {
      const pid = event.data.procedure_id;
      if (pid == null) continue;
      let own = this.byProcedure.get(pid);
      if (!own) this.byProcedure.set(pid, (own = []));
      own.push(event);
      if (own.length > PER_PROCEDURE) own.splice(0, own.length - PER_PROCEDURE);
    }
    const shown = batch.filter((event) => this.matches(event));
    if (this.paused) this.waiting += shown.length;
    else this.append(shown);
    this.count();
  }

  append(events) {
    // Follow the newest only if the operator has not scrolled up to read.
    const list = this.list;
    const following = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    const fragment = document.createDocumentFragment();
    for (const event of events.slice(-DRAWN)) fragment.append(eventRow(event));
    this.list.append(fragment);
    const extra = this.list.childElementCount - DRAWN;
    for (let i = 0; i < extra; i++) this.list.firstElementChild.remove();
    if (following) list.scrollTop = list.scrollHeight;
  }

  redraw() {
    this.list.replaceChildren();
    this.list.scrollTop = 0;
    this.append(this.events.filter((event) => this.matches(event)));
    this.waiting = 0;
    this.count();
  }

  setFilter(text, hideRequests) {
    this.filter = text.trim().toLowerCase();
    this.hideRequests = hideRequests;
    this.redraw();
  }

  setPaused(paused) {
    this.paused = paused;
    if (!paused) this.redraw();
    this.count();
  }

  count() {
    const held = this.paused ? ` · paused, ${this.waiting} new` : "";
    this.counter.textContent = `${this.total} received${held}`;
  }

  of(pid) {
    return this.byProcedure.get(pid) ?? [];
  }
}
