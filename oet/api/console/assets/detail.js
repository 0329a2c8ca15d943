// One procedure in full: what it was given, its states drawn as a timeline, why it ended,
// the traceback of a failure, its own events, and the actions its state allows.

import { FINAL, clock, duration, pidOf, statesOf, subarrayOf } from "./format.js";
import { eventRow } from "./log.js";
import { stateBadge } from "./table.js";

const $ = (id) => document.getElementById(id);

function timeline(procedure, now) {
  const states = statesOf(procedure);
  const live = !FINAL.has(procedure.state);
  const bar = document.createDocumentFragment();
  const items = document.createDocumentFragment();
  states.forEach(([name, since], index) => {
    const until = index + 1 < states.length ? states[index + 1][1] : live ? now : null;
    const segment = document.createElement("div");
    segment.className = `segment state-${name}`;
    const lasted = until === null ? null : until - since;
    if (lasted === null) segment.classList.add("point");
    else segment.style.flexGrow = String(Math.max(lasted, 0.001));
    segment.textContent = lasted === null ? name : `${name} ${duration(lasted)}`;
    segment.title = `${name} at ${clock(since, true)}`;
    bar.append(segment);
    const item = document.createElement("li");
    item.append(stateBadge(name), ` at ${clock(since, true)}`);
    if (lasted !== null) item.append(` for ${duration(lasted)}${index + 1 < states.length ? "" : " so far"}`);
    items.append(item);
  });
  $("timeline").replaceChildren(bar);
  $("history").replaceChildren(items);
}

function argumentsOf(procedure) {
  const list = document.createDocumentFragment();
  for (const phase of ["init", "run"]) {
    const given = procedure.script_args?.[phase] ?? {};
    for (const part of ["args", "kwargs"]) {
      const term = document.createElement("dt");
      term.textContent = `${phase} ${part}`;
      const value = document.createElement("dd");
      value.textContent = JSON.stringify(given[part] ?? (part === "args" ? [] : {}));
      list.append(term, value);
    }
  }
  $("arguments").replaceChildren(list);
}

// `ownEvents` null leaves the procedure's event list as it is (a clock tick, say).
export function renderDetail(procedure, ownEvents, now = Date.now() / 1000) {
  const body = $("detail-body");
  if (!procedure) {
    $("detail-title").textContent = "Choose a procedure";
    body.hidden = true;
    return;
  }
  const pid = pidOf(procedure);
  const title = $("detail-title");
  title.replaceChildren(`Procedure ${pid} `, stateBadge(procedure.state));
  title.dataset.pid = pid;
  body.hidden = false;
  timeline(procedure, now);
  argumentsOf(procedure);
  const { reason, stacktrace } = procedure.history ?? {};
  $("reason-block").hidden = !reason;
  $("reason").textContent = reason ?? "";
  $("trace-block").hidden = !stacktrace;
  $("stacktrace").textContent = stacktrace ?? "";
  $("start-form").hidden = procedure.state !== "CREATED";
  // Only a running script can be stopped: CREATED or ended procedures have nothing to interrupt.
  const running = procedure.state === "RUNNING";
  $("stop-button").hidden = !running;
  $("abort-button").hidden = !running;
  // Discard is for what will not (or no longer) run: its script is not executing.
  $("discard-button").hidden = !(procedure.state === "CREATED" || FINAL.has(procedure.state));
  const run = procedure.script_args?.run ?? {};
  const form = $("start-form");
  form.elements.args.placeholder = JSON.stringify(run.args ?? []);
  form.elements.kwargs.placeholder = JSON.stringify(run.kwargs ?? {});
  if (ownEvents) renderOwnEvents(ownEvents);
}

export function renderOwnEvents(ownEvents) {
  const rows = document.createDocumentFragment();
  for (const event of ownEvents.slice(-100)) rows.append(eventRow(event));
  const list = $("detail-events");
  list.replaceChildren(rows);
  list.scrollTop = list.scrollHeight;
}

export function discardQuestion(procedure) {
  const never = procedure.state === "CREATED" ? "; its script will never run" : "";
  return `Discard procedure ${pidOf(procedure)} (${procedure.script_uri}, ${procedure.state})${never}? It leaves the list for good; nothing is aborted.`;
}

export function abortQuestion(procedure) {
  const subarray = subarrayOf(procedure);
  const target = subarray == null ? "its subarray (none was given at creation)" : `subarray ${subarray}`;
  return {
    question: `Stop procedure ${pidOf(procedure)} (${procedure.script_uri}) and send Abort to ${target}?`,
    confirm: subarray == null ? "Stop and abort" : `Stop and abort subarray ${subarray}`,
  };
}
