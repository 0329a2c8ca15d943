// The live procedures table: one row per procedure, newest first, kept in place between updates
// so that keyboard focus and selection survive the stream.

import { createdAt, dateTime, duration, pidOf, ranFor, subarrayOf, whenCreated } from "./format.js";

export function stateBadge(state) {
  const badge = document.createElement("span");
  badge.className = `state state-${state}`;
  badge.textContent = state;
  return badge;
}

function cells(row, procedure, now) {
  const values = [
    String(pidOf(procedure)),
    procedure.script_uri,
    null,
    subarrayOf(procedure) ?? "—",
    whenCreated(createdAt(procedure)),
    duration(ranFor(procedure, now)),
  ];
  values.forEach((value, index) => {
    const cell = row.children[index];
    if (index === 2) {
      if (cell.dataset.state !== procedure.state) {
        cell.dataset.state = procedure.state;
        cell.replaceChildren(stateBadge(procedure.state));
      }
    } else if (cell.textContent !== String(value)) {
      cell.textContent = String(value);
    }
  });
  row.children[1].title = procedure.script_uri;
  row.children[4].title = dateTime(createdAt(procedure));
}

export class ProcedureTable {
  constructor(table, empty, onChoose) {
    this.body = table.tBodies[0];
    this.empty = empty;
    this.rows = new Map();
    this.onChoose = onChoose;
    this.body.addEventListener("click", (event) => {
      const row = event.target.closest("tr");
      if (row) onChoose(Number(row.dataset.pid), true);
    });
    this.body.addEventListener("keydown", (event) => this.key(event));
  }

  key(event) {
    const row = event.target.closest("tr");
    if (!row) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.onChoose(Number(row.dataset.pid), false);
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const next = event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
      if (next) {
        next.focus();
        this.onChoose(Number(next.dataset.pid), false);
      }
    }
  }

  focusFirst() {
    const chosen = this.body.querySelector('tr[aria-selected="true"]') ?? this.body.firstElementChild;
    if (!chosen) return;
    chosen.focus();
    this.onChoose(Number(chosen.dataset.pid), false);
  }

  render(procedures, selected, now = Date.now() / 1000) {
    const ordered = [...procedures.values()].sort((a, b) => pidOf(b) - pidOf(a));
    const seen = new Set();
    let previous = null;
    for (const procedure of ordered) {
      const pid = pidOf(procedure);
      seen.add(pid);
      let row = this.rows.get(pid);
      if (!row) {
        row = document.createElement("tr");
        row.dataset.pid = pid;
        row.tabIndex = 0;
        for (let i = 0; i < 6; i++) row.append(document.createElement("td"));
        this.rows.set(pid, row);
      }
      cells(row, procedure, now);
      row.setAttribute("aria-selected", String(pid === selected));
      const wanted = previous ? previous.nextElementSibling : this.body.firstElementChild;
      if (wanted !== row) this.body.insertBefore(row, wanted);
      previous = row;
    }
    for (const [pid, row] of this.rows) {
      if (!seen.has(pid)) {
        row.remove();
        this.rows.delete(pid);
      }
    }
    this.empty.hidden = ordered.length > 0;
  }
}
