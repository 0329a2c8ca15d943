"""The runner Job the operator makes: never re-runs a script, locked down, owned, configurable."""

from pathlib import Path
from typing import Any

import pytest

from oet.config import Settings
from oet.operator.builders import (
    RUNNER_COMMAND,
    build_runner_job,
    merge_overrides,
    termination_grace,
)
from tests.unit.kube_fixtures import UID, pod, pod_condition, resource, terminated


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings with nothing from this machine's environment or oet.ini."""
    monkeypatch.setenv("OET_CONFIG_FILE", str(tmp_path / "missing.ini"))
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"OET_{name.upper()}", raising=False)
    return Settings()


def runner_job(settings: Settings, **changes: Any) -> dict[str, Any]:
    return build_runner_job(resource(3), settings.model_copy(update=changes))


def runner_container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_one_procedure_makes_one_job_with_a_fixed_name(settings: Settings) -> None:
    job = runner_job(settings)
    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"
    assert job["metadata"]["name"] == "procedure-3-runner"
    assert job["metadata"]["namespace"] == "oet"
    assert build_runner_job(resource(3), settings) == job  # same input, same Job
    assert job["metadata"]["labels"]["oet.skao.int/procedure"] == "procedure-3"
    template_labels = job["spec"]["template"]["metadata"]["labels"]
    assert template_labels["oet.skao.int/procedure-id"] == "3"


def test_the_job_belongs_to_its_procedure(settings: Settings) -> None:
    (owner,) = runner_job(settings)["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "oet.skao.int/v1alpha1",
        "kind": "Procedure",
        "name": "procedure-3",
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_nothing_ever_runs_the_script_a_second_time(settings: Settings) -> None:
    spec = runner_job(settings)["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["completions"] == spec["parallelism"] == 1
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["podReplacementPolicy"] == "Failed"
    assert {rule["action"] for rule in spec["podFailurePolicy"]["rules"]} == {"FailJob"}


def rule_matching(job: dict[str, Any], failed_pod: dict[str, Any]) -> dict[str, Any] | None:
    """The first pod failure policy rule matching ``failed_pod``, as the Job controller picks."""
    statuses = failed_pod["status"].get("containerStatuses", [])
    for rule in job["spec"]["podFailurePolicy"]["rules"]:
        for wanted in rule.get("onPodConditions", []):
            if any(
                c["type"] == wanted["type"] and c["status"] == "True"
                for c in failed_pod["status"]["conditions"]
            ):
                return dict(rule)
        codes = rule.get("onExitCodes")
        if codes:
            for status in statuses:
                if status["name"] != codes["containerName"]:
                    continue
                code = status["state"]["terminated"]["exitCode"]
                inside = code in codes["values"]
                if code != 0 and inside == (codes["operator"] == "In"):
                    return dict(rule)
    return None


@pytest.mark.parametrize(
    "failed_pod",
    [
        pod("Failed", terminated(137, "OOMKilled")),
        pod("Failed", terminated(137)),
        pod("Failed", terminated(1)),
        pod(
            "Failed",
            terminated(143),
            [pod_condition("DisruptionTarget", reason="EvictionByEvictionAPI")],
        ),
    ],
    ids=["oom-killed", "killed", "exit-1", "evicted"],
)
def test_every_runner_failure_fails_the_job(settings: Settings, failed_pod: dict[str, Any]) -> None:
    rule = rule_matching(runner_job(settings), failed_pod)
    assert rule is not None
    assert rule["action"] == "FailJob"


def test_a_runner_that_exits_cleanly_matches_no_failure_rule(settings: Settings) -> None:
    assert rule_matching(runner_job(settings), pod("Succeeded", terminated(0, "Completed"))) is None


def test_the_runner_pod_meets_the_restricted_pod_security_standard(settings: Settings) -> None:
    pod_spec = runner_job(settings)["spec"]["template"]["spec"]
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["runAsUser"] != 0
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = runner_container(runner_job(settings))["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    assert "hostNetwork" not in pod_spec
    assert "hostPath" not in str(pod_spec["volumes"])


def test_the_script_gets_a_writable_tmp_on_the_read_only_root(settings: Settings) -> None:
    job = runner_job(settings)
    assert {"name": "tmp", "emptyDir": {}} in job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in runner_container(job)["volumeMounts"]


def test_the_runner_knows_its_procedure_and_the_abort_settings(settings: Settings) -> None:
    container = runner_container(
        runner_job(settings, abort_fqdn_template="low/subarray/{subarray_id}", abort_timeout=2.5)
    )
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["OET_PROCEDURE_NAME"] == "procedure-3"
    assert env["OET_PROCEDURE_NAMESPACE"] == "oet"
    assert env["OET_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["OET_ABORT_FQDN_TEMPLATE"] == "low/subarray/{subarray_id}"
    assert env["OET_ABORT_TIMEOUT"] == "2.5"
    assert container["command"] == RUNNER_COMMAND
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_image_account_resources_and_ttl_come_from_settings(settings: Settings) -> None:
    job = runner_job(
        settings,
        runner_image="localhost/oet:dev",
        runner_image_pull_policy="Never",
        runner_service_account="site-runner",
        runner_resources={"limits": {"memory": "64Mi"}},
        runner_job_ttl=120,
    )
    container = runner_container(job)
    assert container["image"] == "localhost/oet:dev"
    assert container["imagePullPolicy"] == "Never"
    assert container["resources"] == {"limits": {"memory": "64Mi"}}
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "site-runner"
    assert job["spec"]["ttlSecondsAfterFinished"] == 120


def test_defaults_limit_memory_and_keep_finished_jobs_an_hour(settings: Settings) -> None:
    job = runner_job(settings)
    assert runner_container(job)["resources"]["limits"] == {"memory": "1Gi"}
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "oet-runner"


def test_a_script_may_run_for_hours_unless_a_deadline_is_set(settings: Settings) -> None:
    assert "activeDeadlineSeconds" not in runner_job(settings)["spec"]
    assert runner_job(settings, runner_deadline=7200)["spec"]["activeDeadlineSeconds"] == 7200


def test_a_deleted_runner_has_time_to_stop_abort_and_report(settings: Settings) -> None:
    tuned = settings.model_copy(update={"stop_grace": 3.0, "abort_timeout": 5.0})
    grace = runner_job(tuned)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace == termination_grace(tuned)
    assert grace > 3.0 + 5.0


def test_site_overrides_add_scheduling_and_script_volumes(settings: Settings) -> None:
    overrides = {
        "metadata": {"annotations": {"site/owner": "lmc"}},
        "spec": {
            "nodeSelector": {"oet.skao.int/runner": "true"},
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}],
            "priorityClassName": "telescope-critical",
            "hostNetwork": True,
            "volumes": [{"name": "scripts", "configMap": {"name": "observing-scripts"}}],
            "containers": [
                {
                    "name": "runner",
                    "volumeMounts": [{"name": "scripts", "mountPath": "/scripts"}],
                    "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"}],
                }
            ],
        },
    }
    job = runner_job(settings, runner_pod_overrides=overrides)
    template = job["spec"]["template"]
    spec = template["spec"]
    assert spec["nodeSelector"] == {"oet.skao.int/runner": "true"}
    assert spec["tolerations"] == overrides["spec"]["tolerations"]
    assert spec["priorityClassName"] == "telescope-critical"
    assert spec["hostNetwork"] is True
    assert [v["name"] for v in spec["volumes"]] == ["tmp", "scripts"]
    container = runner_container(job)
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp", "/scripts"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["OET_PROCEDURE_NAME"] == "procedure-3"  # kept, not replaced
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert template["metadata"]["annotations"]["site/owner"] == "lmc"
    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == "runner"


def test_merging_objects_lists_and_removals() -> None:
    base = {"a": {"b": 1, "c": 2}, "items": [{"name": "x", "v": 1}], "plain": [1, 2], "gone": 1}
    merged = merge_overrides(
        base,
        {
            "a": {"c": 3},
            "items": [{"name": "x", "w": 2}, {"name": "y"}],
            "plain": [9],
            "gone": None,
        },
    )
    assert merged == {
        "a": {"b": 1, "c": 3},
        "items": [{"name": "x", "v": 1, "w": 2}, {"name": "y"}],
        "plain": [9],
    }
    assert base["a"] == {"b": 1, "c": 2}  # untouched
    assert merge_overrides(base, {}) == base


def test_overrides_read_from_oet_ini_reach_the_job(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Settings
) -> None:
    ini = tmp_path / "oet.ini"
    ini.write_text(
        "[oet]\n"
        'runner_pod_overrides = {"spec": {"nodeSelector": {"site": "mid"}}}\n'
        'runner_resources = {"limits": {"memory": "2Gi", "cpu": "2"}}\n'
    )
    monkeypatch.setenv("OET_CONFIG_FILE", str(ini))
    job = build_runner_job(resource(3), Settings())
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"site": "mid"}
    assert runner_container(job)["resources"] == {"limits": {"memory": "2Gi", "cpu": "2"}}
