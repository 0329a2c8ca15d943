// What the operator can do from the page: create, start, stop, stop and abort (after a
// confirmation naming the subarray), discard (after a confirmation), and give the API token
// when the server asks for one.

import { call, setToken, token, whenTokenNeeded } from "./api.js";
import { abortQuestion, discardQuestion } from "./detail.js";
import { pidOf } from "./format.js";

const $ = (id) => document.getElementById(id);

// `ui` is the page's state and views: procedures, selected(), upsert, forget, choose, render,
// refetch, notify, clearNotice.
let ui;

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
  ui.clearNotice();
  try {
    await work();
  } catch (error) {
    ui.notify(error.message);
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
    ui.upsert(procedure);
    ui.choose(pidOf(procedure), true);
    if (procedure.state === "FAILED") ui.notify(`Procedure ${pidOf(procedure)} failed in init: see its stack trace`);
  });
}

async function startSelected(event) {
  event.preventDefault();
  const pid = ui.selected();
  const form = event.target;
  await busy($("start-button"), "Starting…", async () => {
    const body = { state: "RUNNING" };
    const { args, kwargs } = form.elements;
    if (args.value.trim() || kwargs.value.trim()) {
      body.script_args = { run: { args: parsed(args.value, "run args", "list"), kwargs: parsed(kwargs.value, "run kwargs", "object") } };
    }
    const { procedure } = await call("PUT", `procedures/${pid}`, body);
    ui.upsert(procedure);
    form.reset();
    ui.render();
  });
}

async function stopSelected(abort, button) {
  const pid = ui.selected();
  await busy(button, "Stopping…", async () => {
    const answer = await call("PUT", `procedures/${pid}`, { state: "STOPPED", abort });
    ui.notify(answer.abort_message ?? `Procedure ${pid} stopped`, "info");
    ui.refetch(pid);
  });
}

function confirmAbort() {
  const procedure = ui.procedures.get(ui.selected());
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

async function discardSelected() {
  const pid = ui.selected();
  await busy($("discard-button"), "Discarding…", async () => {
    await call("DELETE", `procedures/${pid}`);
    ui.forget(pid);
    ui.notify(`Procedure ${pid} discarded`, "info");
  });
}

function confirmDiscard() {
  const procedure = ui.procedures.get(ui.selected());
  if (!procedure) return;
  $("discard-question").textContent = discardQuestion(procedure);
  const dialog = $("discard-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  dialog.addEventListener(
    "close",
    () => {
      if (dialog.returnValue === "confirm") discardSelected();
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

export function wireActions(page) {
  ui = page;
  whenTokenNeeded(askToken);
  $("create-form").addEventListener("submit", create);
  $("start-form").addEventListener("submit", startSelected);
  $("stop-button").addEventListener("click", () => stopSelected(false, $("stop-button")));
  $("abort-button").addEventListener("click", confirmAbort);
  $("discard-button").addEventListener("click", confirmDiscard);
  // Enter in the token field submits with "Use token", so Cancel is not a submit button.
  $("token-cancel").addEventListener("click", () => $("token-dialog").close("cancel"));
  $("token-button").addEventListener("click", async () => {
    const given = await askToken("The token is sent with every request from this tab.");
    if (given) setToken(given);
  });
}
