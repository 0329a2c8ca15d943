"""Settings precedence: environment variable > oet.ini > default."""

from pathlib import Path

import pytest

from oet.config import Settings, ini_files


def write_ini(path: Path, body: str) -> Path:
    path.write_text("[oet]\n" + body)
    return path


def test_defaults_match_the_user_docs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OET_CONFIG_FILE", str(tmp_path / "missing.ini"))
    monkeypatch.delenv("OET_REST_URI", raising=False)
    settings = Settings()
    assert settings.rest_uri == "http://oet-rest:5000/api/v1.0/procedures"
    assert settings.read_via_pubsub is False
    assert settings.max_procedures == 10
    assert settings.abort_fqdn_template == "ska_mid/tm_subarray_node/{subarray_id}"


def test_oet_ini_overrides_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "oet.ini", "read_via_pubsub = true\nmax_procedures = 4\n")
    monkeypatch.setenv("OET_CONFIG_FILE", str(ini))
    monkeypatch.delenv("OET_READ_VIA_PUBSUB", raising=False)
    monkeypatch.delenv("OET_MAX_PROCEDURES", raising=False)
    settings = Settings()
    assert settings.read_via_pubsub is True
    assert settings.max_procedures == 4


def test_environment_overrides_oet_ini(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "oet.ini", "read_via_pubsub = true\n")
    monkeypatch.setenv("OET_CONFIG_FILE", str(ini))
    monkeypatch.setenv("OET_READ_VIA_PUBSUB", "false")
    assert Settings().read_via_pubsub is False


def test_home_oet_ini_is_read_before_the_installation_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OET_CONFIG_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    files = ini_files()
    assert files[0] == tmp_path / "oet.ini"
    assert files[1].name == "oet.ini"
    assert files[1].parent != tmp_path
    write_ini(tmp_path / "oet.ini", "abort_timeout = 1.5\n")
    monkeypatch.delenv("OET_ABORT_TIMEOUT", raising=False)
    assert Settings().abort_timeout == 1.5


def test_an_invalid_value_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OET_CONFIG_FILE", str(tmp_path / "missing.ini"))
    monkeypatch.setenv("OET_MAX_PROCEDURES", "0")
    with pytest.raises(ValueError, match="max_procedures"):
        Settings()
