"""OET settings: environment variable > ``oet.ini`` > default.

Each setting ``name`` is read from the environment as ``OET_<NAME>`` and from
the ``[oet]`` section of ``oet.ini`` as ``name``. ``oet.ini`` is looked for in
the user's home directory, then in the installation root (the folder that
holds the ``oet`` package); ``OET_CONFIG_FILE`` names another file instead.
"""

import configparser
import functools
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

INSTALL_ROOT = Path(__file__).resolve().parent.parent


def _default_db_path() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "oet" / "procedures.sqlite3"


def _default_runner_resources() -> dict[Literal["requests", "limits"], dict[str, str]]:
    return {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def ini_files() -> list[Path]:
    """The ``oet.ini`` files read, highest priority first."""
    explicit = os.environ.get("OET_CONFIG_FILE")
    if explicit:
        return [Path(explicit)]
    return [Path.home() / "oet.ini", INSTALL_ROOT / "oet.ini"]


class _IniSource(PydanticBaseSettingsSource):
    """Reads the ``[oet]`` section of the first ``oet.ini`` that sets a value."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._values: dict[str, str] = {}
        for path in reversed(ini_files()):  # lower priority first, overwritten later
            parser = configparser.ConfigParser()
            if parser.read(path) and parser.has_section("oet"):
                self._values.update(parser.items("oet"))

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    """Every knob OET has. Defaults suit a laptop running ``make rest``."""

    model_config = SettingsConfigDict(env_prefix="OET_", extra="ignore")

    rest_uri: str = Field(
        "http://oet-rest:5000/api/v1.0/procedures",
        description="Where the CLI finds the REST server's procedures collection.",
    )
    read_via_pubsub: bool = Field(
        False, description="Scripts read Tango attributes via pubsub rather than polling."
    )
    db_path: Path = Field(
        default_factory=_default_db_path,
        description="SQLite file holding procedures and their history (embedded backend).",
    )
    max_procedures: int = Field(
        10, ge=1, description="How many procedures are kept; older finished ones are dropped."
    )
    abort_fqdn_template: str = Field(
        "ska_mid/tm_subarray_node/{subarray_id}",
        description="Tango device that receives Abort, with {subarray_id} filled in.",
    )
    abort_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for the subarray to accept Abort."
    )
    stop_grace: float = Field(
        3.0, gt=0, description="Seconds a script has to stop before its runner is killed."
    )
    create_wait: float = Field(
        10.0, ge=0, description="Seconds a create request waits for init before answering."
    )
    event_buffer: int = Field(
        2000, ge=10, description="Events kept for clients that reconnect with Last-Event-ID."
    )
    listen_reconnect: float = Field(
        60.0, ge=0, description="Seconds `oet listen` tries to reconnect to a lost stream."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body the REST server accepts."
    )
    script_dirs: str = Field(
        default_factory=lambda: str(INSTALL_ROOT / "scripts"),
        description="Directories scripts may be loaded from, separated by ':' like PATH.",
    )
    api_token: str | None = Field(
        None,
        description="When set, requests that change anything must carry"
        " 'Authorization: Bearer <token>'; the CLI sends it.",
    )
    public_url: str | None = Field(
        None,
        description="Base URL clients reach the server at (e.g. https://oet.example.org),"
        " used in procedure URIs instead of the request's Host header.",
    )
    script_output_limit: int = Field(
        1_048_576,
        ge=1024,
        description="Bytes of script output per runner per minute copied to the server log.",
    )
    warm_runners: int = Field(
        1,
        ge=0,
        le=16,
        description="Runner processes kept started ahead of need, so creating a procedure"
        " is quick (embedded backend), forked from one pre-imported process (the zygote);"
        " 0 starts each runner on demand as a fresh interpreter.",
    )

    def allowed_script_dirs(self) -> list[Path]:
        """``script_dirs`` as resolved directories (empty entries ignored)."""
        return [Path(os.path.realpath(d)) for d in self.script_dirs.split(":") if d.strip()]

    backend: Literal["embedded", "kubernetes"] = Field(
        "embedded",
        description="What runs procedures: 'embedded' (runner subprocesses of the server,"
        " SQLite) or 'kubernetes' (Procedure resources in kube_namespace).",
    )

    # -- Kubernetes backend: where procedures live and how runner Jobs are made --
    kube_namespace: str = Field(
        "", description="Namespace of Procedures and runner Jobs; empty: OET's own namespace."
    )
    runner_image: str = Field("oet:latest", description="Container image of runner Pods.")
    runner_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="When the kubelet pulls the runner image."
    )
    runner_service_account: str = Field(
        "oet-runner", description="ServiceAccount runner Pods run as."
    )
    runner_resources: dict[Literal["requests", "limits"], dict[str, str]] = Field(
        default_factory=_default_runner_resources,
        description="Runner container resources (JSON: requests and limits).",
    )
    runner_job_ttl: int = Field(
        3600, ge=0, description="Seconds a finished runner Job (and its logs) is kept."
    )
    runner_deadline: int = Field(
        0, ge=0, description="Seconds a runner may exist before it is stopped; 0: no limit."
    )
    runner_start_timeout: float = Field(
        300.0, gt=0, description="Seconds a runner Pod may take to get its container running."
    )
    operator_health_port: int = Field(
        8080, ge=1, le=65535, description="Port of the operator's /healthz liveness endpoint."
    )
    operator_metrics_port: int = Field(
        8081, ge=0, le=65535, description="Port of the operator's Prometheus /metrics; 0: off."
    )
    runner_pod_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON merged into the runner Pod template (node selectors, volumes, ...).",
    )

    @field_validator("runner_resources", "runner_pod_overrides", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        """Accept JSON text for object settings (``oet.ini`` gives strings)."""
        return json.loads(value) if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _IniSource(settings_cls))


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
