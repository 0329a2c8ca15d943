"""The node's image template cache: superseded templates do not pile up, changed ones are not used.

These run `k8s/testenv/node_template.py` (a script module, like the rest of `k8s/testenv`) in a
subprocess on a cache directory of their own, with stand-in template directories: what is
checked is which directories survive, not containerd (test_harness.py runs a cluster from a
real template and checks that the template comes out unchanged).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.k8s.cluster import REPO

TESTENV = REPO / "k8s" / "testenv"


def _node_template(cache: Path, code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", f"import node_template\n{code}"],
        cwd=TESTENV, env={**os.environ, "OET_CACHE_DIR": str(cache)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _template(templates: Path, name: str, age_seconds: float) -> Path:
    directory = templates / name
    (directory / "root").mkdir(parents=True)
    then = time.time() - age_seconds
    os.utime(directory, (then, then))
    return directory


def test_prune_keeps_the_newest_templates_and_those_used_lately(tmp_path: Path) -> None:
    templates = tmp_path / "node-templates"
    ages = {"current": 0, "b": 600, "c": 1800, "d": 2400, "old1": 7200, "old2": 10800}
    for name, age in ages.items():
        _template(templates, name, age)
    _template(templates, ".building-crashed", 7200)
    _template(templates, ".building-running", 60)

    current = templates / "current"
    _node_template(tmp_path, f"node_template.prune(__import__('pathlib').Path('{current}'))")

    left = sorted(p.name for p in templates.iterdir())
    # The newest three stay; "d" is beyond them but was named within the last hour.
    assert left == [".building-running", "b", "c", "current", "d"]


def test_a_template_whose_databases_changed_is_not_intact(tmp_path: Path) -> None:
    template = _template(tmp_path / "node-templates", "key", 0)
    database = template / "root" / "io.containerd.metadata.v1.bolt" / "meta.db"
    database.parent.mkdir()
    database.write_bytes(b"bolt")
    _node_template(
        tmp_path,
        f"""
from pathlib import Path
record = {{"mutable": node_template.mutable_states(Path('{template}') / 'root')}}
(Path('{template}') / 'template.json').write_text(__import__('json').dumps(record))
""",
    )
    check = f"print(node_template.intact(__import__('pathlib').Path('{template}')))"
    assert _node_template(tmp_path, check).strip() == "True"
    assert json.loads((template / "template.json").read_text())["mutable"]

    database.write_bytes(b"bolt, written by a containerd")

    assert _node_template(tmp_path, check).strip() == "False"
