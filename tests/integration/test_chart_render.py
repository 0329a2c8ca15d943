"""The chart as `helm lint` and `helm template` see it: what a platform engineer would check
before installing. Runs the repository's own helm (built from the Go module proxy)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from oet.config import Settings
from oet.operator.builders import build_runner_job
from tests.chart import CHART, CI_VALUES, REPO, Manifest, find, helm, one, render, values_args
from tests.unit.kube_fixtures import resource

pytestmark = pytest.mark.timeout(900)  # the first test may build helm (minutes on 2 cores)

VALUES_FILES = [None, *CI_VALUES]
SITE_VALUES = CHART / "ci" / "site-values.yaml"
IDS = ["defaults", *(p.stem for p in CI_VALUES)]


@pytest.fixture
def chart_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Read Settings the way OET's Pods do: from the chart's oet.ini (OET_CONFIG_FILE)."""

    def load(objects: list[Manifest]) -> Settings:
        ini = tmp_path / "oet.ini"
        ini.write_text(one(objects, "ConfigMap", "config")["data"]["oet.ini"])
        monkeypatch.setenv("OET_CONFIG_FILE", str(ini))
        return Settings()

    return load


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=IDS)
def test_helm_lint_strict_is_clean(values_file: Path | None) -> None:
    done = helm("lint", "--strict", str(CHART), *values_args(values_file))
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout
    assert "[ERROR]" not in done.stdout


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=IDS)
def test_deployments_run_restricted_with_probes_on_healthz_and_resources(
    values_file: Path | None,
) -> None:
    objects = render(values_file)
    deployments = find(objects, "Deployment")
    assert {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments} == {
        "api",
        "operator",
    }
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        port_names = {p["name"] for p in container["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz"
            assert container[probe]["httpGet"]["port"] in port_names
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
        assert container["image"].startswith(render_image(values_file))


def render_image(values_file: Path | None) -> str:
    values: dict[str, Any] = yaml.safe_load(values_file.read_text()) if values_file else {}
    return str(values.get("image", {}).get("repository", "oet")) + ":"


def test_the_api_is_the_service_the_cli_expects_by_default() -> None:
    objects = render()
    service = one(objects, "Service", "api")
    assert service["metadata"]["name"] == "oet-rest"
    assert service["spec"]["ports"] == [{"name": "http", "port": 5000, "targetPort": "http"}]
    api = one(objects, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    assert api["command"] == ["oet-rest", "--host", "0.0.0.0", "--port", "5000"]
    assert {"name": "OET_BACKEND", "value": "kubernetes"} in api["env"]
    assert Settings().rest_uri == "http://oet-rest:5000/api/v1.0/procedures"


def test_the_service_name_and_port_can_be_changed() -> None:
    objects = render(api__service__name="telescope-oet", api__port="5123")
    service = one(objects, "Service", "api")
    assert service["metadata"]["name"] == "telescope-oet"
    api = one(objects, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    assert api["ports"] == [{"name": "http", "containerPort": 5123}]


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=IDS)
def test_oet_reads_the_chart_settings_and_builds_its_runner_jobs_from_them(
    values_file: Path | None, chart_settings: Any
) -> None:
    objects = render(values_file)
    settings = chart_settings(objects)
    api = one(objects, "Deployment", "api")["spec"]["template"]["spec"]
    image = api["containers"][0]["image"]
    assert settings.runner_image == image
    assert settings.runner_image_pull_policy == api["containers"][0]["imagePullPolicy"]
    runner_sa = one(objects, "ServiceAccount", "runner")["metadata"]["name"]
    assert settings.runner_service_account == runner_sa
    job = build_runner_job(resource(), settings)
    pod = job["spec"]["template"]["spec"]
    (runner,) = pod["containers"]
    assert runner["image"] == image
    assert pod["serviceAccountName"] == runner_sa
    # The runner sees the scripts where the API does, and shares the API Pod's placement.
    assert pod.get("hostNetwork", False) == api.get("hostNetwork", False)
    assert pod.get("tolerations", []) == api.get("tolerations", [])
    api_mounts = {m["name"]: m["mountPath"] for m in api["containers"][0]["volumeMounts"]}
    runner_mounts = {m["name"]: m["mountPath"] for m in runner.get("volumeMounts", [])}
    if "scripts" in api_mounts:
        assert runner_mounts["scripts"] == api_mounts["scripts"]
        assert [v for v in pod["volumes"] if v["name"] == "scripts"] == [
            v for v in api["volumes"] if v["name"] == "scripts"
        ]
    api_env = {e["name"]: e.get("value") for e in api["containers"][0]["env"]}
    runner_env = {e["name"]: e.get("value") for e in runner["env"]}
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "TANGO_HOST"):
        assert runner_env.get(name) == api_env.get(name)
    assert str(settings.allowed_script_dirs()[0]).startswith("/")


def test_user_pod_overrides_add_to_the_chart_s_own(chart_settings: Any) -> None:
    settings = chart_settings(render(SITE_VALUES))
    job = build_runner_job(resource(), settings)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"oet.skao.int/runner": "true"}
    assert pod["priorityClassName"] == "telescope-critical"
    assert {"name": "scripts", "configMap": {"name": "observing-scripts"}} in pod["volumes"]
    assert {v["name"] for v in pod["volumes"]} >= {"tmp", "scripts"}
    assert settings.runner_job_ttl == 7200  # settings.extra wins over the chart's own


def test_a_percent_sign_in_a_setting_reaches_oet_unchanged(chart_settings: Any) -> None:
    objects = render(settings__abortFqdnTemplate="ska_mid/tm%20subarray/{subarray_id}")
    assert chart_settings(objects).abort_fqdn_template == "ska_mid/tm%20subarray/{subarray_id}"


def test_optional_objects_appear_only_when_enabled() -> None:
    default = render()
    for kind in ("Ingress", "PodDisruptionBudget", "ServiceMonitor"):
        assert find(default, kind) == []
    enabled = render(
        api__ingress__enabled="true",
        api__podDisruptionBudget__enabled="true",
        metrics__serviceMonitor__enabled="true",
    )
    ingress = one(enabled, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "oet-rest", "port": {"name": "http"}}
    assert one(enabled, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    monitor = one(enabled, "ServiceMonitor", "api")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "api"


def test_the_operator_metrics_port_is_exposed_and_scraped_when_monitoring_is_on(
    chart_settings: Any,
) -> None:
    objects = render(metrics__serviceMonitor__enabled="true", operator__metricsPort="9100")
    assert chart_settings(objects).operator_metrics_port == 9100
    container = one(objects, "Deployment", "operator")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": 9100} in container["ports"]
    service = one(objects, "Service", "operator")
    assert service["metadata"]["name"] == "oet-operator-metrics"
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics"}]
    pod_labels = one(objects, "Deployment", "operator")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = one(objects, "ServiceMonitor", "operator")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    api_service = one(objects, "Service", "api")
    assert not selected.items() <= api_service["metadata"]["labels"].items()


def test_an_operator_metrics_port_of_0_serves_and_scrapes_nothing(chart_settings: Any) -> None:
    objects = render(metrics__serviceMonitor__enabled="true", operator__metricsPort="0")
    assert chart_settings(objects).operator_metrics_port == 0
    container = one(objects, "Deployment", "operator")["spec"]["template"]["spec"]["containers"][0]
    assert [p["name"] for p in container["ports"]] == ["health"]
    assert find(objects, "Service", "operator") == []
    assert find(objects, "ServiceMonitor", "operator") == []
    one(objects, "ServiceMonitor", "api")


def test_rbac_is_namespaced_and_per_component() -> None:
    objects = render()
    assert find(objects, "ClusterRole") == []
    assert find(objects, "ClusterRoleBinding") == []
    for component in ("api", "operator", "runner"):
        role = one(objects, "Role", component)
        binding = one(objects, "RoleBinding", component)
        account = one(objects, "ServiceAccount", component)
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "oet"}
        ]
        for rule in role["rules"]:
            assert "*" not in rule["verbs"]
            assert "*" not in rule["resources"]
    assert find(render(rbac__create="false"), "Role") == []


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"settings.maxProcedures": "-1"}, "at '/settings/maxProcedures': minimum: got -1, want 1"),
        ({"settings.maxProcedures": "ten"},
         "at '/settings/maxProcedures': got string, want integer"),
        ({"replicas": "2"}, "at '': additional properties 'replicas' not allowed"),
        ({"api.service.nmae": "x"}, "at '/api/service': additional properties 'nmae' not allowed"),
        ({"api.port": "http"}, "at '/api/port': got string, want integer"),
        ({"scripts.source": "git"}, "at '/scripts/source': value must be one of"),
        ({"scripts.source": "configMap"}, "at '/scripts/configMapName': minLength: got 0, want 1"),
        ({"image.pullPolicy": "Sometimes"}, "at '/image/pullPolicy': value must be one of"),
    ],
    ids=["negative-retention", "retention-not-a-number", "unknown-top-level-key",
         "misspelt-nested-key", "port-not-a-number", "unknown-scripts-source",
         "configmap-without-name", "unknown-pull-policy"],
)  # fmt: skip
def test_the_schema_refuses_mistakes_with_its_message(sets: dict[str, str], message: str) -> None:
    args = [a for key, value in sets.items() for a in ("--set-json", f"{key}={_json(value)}")]
    done = helm("template", "oet", str(CHART), *args, check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr


def _json(text: str) -> str:
    try:
        json.loads(text)
        return text
    except ValueError:
        return json.dumps(text)


# -- the chart's Roles are the rules the components' own tests run with ------------------------

RBAC_SOURCES = REPO / "k8s" / "rbac"


def component_in_tree(component: str) -> bool:
    """Whether the code that needs a component's Role is in this tree."""
    if component == "api":
        return (REPO / "oet" / "api" / "backends" / "kubernetes").is_dir()
    # The operator and the runner's Kubernetes channel land together (their rules too).
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    return "oet-operator" in scripts


def rule_triples(rules: list[Manifest]) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """Rules as (API group, resource, verb, resource names): equal sets grant the same."""
    return {
        (group, resource, verb, tuple(sorted(rule.get("resourceNames", []))))
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def source_rules(component: str) -> set[tuple[str, str, str, tuple[str, ...]]] | None:
    """The rules in k8s/rbac/<component>.yaml (its Roles together), None without the file."""
    path = RBAC_SOURCES / f"{component}.yaml"
    if not path.exists():
        return None
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    roles = [d for d in documents if d["kind"] in ("Role", "ClusterRole")]
    assert roles, f"{path} holds no Role"
    return {t for role in roles for t in rule_triples(role.get("rules", []))}


def test_the_chart_roles_grant_exactly_what_the_component_tests_run_with() -> None:
    objects = render()
    compared = []
    for component in ("api", "operator", "runner"):
        expected = source_rules(component)
        if expected is None:
            # No rules to compare with is only right while the component is not here yet.
            assert not component_in_tree(component), (
                f"the {component} is in the tree but k8s/rbac/{component}.yaml is missing:"
                " the chart's Role cannot be checked against the rules its tests use"
            )
            continue
        chart = rule_triples(one(objects, "Role", component)["rules"])
        assert chart == expected, (
            f"{component}: the chart grants {sorted(chart - expected)} more and"
            f" {sorted(expected - chart)} less than k8s/rbac/{component}.yaml"
        )
        compared.append(component)
    print(f"chart Roles compared with k8s/rbac: {compared or 'none yet'}")


def test_exactly_one_operator_runs_and_it_mounts_no_scripts() -> None:
    operator = one(render(SITE_VALUES), "Deployment", "operator")["spec"]
    assert operator["replicas"] == 1
    assert operator["strategy"] == {"type": "Recreate"}  # never two at once, even in a rollout
    pod = operator["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["oet-operator"]
    assert {"name": "OET_CONFIG_FILE", "value": "/etc/oet/oet.ini"} in container["env"]
    assert "scripts" not in {v["name"] for v in pod["volumes"]}
