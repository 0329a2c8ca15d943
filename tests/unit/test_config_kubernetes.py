"""Settings of the Kubernetes backend: defaults, JSON values, refusals."""

from pathlib import Path

import pytest

from oet.config import Settings


@pytest.fixture(autouse=True)
def no_local_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OET_CONFIG_FILE", str(tmp_path / "missing.ini"))
    for name in Settings.model_fields:
        monkeypatch.delenv(f"OET_{name.upper()}", raising=False)


def test_defaults_suit_a_cluster_with_the_chart_installed() -> None:
    settings = Settings()
    assert settings.kube_namespace == ""
    assert settings.runner_image_pull_policy == "IfNotPresent"
    assert settings.runner_service_account == "oet-runner"
    assert settings.runner_resources == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert settings.runner_job_ttl == 3600
    assert settings.runner_deadline == 0
    assert settings.runner_start_timeout == 300
    assert settings.runner_pod_overrides == {}
    assert settings.max_procedures == 10


def test_object_settings_are_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OET_RUNNER_POD_OVERRIDES", '{"spec": {"hostNetwork": true}}')
    monkeypatch.setenv("OET_RUNNER_RESOURCES", '{"limits": {"memory": "64Mi"}}')
    settings = Settings()
    assert settings.runner_pod_overrides == {"spec": {"hostNetwork": True}}
    assert settings.runner_resources == {"limits": {"memory": "64Mi"}}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("runner_pod_overrides", '{"spec": '),
        ("runner_resources", '{"limit": {"memory": "1Gi"}}'),
        ("runner_image_pull_policy", "Sometimes"),
        ("runner_job_ttl", "-1"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str
) -> None:
    ini = tmp_path / "oet.ini"
    ini.write_text(f"[oet]\n{name} = {value}\n")
    monkeypatch.setenv("OET_CONFIG_FILE", str(ini))
    with pytest.raises(ValueError, match=name):
        Settings()
