"""What the ``oet`` command prints: the tables and event lines of the user docs.

Pure functions from procedures and events to text, so the layout can be
tested without a server. Times are shown in the user's local time zone.
"""

import datetime
import json
import re
import time
from collections.abc import Sequence
from typing import Any

from oet.cli.client import ProcedureSummary, StreamEvent
from oet.domain import ProcedureInput


def local_time(timestamp: float, precise: bool = False) -> str:
    """A UNIX timestamp as local ``YYYY-MM-DD HH:MM:SS`` (with microseconds if ``precise``)."""
    when = datetime.datetime.fromtimestamp(timestamp)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f" if precise else "%Y-%m-%d %H:%M:%S")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, header first, no trailing spaces."""
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(line.rstrip() for line in lines)


def procedure_table(procedures: Sequence[ProcedureSummary]) -> str:
    """The ``ID  Script  Creation time  State`` table of ``oet list``, ``create`` and ``start``."""
    rows = [(p.id, p.script_uri, local_time(p.created_at), p.state) for p in procedures]
    return table(("ID", "Script", "Creation time", "State"), rows)


def _call_row(method: str, call: ProcedureInput) -> tuple[str, str, str]:
    return method, repr(list(call.args)), repr(call.kwargs)


def describe(procedure: ProcedureSummary) -> str:
    """Everything ``oet describe`` shows: identity, state history, call arguments, and
    the reason and stack trace when the procedure ended badly."""
    history = sorted(procedure.process_states.items(), key=lambda item: item[1])
    sections = [
        table(("ID", "Script", "URI"), [(procedure.id, procedure.script_uri, procedure.uri)]),
        table(("Time", "State"), [(local_time(t, precise=True), s) for s, t in history]),
        table(
            ("Method", "Arguments", "Keyword Arguments"),
            [_call_row("init", procedure.init), _call_row("run", procedure.run)],
        ),
    ]
    if procedure.reason:
        sections.append(f"Reason: {procedure.reason}")
    if procedure.stacktrace:
        sections.append(f"Stack trace:\n{procedure.stacktrace.rstrip()}")
    return "\n\n".join(sections)


def event_lines(event: StreamEvent) -> str:
    """One event as ``oet listen --raw`` prints it: its ``id:``, ``event:`` and ``data:`` lines."""
    data = "\n".join(f"data: {line}" for line in event.data.split("\n"))
    ident = f"id: {event.id}\n" if event.id is not None else ""
    return f"{ident}event: {event.topic}\n{data}\n"


_ENVELOPE = frozenset({"id", "topic", "time", "procedure_id", "source", "payload"})
_BARE = re.compile(r"[^\s\"'=]+")


def _value(value: object) -> str:
    if isinstance(value, str) and _BARE.fullmatch(value):
        return value
    return json.dumps(value, ensure_ascii=False, default=repr)


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    """The message's own fields; a lifecycle event's procedure as its state and script."""
    payload = data.get("payload")
    if not isinstance(payload, dict):
        payload = {k: v for k, v in data.items() if k not in _ENVELOPE}
    procedure = payload.get("procedure")
    if isinstance(procedure, dict) and "state" in procedure:
        history = procedure.get("history") or {}
        fields = {"state": procedure.get("state"), "script": procedure.get("script_uri")}
        if isinstance(history, dict) and history.get("reason"):
            fields["reason"] = history["reason"]
        return fields
    return payload


def event_line(event: StreamEvent) -> str:
    """One event as ``oet listen`` prints it: local time, topic, procedure and fields.

    ``2026-11-30 04:12:03.123  user.script.hello  pid=1  greeting="Hello, Ada!"``.
    Always one line: values are shown as JSON (bare when they are a plain word).
    """
    try:
        data = json.loads(event.data)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        text = " ".join(event.data.split())
        return f"{local_time(time.time(), precise=True)[:-3]}  {event.topic}  {text}"
    when = data.get("time")
    stamp = local_time(when if isinstance(when, int | float) else time.time(), precise=True)
    pid = data.get("procedure_id")
    fields = "  ".join(f"{k}={_value(v)}" for k, v in _fields(data).items())
    line = f"{stamp[:-3]}  {event.topic}  pid={pid if pid is not None else '-'}"
    return f"{line}  {fields}" if fields else line
