"""The chart's files agree with their single sources: the CRD, the package version, the
test cluster's Pod settings, and the README's values table."""

import json
import re
import tomllib
from collections.abc import Iterator
from typing import Any

import yaml  # type: ignore[import-untyped]

from tests.chart import CHART, REPO

# Values whose README row covers everything under them (objects passed through whole).
WHOLE = ("resources",)


def leaf_keys(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted keys of values.yaml down to its leaves (resources objects count as one)."""
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and not key.endswith(WHOLE):
            yield from leaf_keys(value, dotted + ".")
        else:
            yield dotted


def readme_rows() -> list[str]:
    text = (CHART / "README.md").read_text()
    return re.findall(r"^\| `([^`]+)` \|", text, re.MULTILINE)


def test_the_chart_ships_the_crd_from_its_single_source_unchanged() -> None:
    shipped = (CHART / "crds" / "procedure.yaml").read_bytes()
    assert shipped == (REPO / "crds" / "procedure.yaml").read_bytes(), (
        "charts/oet/crds/procedure.yaml differs from crds/procedure.yaml: copy it over"
    )


def test_the_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_every_value_has_a_readme_row_and_every_row_a_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    keys = list(leaf_keys(values))
    rows = readme_rows()
    assert [k for k in keys if k not in rows] == [], "values without a README row"
    assert [r for r in rows if r not in keys] == [], "README rows for values that do not exist"


def test_every_value_is_commented_in_values_yaml() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z]\w*:", line) and not re.match(
            r"^\s+(requests|limits|cpu|memory):", line
        ):
            before = lines[number - 1].strip() if number else ""
            assert before.startswith("# --"), (
                f"values.yaml line {number + 1} has no comment: {line}"
            )


def test_the_schema_closes_every_object_section_the_chart_defines() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(values)
    for name, section in schema["properties"].items():
        if isinstance(values[name], dict) and name != "settings":
            assert section.get("additionalProperties") is False, name
    assert schema["properties"]["settings"]["properties"]["maxProcedures"]["minimum"] == 1


def test_the_chart_test_cluster_values_say_what_the_harness_applies() -> None:
    harness = yaml.safe_load((REPO / "k8s" / "testenv" / "cluster-values.yaml").read_text())
    chart = yaml.safe_load((CHART / "ci" / "test-cluster-values.yaml").read_text())
    assert chart["pods"]["hostNetwork"] == harness["hostNetwork"]
    assert chart["image"]["pullPolicy"] == harness["imagePullPolicy"]
    assert chart["pods"]["tolerations"] == harness["tolerations"]
    assert set(chart["pods"]["extraEnv"]) == set(harness["env"])
    host = "KUBERNETES_SERVICE_HOST"
    assert chart["pods"]["extraEnv"][host] == harness["env"][host]
