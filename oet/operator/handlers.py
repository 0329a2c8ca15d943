"""The kopf registrations of the OET operator: indexes, event handlers, a sweep.

Registration only: each handler hands what kopf saw to
:class:`oet.operator.reconcile.Reconciler`, which decides with the pure
builders. Everything is level-triggered. Watch events of Procedures, runner
Jobs and runner Pods (including the initial listing after a start) reconcile
the Procedure concerned, and a sweep every :data:`SWEEP_SECONDS` reconciles
every live one, which is how start timeouts expire and how an operator
restarted mid-procedure picks up where it was. No handler keeps progress in
annotations and none adds a finalizer, so Procedures stay deletable while the
operator is down.

In-memory indexes (kopf indexing) hold the Procedures, runner Jobs and Pods by
Procedure name, and the live (not yet final) Procedures apart: no handler
lists anything from the API server.
"""

import asyncio
import logging
from typing import Any

import kopf

from oet.config import get_settings
from oet.domain import FINAL_STATES
from oet.kube import GROUP, PLURAL, VERSION, ProcedureResource, read_status
from oet.kube.client import api_client, client_configuration, current_namespace
from oet.kube.names import LABEL_PROCEDURE
from oet.operator.metrics import stop_serving
from oet.operator.reconcile import Reconciler, newest

SWEEP_SECONDS = 5.0
"""How often every live Procedure is reconciled even when nothing changed."""

RUNNERS = {LABEL_PROCEDURE: kopf.PRESENT}
log = logging.getLogger("oet.operator")

_reconciler: Reconciler | None = None


def reconciler() -> Reconciler:
    """The operator's one Reconciler (made at start-up)."""
    if _reconciler is None:
        raise RuntimeError("the operator has not started")
    return _reconciler


def _plain(body: Any) -> dict[str, Any]:
    return {"metadata": dict(body.get("metadata", {})), "spec": dict(body.get("spec", {})),
            "status": dict(body.get("status", {}))}  # fmt: skip


def _is_live(body: Any) -> bool:
    state = read_status({"status": dict(body.get("status") or {})}).state
    return state not in FINAL_STATES


# -- start-up ---------------------------------------------------------------------------
@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Connect, turn off what needs cluster-wide rights, and start the sweep."""
    global _reconciler
    oet_settings = get_settings()
    namespace = current_namespace(oet_settings.kube_namespace)
    _reconciler = Reconciler(api_client(), namespace, oet_settings)
    settings.scanning.disabled = True  # no cluster-wide CRD or namespace watching
    settings.posting.level = logging.WARNING  # kopf's own Events only for trouble
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.watching.server_timeout = 60
    _reconciler.metrics.watch_procedures(lambda: _snapshot(kwargs["procedures"]))
    memo.metrics_server = _reconciler.metrics.serve(oet_settings.operator_metrics_port)
    memo.sweep = asyncio.create_task(
        _sweep_forever(kwargs["live_procedures"], kwargs["runner_jobs"], kwargs["runner_pods"])
    )


def _snapshot(index: kopf.Index[str, ProcedureResource]) -> list[ProcedureResource]:
    """Every Procedure in ``index``, read from the metrics thread while kopf may update it."""
    for _attempt in range(5):
        try:
            return [p for key in list(index) for p in list(index.get(key) or ())]
        except RuntimeError:  # changed size during iteration: read again
            continue
    return []


@kopf.on.cleanup()
async def stop_sweep(memo: kopf.Memo, **_: Any) -> None:
    """Stop the sweep and the metrics server when the operator stops."""
    task = memo.get("sweep")
    if task is not None:
        task.cancel()
    stop_serving(memo.get("metrics_server"))


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """The same credentials as every OET component: the Pod's ServiceAccount, else kubeconfig."""
    configuration = client_configuration()
    token = configuration.get_api_key_with_prefix("BearerToken", alias="authorization") or ""
    scheme, _space, secret = token.rpartition(" ")
    scheme = scheme or "Bearer"
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme if secret else None,
        token=secret or None,  # a kubeconfig with client certificates has no token
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        default_namespace=current_namespace(get_settings().kube_namespace),
    )


# -- indexes ----------------------------------------------------------------------------
@kopf.index(GROUP, VERSION, PLURAL)
def procedures(name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Every Procedure by name (for retention and for Job and Pod events)."""
    return {name: _plain(body)}


@kopf.index(GROUP, VERSION, PLURAL, when=lambda body, **_: _is_live(body))
def live_procedures(name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """The Procedures that have not ended yet: the ones the sweep looks after."""
    return {name: _plain(body)}


@kopf.index("batch", "v1", "jobs", labels=RUNNERS)
def runner_jobs(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Runner Jobs by the name of their Procedure."""
    return {labels[LABEL_PROCEDURE]: _plain(body)}


@kopf.index("", "v1", "pods", labels=RUNNERS)
def runner_pods(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Runner Pods by the name of their Procedure."""
    return {labels[LABEL_PROCEDURE]: _plain(body)}


def _one(index: kopf.Index[str, dict[str, Any]], key: str) -> dict[str, Any] | None:
    found = index.get(key)
    return None if found is None else newest(found)  # type: ignore[arg-type,return-value]


async def _reconcile(
    name: str,
    procedure: dict[str, Any] | None,
    runner_jobs: kopf.Index[str, dict[str, Any]],
    runner_pods: kopf.Index[str, dict[str, Any]],
) -> None:
    if procedure is None:
        return
    job, pod = _one(runner_jobs, name), _one(runner_pods, name)
    await asyncio.to_thread(reconciler().reconcile, procedure, job, pod)  # type: ignore[arg-type]


# -- events -----------------------------------------------------------------------------
@kopf.on.event(GROUP, VERSION, PLURAL)
async def procedure_changed(name: str, body: kopf.Body, type: str, **kwargs: Any) -> None:
    """A Procedure appeared, changed or was listed: reconcile it; keep the newest N."""
    if type != "DELETED":
        await _reconcile(name, _plain(body), kwargs["runner_jobs"], kwargs["runner_pods"])
    if type == "DELETED" or not _is_live(body):
        index: kopf.Index[str, ProcedureResource] = kwargs["procedures"]
        everything = [p for key in index for p in index[key]]
        await asyncio.to_thread(reconciler().retain, everything)


@kopf.on.event("batch", "v1", "jobs", labels=RUNNERS)
@kopf.on.event("", "v1", "pods", labels=RUNNERS)
async def runner_changed(labels: kopf.Labels, **kwargs: Any) -> None:
    """A runner Job or Pod changed or went away: reconcile its Procedure.

    A final one too: its Pod may only now show the eviction that made the runner stop.
    """
    name = labels[LABEL_PROCEDURE]
    procedure = _one(kwargs["live_procedures"], name) or _one(kwargs["procedures"], name)
    await _reconcile(name, procedure, kwargs["runner_jobs"], kwargs["runner_pods"])


async def _sweep_forever(
    live: kopf.Index[str, dict[str, Any]],
    jobs: kopf.Index[str, dict[str, Any]],
    pods: kopf.Index[str, dict[str, Any]],
) -> None:
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        for name in list(live):
            try:
                await _reconcile(name, _one(live, name), jobs, pods)
            except Exception:  # one procedure's trouble must not stop the sweep
                log.exception("reconciling %s failed", name)


@kopf.on.probe(id="liveProcedures")
def count_live(**kwargs: Any) -> int:
    """Part of ``/healthz``: how many procedures are live."""
    return len(kwargs["live_procedures"])
