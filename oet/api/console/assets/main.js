// The console's wiring: the stream feeds a queue, one animation frame drains it into the
// procedures, the table, the detail and the log; buttons call the REST API.

import { call, setToken, token, whenTokenNeeded } from "./api.js";
import { abortQuestion, renderDetail, renderOwnEvents } from "./detail.js";
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

function upsert(procedure) {
  const pid = pidOf(procedure);
  if (isNewer(procedure, procedures.get(pid))) procedures.set(pid, procedure);
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

async function resync() {
  try {
    const { procedures: listing } = await call("GET", "procedures");
    const current = new Map(procedures);
    procedures.clear();
    for (const procedure of listing) {
      const pid = pidOf(procedure);
      const known = current.get(pid);
      procedures.set(pid, known && !isNewer(procedure, known) ? known : procedure);
    }
    if (selected !== null && !procedures.has(selected)) selected = null;
    render();
  } catch (error) {
    notify(`Could not read the procedures: ${error.message}`);
  }
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

// -- actions -------------------------------------------------------------------------

function parsed(text, what, kind) {
  if (!text.trim()) return kind === "list" ? [] : {};
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${what} is not valid JSON: ${text}`);
  }
  const ok = kind === "list" ? Array.isArray(value) : value && typeof value === "object" && !Array.isArray(value);
  if (!ok) throw new Error(`${what} must be a JSON ${kind === "list" ? 'list, e.g. ["a", 1]' : 'object, e.g. {"key": 1}'}`);
  return value;
}

async function busy(button, label, work) {
  const was = button.textContent;
  button.disabled = true;
  button.textContent = label;
  clearNotice();
  try {
    await work();
  } catch (error) {
    notify(error.message);
  } finally {
    button.disabled = false;
    button.textContent = was;
  }
}

async function create(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button");
  await busy(button, "Creating…", async () => {
    const args = parsed(form.elements.args.value, "init args", "list");
    const kwargs = parsed(form.elements.kwargs.value, "init kwargs", "object");
    const subarray = form.elements.subarray_id.value.trim();
    if (subarray) kwargs.subarray_id = /^\d+$/.test(subarray) ? Number(subarray) : subarray;
    const body = { script_uri: form.elements.script_uri.value.trim(), script_args: { init: { args, kwargs } } };
    const { procedure } = await call("POST", "procedures", body);
    upsert(procedure);
    choose(pidOf(procedure), true);
    if (procedure.state === "FAILED") notify(`Procedure ${pidOf(procedure)} failed in init: see its stack trace`);
  });
}

async function startSelected(event) {
  event.preventDefault();
  const pid = selected;
  const form = event.target;
  await busy($("start-button"), "Starting…", async () => {
    const body = { state: "RUNNING" };
    const { args, kwargs } = form.elements;
    if (args.value.trim() || kwargs.value.trim()) {
      body.script_args = { run: { args: parsed(args.value, "run args", "list"), kwargs: parsed(kwargs.value, "run kwargs", "object") } };
    }
    const { procedure } = await call("PUT", `procedures/${pid}`, body);
    upsert(procedure);
    form.reset();
    render();
  });
}

async function stopSelected(abort, button) {
  const pid = selected;
  await busy(button, "Stopping…", async () => {
    const answer = await call("PUT", `procedures/${pid}`, { state: "STOPPED", abort });
    notify(answer.abort_message ?? `Procedure ${pid} stopped`, "info");
    refetch(pid);
  });
}

function confirmAbort() {
  const procedure = procedures.get(selected);
  if (!procedure) return;
  const { question, confirm } = abortQuestion(procedure);
  $("abort-question").textContent = question;
  $("abort-confirm").textContent = confirm;
  const dialog = $("abort-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  dialog.addEventListener(
    "close",
    () => {
      if (dialog.returnValue === "confirm") stopSelected(true, $("abort-button"));
    },
    { once: true },
  );
}

function askToken(reason) {
  const dialog = $("token-dialog");
  $("token-reason").textContent = reason ?? "This OET server asks for a token to change procedures.";
  $("token-input").value = token() ?? "";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "confirm" ? $("token-input").value.trim() || null : null),
      { once: true },
    );
  });
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

whenTokenNeeded(askToken);
$("create-form").addEventListener("submit", create);
$("start-form").addEventListener("submit", startSelected);
$("stop-button").addEventListener("click", () => stopSelected(false, $("stop-button")));
$("abort-button").addEventListener("click", confirmAbort);
$("token-button").addEventListener("click", async () => {
  const given = await askToken("The token is sent with every request from this tab.");
  if (given) setToken(given);
});
$("pause-button").addEventListener("click", togglePause);
$("topic-filter").addEventListener("input", filterChanged);
$("hide-requests").addEventListener("change", filterChanged);
$("notice").addEventListener("click", clearNotice);
document.addEventListener("keydown", shortcut);
// Durations of running procedures tick without any event.
setInterval(() => {
  if ([...procedures.values()].some((p) => !FINAL.has(p.state))) render();
}, 1000);

new EventStream({ onEvents: received, onStatus: connection, onOpen: opened }).run();
