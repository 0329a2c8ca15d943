"""SQLite persistence for the embedded backend.

One row per procedure, the procedure as JSON beside its ID. IDs come from
AUTOINCREMENT, so a dropped procedure's ID is never handed out again.

The store proves it can write when it opens (a write rolled back), so a
read-only file or directory stops the server at start-up, not at the first
create.
"""

import json
import sqlite3
from pathlib import Path
from typing import Any

from oet.domain import (
    Procedure,
    ProcedureHistory,
    ProcedureInput,
    ProcedureState,
    StorageUnavailable,
)


def _body(procedure: Procedure) -> str:
    return json.dumps(
        {
            "script_uri": procedure.script_uri,
            "init": procedure.init_args.to_json(),
            "run": procedure.run_args.to_json(),
            "state": procedure.state.value,
            "history": procedure.history.to_json(),
        }
    )


def _procedure(pid: int, body: dict[str, Any]) -> Procedure:
    return Procedure(
        id=pid,
        script_uri=body["script_uri"],
        init_args=ProcedureInput.from_json(body["init"]),
        run_args=ProcedureInput.from_json(body["run"]),
        state=ProcedureState(body["state"]),
        history=ProcedureHistory.from_json(body["history"]),
    )


class ProcedureStore:
    """Procedures on disk. Every write is committed before it returns."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS procedures ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)"
            )
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO procedures (body) VALUES ('{}')")
            finally:
                self._db.execute("ROLLBACK")
        except (sqlite3.Error, OSError) as exc:
            raise StorageUnavailable(
                f"cannot write the procedure database {path}: {exc}"
                " (set OET_DB_PATH to a writable file)"
            ) from None

    def new_id(self) -> int:
        """Reserve the next procedure ID."""
        cursor = self._db.execute("INSERT INTO procedures (body) VALUES ('{}')")
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def save(self, procedure: Procedure) -> None:
        """Write the procedure's current record."""
        self._db.execute(
            "INSERT OR REPLACE INTO procedures (id, body) VALUES (?, ?)",
            (procedure.id, _body(procedure)),
        )

    def delete(self, pid: int) -> None:
        """Forget a procedure."""
        self._db.execute("DELETE FROM procedures WHERE id = ?", (pid,))

    def load_all(self) -> list[Procedure]:
        """Every stored procedure, oldest first; half-written rows are dropped."""
        procedures = []
        for pid, body in self._db.execute("SELECT id, body FROM procedures ORDER BY id"):
            try:
                procedures.append(_procedure(pid, json.loads(body)))
            except (KeyError, ValueError, TypeError):
                self.delete(pid)
        return procedures

    def write_problem(self) -> str | None:
        """Why the database cannot be written now, or None when it can (for /healthz)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            return f"the procedure database cannot be written: {exc}"
        return None

    def close(self) -> None:
        """Close the database."""
        self._db.close()
