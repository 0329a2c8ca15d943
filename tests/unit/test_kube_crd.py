"""The CRD in crds/procedure.yaml agrees with oet.kube and accepts what OET writes.

The schema is checked as JSON Schema here (types, enums, limits, patterns, and
that nothing OET writes would be pruned by the API server). Its CEL rules and
the API server's own checks of the CRD need a real control plane and are not
covered by these unit tests.
"""

import copy
import datetime
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from oet.domain import ProcedureState
from oet.kube import from_custom_resource, names, to_custom_resource
from oet.kube.resource import AbortOutcome, RunnerRef
from oet.kube.status import status_patch_for
from tests.unit.kube_fixtures import PATHS, procedure, resource

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "procedure.yaml"
S = ProcedureState


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return loaded


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    return dict(only)


def json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI v3 (Kubernetes flavour) schema as strict JSON Schema.

    Objects with ``properties`` refuse other keys: the API server would prune
    them silently, which for OET means data lost without an error.
    """
    out: dict[str, Any] = {
        k: v
        for k, v in node.items()
        if k in ("type", "enum", "minimum", "maxLength", "minLength", "pattern", "maxItems")
        or k in ("required", "format")
    }
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in node:
        out["properties"] = {k: json_schema(v) for k, v in node["properties"].items()}
        out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = json_schema(node["additionalProperties"])
    if "items" in node:
        out["items"] = json_schema(node["items"])
    return out


def rfc3339(value: object) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    datetime.datetime.fromisoformat(value)
    return True


@pytest.fixture(scope="module")
def validator(version: dict[str, Any]) -> jsonschema.Draft202012Validator:
    formats = jsonschema.FormatChecker(formats=())
    formats.checks("date-time", raises=ValueError)(rfc3339)
    schema = json_schema(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"]["additionalProperties"] = True
    return jsonschema.Draft202012Validator(schema, format_checker=formats)


def problems(validator: jsonschema.Draft202012Validator, instance: object) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{key}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")


def test_the_crd_names_are_the_ones_the_code_uses(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == names.CRD_NAME == "procedures.oet.skao.int"
    assert spec["group"] == names.GROUP
    assert spec["names"]["kind"] == names.KIND
    assert spec["names"]["plural"] == names.PLURAL
    assert spec["names"]["singular"] == names.SINGULAR
    assert spec["names"]["shortNames"] == [names.SHORT_NAME]
    assert spec["names"]["categories"] == [names.CATEGORY]
    assert [v["name"] for v in spec["versions"]] == [names.VERSION]
    assert spec["scope"] == "Namespaced"


def test_status_is_a_subresource(version: dict[str, Any]) -> None:
    assert version["subresources"] == {"status": {}}
    assert version["served"] is True
    assert version["storage"] is True


def test_the_schema_is_structural_and_free_form_only_in_script_arguments(
    version: dict[str, Any],
) -> None:
    root = version["schema"]["openAPIV3Schema"]
    untyped, free_form = [], []
    for path, node in walk(root):
        if node.get("x-kubernetes-preserve-unknown-fields"):
            free_form.append(path)
        elif "type" not in node:
            untyped.append(path)
    assert untyped == []
    assert sorted(free_form) == [
        ".spec.init.args[]",
        ".spec.init.kwargs{}",
        ".spec.run.args[]",
        ".spec.run.kwargs{}",
    ]


def test_every_field_is_described_for_kubectl_explain(version: dict[str, Any]) -> None:
    root = version["schema"]["openAPIV3Schema"]
    undocumented = [
        path
        for path, node in walk(root)
        if not node.get("description") and path != ".metadata" and not path.endswith(("[]", "{}"))
    ]
    assert undocumented == []


def test_the_schema_enums_are_the_domain_states(version: dict[str, Any]) -> None:
    props = version["schema"]["openAPIV3Schema"]["properties"]
    assert props["status"]["properties"]["state"]["enum"] == [s.value for s in ProcedureState]
    times = props["status"]["properties"]["stateTimes"]["properties"]
    assert list(times) == [s.value.lower() for s in ProcedureState]
    assert props["spec"]["properties"]["desiredState"]["enum"] == ["CREATED", "RUNNING", "STOPPED"]


@pytest.mark.parametrize("state", list(PATHS))
def test_the_schema_accepts_every_procedure_oet_writes(
    validator: jsonschema.Draft202012Validator, state: ProcedureState
) -> None:
    original = procedure(3, state, subarray_id=1, odd=[None, {"deep": 1.5}])
    original.history.stacktrace = "Traceback\n" * 10000
    original.history.reason = "why " * 2000
    assert problems(validator, to_custom_resource(original, namespace="oet")) == []


def test_the_schema_accepts_what_the_operator_patches_into_status(
    validator: jsonschema.Draft202012Validator,
) -> None:
    made = resource(3, S.STOPPING, desired="STOPPED", abort=True)
    patch = status_patch_for(
        made,
        now=from_custom_resource(made).created_at + 10,
        state=S.STOPPED,
        reason="PodDeleted",
        message="runner Pod procedure-3-runner-x7k2p was deleted",
        abort=AbortOutcome(sent=True, message="Abort sent to ska_mid/tm_subarray_node/1"),
        runner=RunnerRef(job="procedure-3-runner", pod="procedure-3-runner-x7k2p"),
    )
    patched = copy.deepcopy(made)
    patched["status"] = {**made["status"], **patch["status"]}
    patched["status"]["stateTimes"] = {
        **made["status"]["stateTimes"],
        **patch["status"]["stateTimes"],
    }
    assert problems(validator, patched) == []
    assert from_custom_resource(patched).state == S.STOPPED


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "a name that is not procedure-<n>": lambda r: r["metadata"].update(name="my-procedure"),
    "an ID of 0": lambda r: r["spec"].update(id=0),
    "an ID that is text": lambda r: r["spec"].update(id="3"),
    "no script URI": lambda r: r["spec"].pop("scriptUri"),
    "a script path without scheme": lambda r: r["spec"].update(scriptUri="scripts/x.py"),
    "an unknown desired state": lambda r: r["spec"].update(desiredState="PAUSED"),
    "abort that is not a boolean": lambda r: r["spec"].update(abort="yes"),
    "args that are not a list": lambda r: r["spec"]["init"].update(args={"a": 1}),
    "an unknown state": lambda r: r["status"].update(state="DONE"),
    "a reason with spaces": lambda r: r["status"].update(reason="out of memory"),
    "a time that is not RFC 3339": lambda r: r["status"]["stateTimes"].update(running="04:00"),
    "a spec field the schema lacks": lambda r: r["spec"].update(priority=1),
    "a status field the schema lacks": lambda r: r["status"].update(node="n1"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_the_schema_refuses_malformed_procedures(
    validator: jsonschema.Draft202012Validator, mutation: str
) -> None:
    made = to_custom_resource(procedure(3, S.RUNNING), namespace="oet")
    assert problems(validator, made) == []
    MUTATIONS[mutation](made)
    assert problems(validator, made) != []


def column(resource_json: dict[str, Any], json_path: str) -> Any:
    """What a simple ``.a.b.c`` printer-column JSONPath picks out (None: nothing)."""
    value: Any = resource_json
    for key in json_path.lstrip(".").split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def test_kubectl_get_shows_id_script_state_subarray_and_age(version: dict[str, Any]) -> None:
    made = to_custom_resource(procedure(3, S.RUNNING, subarray_id=1), namespace="oet")
    made["metadata"]["creationTimestamp"] = "2026-11-30T04:00:00Z"
    made["status"]["runner"] = {"job": "procedure-3-runner", "pod": "procedure-3-runner-x7k2p"}
    columns = version["additionalPrinterColumns"]
    default = {c["name"]: column(made, c["jsonPath"]) for c in columns if not c.get("priority")}
    wide = {c["name"]: column(made, c["jsonPath"]) for c in columns if c.get("priority") == 1}
    assert default == {
        "ID": 3,
        "Script": "file:///scripts/observe.py",
        "State": "RUNNING",
        "Subarray": 1,
        "Age": "2026-11-30T04:00:00Z",
    }
    assert wide["Started"] == made["status"]["stateTimes"]["running"]
    assert wide["Runner"] == "procedure-3-runner-x7k2p"
    assert wide["Reason"] is None
    failed = to_custom_resource(procedure(3, S.FAILED))
    assert column(failed, next(c["jsonPath"] for c in columns if c["name"] == "Reason")) == (
        "RunnerFailed"
    )
