// Pure helpers shared by the console's views: times, durations, procedure fields, event fields.

export const FINAL = new Set(["COMPLETED", "FAILED", "STOPPED"]);

// Fields of an event's data that OET itself sets; everything else came from the script.
const OWNED = new Set(["id", "topic", "time", "procedure_id", "source", "payload"]);

export function pidOf(procedure) {
  return Number(procedure.uri.split("/").pop());
}

export function subarrayOf(procedure) {
  const kwargs = procedure.script_args?.init?.kwargs ?? {};
  return kwargs.subarray_id ?? null;
}

// State -> UNIX time entered, in the order the server gives (the order they happened).
export function statesOf(procedure) {
  return Object.entries(procedure.history?.process_states ?? {});
}

export function createdAt(procedure) {
  const times = statesOf(procedure).map(([, t]) => t);
  return times.length ? Math.min(...times) : null;
}

// The newest time anything happened to a procedure: lets a late, older copy be ignored.
export function freshness(procedure) {
  const states = statesOf(procedure);
  return [states.length, Math.max(0, ...states.map(([, t]) => t))];
}

export function isNewer(candidate, current) {
  if (!current) return true;
  const [n1, t1] = freshness(candidate);
  const [n0, t0] = freshness(current);
  return n1 > n0 || (n1 === n0 && t1 >= t0);
}

// How long run() executed: from RUNNING to the next state, or until now while it lasts.
export function ranFor(procedure, now) {
  const states = statesOf(procedure);
  const index = states.findIndex(([name]) => name === "RUNNING");
  if (index < 0) return null;
  const started = states[index][1];
  const ended = FINAL.has(procedure.state)
    ? Math.max(...states.slice(index + 1).map(([, t]) => t), started)
    : now;
  return Math.max(0, ended - started);
}

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

export function clock(seconds, withMillis = false) {
  if (seconds == null) return "—";
  const d = new Date(seconds * 1000);
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return withMillis ? `${hms}.${pad(d.getMilliseconds(), 3)}` : hms;
}

export function dateTime(seconds) {
  if (seconds == null) return "—";
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(seconds)}`;
}

// Today's times as a clock; older ones with their date.
export function whenCreated(seconds) {
  if (seconds == null) return "—";
  const today = new Date().toDateString() === new Date(seconds * 1000).toDateString();
  return today ? clock(seconds) : dateTime(seconds);
}

export function duration(seconds) {
  if (seconds == null) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h) return `${h} h ${pad(m)} min`;
  if (m) return `${m} min ${pad(s % 60)} s`;
  return `${s} s`;
}

function short(value) {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof value.state === "string" && value.uri) {
    return `#${pidOf(value)} ${value.state}`; // a procedure carried by a lifecycle event
  }
  return JSON.stringify(value);
}

// The fields an event carries besides OET's own, each once, whichever shape the stream
// uses: the server puts a message's keyword arguments at the top level and again under
// `payload`, where a keyword named like one of OET's own fields is only found.
export function eventFields(data) {
  const fields = new Map();
  for (const [key, value] of Object.entries(data)) {
    if (!OWNED.has(key)) fields.set(key, short(value));
  }
  const payload = data.payload;
  if (payload && typeof payload === "object" && !Array.isArray(payload)) {
    for (const [key, value] of Object.entries(payload)) {
      if (!fields.has(key)) fields.set(key, short(value));
    }
  }
  return [...fields];
}

// The procedure a lifecycle event carries, in either shape of the stream.
export function procedureIn(data) {
  const candidate = data.payload?.procedure ?? data.procedure;
  return candidate && typeof candidate === "object" && candidate.uri ? candidate : null;
}
