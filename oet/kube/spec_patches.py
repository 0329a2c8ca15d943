"""The spec changes a client makes to start or stop a procedure.

Clients never write ``status``; they move ``spec.desiredState`` forward and
the runner (or the operator) acts. Whether a start or stop is allowed at all
is the domain's decision (``oet.domain.rules``), made before the patch is sent.

The patches are JSON Patches (send them as ``application/json-patch+json``),
for two reasons:

* a JSON *merge* patch reads ``null`` as "delete this key", so a keyword
  argument whose value is ``None`` would silently vanish from ``spec.run``;
* each patch first tests that ``desiredState`` is still what the client
  read, so of two API replicas racing on one procedure only one wins and the
  other gets an error instead of acting twice. (The CRD's validation rules
  also refuse any move backwards.)
"""

from typing import Any

from oet.domain import ProcedureInput
from oet.kube.resource import DesiredState, ScriptCall

JSONPatch = list[dict[str, Any]]


def start_patch(run_args: ProcedureInput | None = None) -> JSONPatch:
    """Start a CREATED procedure, replacing its run arguments if given."""
    patch: JSONPatch = [
        {"op": "test", "path": "/spec/desiredState", "value": DesiredState.CREATED.value},
        {"op": "replace", "path": "/spec/desiredState", "value": DesiredState.RUNNING.value},
    ]
    if run_args is not None:
        call = ScriptCall(args=list(run_args.args), kwargs=dict(run_args.kwargs))
        patch.append({"op": "add", "path": "/spec/run", "value": call.to_json()})
    return patch


def stop_patch(seen: DesiredState, abort: bool = False) -> JSONPatch:
    """Stop a procedure whose desired state was ``seen``; ask for an Abort if ``abort``."""
    return [
        {"op": "test", "path": "/spec/desiredState", "value": seen.value},
        {"op": "replace", "path": "/spec/desiredState", "value": DesiredState.STOPPED.value},
        {"op": "add", "path": "/spec/abort", "value": abort},
    ]
