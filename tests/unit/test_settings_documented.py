"""Every setting is documented in the README's settings tables, with its default."""

import json
import re
from pathlib import Path

import pytest

from oet.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(?P<name>[a-z_]+)` \| (?P<default>[^|]*) \|", re.MULTILINE)


def documented() -> dict[str, str]:
    return {m["name"]: m["default"].strip() for m in ROW.finditer(README.read_text())}


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_the_setting_has_a_readme_row(name: str) -> None:
    assert name in documented(), f"README.md has no settings row for {name}"


@pytest.mark.parametrize(
    "name",
    [
        "runner_image",
        "runner_image_pull_policy",
        "runner_service_account",
        "runner_resources",
        "runner_job_ttl",
        "runner_deadline",
        "runner_start_timeout",
        "runner_pod_overrides",
    ],
)
def test_the_kubernetes_defaults_in_the_readme_are_the_real_ones(name: str) -> None:
    shown = documented()[name].strip("`")
    default = Settings.model_fields[name].get_default(call_default_factory=True)
    if isinstance(default, dict):
        assert json.loads(shown) == default
    else:
        assert shown == f"{default:g}" if isinstance(default, float) else shown == str(default)
