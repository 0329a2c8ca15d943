"""The Procedure custom resource, shared by the API backend, the operator and the runner.

Names (group, version, kind, labels), the typed spec and status, the
Procedure ⇄ resource conversion and the client configuration live here, so
the three components agree on the resource without importing each other.
The CRD itself is ``crds/procedure.yaml``.

Only :mod:`oet.kube.client` imports the ``kubernetes`` package; the rest is
pure and can be used (and tested) without a cluster.
"""

from oet.kube.convert import (
    abort_outcome,
    default_reason,
    from_custom_resource,
    spec_for,
    status_for,
    to_custom_resource,
)
from oet.kube.names import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    procedure_id,
    procedure_name,
    runner_job_name,
)
from oet.kube.resource import (
    DesiredState,
    ProcedureResource,
    ProcedureSpec,
    ProcedureStatus,
    read_spec,
    read_status,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "DesiredState",
    "ProcedureResource",
    "ProcedureSpec",
    "ProcedureStatus",
    "abort_outcome",
    "default_reason",
    "from_custom_resource",
    "procedure_id",
    "procedure_name",
    "read_spec",
    "read_status",
    "runner_job_name",
    "spec_for",
    "status_for",
    "to_custom_resource",
]
