// The console's wiring: the stream feeds a queue, one animation frame drains it into the
// procedures, the table, the detail and the log; buttons call the REST API.

import { wireActions } from "./actions.js";
import { call } from "./api.js";
import { renderDetail, renderOwnEvents } from "./detail.js";
import { FINAL, clock, isNewer, pidOf, procedureIn } from "./format.js";
import { EventLog } from "./log.js";
import { EventStream } from "./stream.js";
import { ProcedureTable } from "./table.js";

const $ = (id) => document.getElementById(id);

const procedures = new Map();
let selected = null;
let queue = [];
let frameAsked = false;
const refetching = new Set();

const log = new EventLog($("events"), $("log-count"));
const table = new ProcedureTable($("procedures"), $("no-procedures"), choose);

function render() {
  table.render(procedures, selected);
  renderDetail(procedures.get(selected), log.of(selected));
}

function choose(pid, focusDetail) {
  selected = pid;
  render();
  if (focusDetail) $("detail-title").scrollIntoView({ block: "nearest" });
}

const touched = new Map(); // pid -> when an event or answer last brought it (performance.now())

function upsert(procedure) {
  const pid = pidOf(procedure);
  touched.set(pid, performance.now());
  if (isNewer(procedure, procedures.get(pid))) procedures.set(pid, procedure);
}

// A procedure the server no longer has (discarded): it leaves the page at once.
function forget(pid) {
  procedures.delete(pid);
  touched.delete(pid);
  if (selected === pid) selected = null;
  render();
}

function notify(text, kind = "error") {
  const notice = $("notice");
  notice.dataset.kind = kind;
  notice.textContent = text;
  notice.hidden = false;
}

function clearNotice() {
  $("notice").hidden = true;
}

// -- keeping up with the server --------------------------------------------------------

const UNREAD = "Could not read the procedures";

// Replace what the page knows with the server's list. A procedure the list lacks is dropped
// (retention), unless news of it arrived after the list was asked for.
async function resync() {
  const asked = performance.now();
  try {
    const { procedures: listing } = await call("GET", "procedures");
    const current = new Map(procedures);
    procedures.clear();
    for (const procedure of listing) {
      const pid = pidOf(procedure);
      const known = current.get(pid);
      procedures.set(pid, known && !isNewer(procedure, known) ? known : procedure);
    }
    for (const [pid, known] of current) {
      if (!procedures.has(pid) && (touched.get(pid) ?? 0) > asked) procedures.set(pid, known);
    }
    for (const pid of touched.keys()) if (!procedures.has(pid)) touched.delete(pid);
    if (selected !== null && !procedures.has(selected)) selected = null;
    if ($("notice").textContent.startsWith(UNREAD)) clearNotice();
    render();
  } catch (error) {
    notify(`${UNREAD}: ${error.message}`);
  }
}

let resyncTimer = null;

function resyncSoon() {
  clearTimeout(resyncTimer);
  resyncTimer = setTimeout(resync, 300);
}

async function refetch(pid) {
  if (refetching.has(pid)) return;
  refetching.add(pid);
  try {
    upsert((await call("GET", `procedures/${pid}`)).procedure);
    render();
  } catch {
    // gone (retention) or unreachable: the next resync settles it
  } finally {
    refetching.delete(pid);
  }
}

function drain() {
  frameAsked = false;
  const batch = queue;
  queue = [];
  let changed = false;
  let ownChanged = false;
  for (const event of batch) {
    const pid = event.data.procedure_id;
    if (pid === selected && pid != null) ownChanged = true;
    if (event.topic === "stream.resync") {
      resync();
    } else if (event.topic.startsWith("procedure.lifecycle.")) {
      const procedure = procedureIn(event.data);
      if (procedure) {
        upsert(procedure);
        changed = true;
      } else if (pid != null) {
        refetch(pid);
      }
    } else if (event.topic === "request.procedure.stop" && pid != null) {
      setTimeout(() => refetch(pid), 100); // shows STOPPING while the script is interrupted
    } else if (event.topic === "request.procedure.discard") {
      resyncSoon(); // another tab or the CLI discarded one: the list no longer holds it
    } else if (event.topic === "request.procedure.create") {
      resyncSoon(); // shows INITIALISING while a slow init runs (it has no event of its own)
    }
  }
  log.add(batch);
  if (changed) render();
  else if (ownChanged) renderOwnEvents(log.of(selected));
}

function received(events) {
  queue.push(...events);
  if (!frameAsked) {
    frameAsked = true;
    requestAnimationFrame(drain);
  }
}

function connection(state, detail) {
  const box = $("connection");
  const label = box.querySelector(".label");
  if (state === "disconnected" && box.dataset.state === "disconnected") return;
  box.dataset.state = state;
  const now = clock(Date.now() / 1000);
  label.textContent =
    state === "connected"
      ? `Live since ${now}`
      : state === "disconnected"
        ? `Disconnected at ${now}: reconnecting…`
        : "Connecting…";
  box.title = detail ?? "";
}

function opened(reconnected) {
  if (reconnected) {
    const note = { id: null, topic: "console.gap", data: { time: Date.now() / 1000, note: "reconnected; procedures re-read" } };
    received([note]);
  }
  resync();
}

// -- keyboard --------------------------------------------------------------------------

function shortcut(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (document.querySelector("dialog[open]")) return;
  if (event.target.closest("input, textarea, select")) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (event.key === "/") {
    event.preventDefault();
    $("topic-filter").focus();
  } else if (event.key === "n") {
    event.preventDefault();
    $("create-panel").open = true;
    $("create-form").elements.script_uri.focus();
  } else if (event.key === "p") {
    $("pause-button").click();
  } else if ((event.key === "ArrowDown" || event.key === "ArrowUp") && !event.target.closest("tr")) {
    event.preventDefault();
    table.focusFirst();
  }
}

function togglePause() {
  const button = $("pause-button");
  const paused = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(paused));
  button.textContent = paused ? "Resume" : "Pause";
  log.setPaused(paused);
}

function filterChanged() {
  log.setFilter($("topic-filter").value, $("hide-requests").checked);
}

wireActions({ procedures, selected: () => selected, upsert, forget, choose, render, refetch, notify, clearNotice });
$("pause-button").addEventListener("click", togglePause);
$("topic-filter").addEventListener("input", filterChanged);
$("hide-requests").addEventListener("change", filterChanged);
$("notice").addEventListener("click", clearNotice);
document.addEventListener("keydown", shortcut);
// Durations of running procedures tick without any event.
setInterval(() => {
  if (![...procedures.values()].some((p) => !FINAL.has(p.state))) return;
  table.render(procedures, selected);
  renderDetail(procedures.get(selected), null);
}, 1000);

new EventStream({ onEvents: received, onStatus: connection, onOpen: opened }).run();
