"""Names of the Procedure resource and of what OET labels in the cluster.

``crds/procedure.yaml`` spells the same names; a unit test keeps the two in
step. A procedure's numeric ID (what ``oet list`` shows) is in its name,
``procedure-<id>``, so the name alone finds it and two creates of one ID
collide instead of making two procedures.
"""

import re

from oet.domain import ProcedureNotFound

GROUP = "oet.skao.int"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Procedure"
PLURAL = "procedures"
SINGULAR = "procedure"
SHORT_NAME = "proc"
CATEGORY = "oet"
CRD_NAME = f"{PLURAL}.{GROUP}"

NAME_PREFIX = "procedure-"
_NAME = re.compile(r"procedure-([1-9][0-9]*)")

LABEL_APP = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PROCEDURE = f"{GROUP}/procedure"
LABEL_PROCEDURE_ID = f"{GROUP}/procedure-id"

APP = "oet"
OPERATOR = "oet-operator"


def procedure_name(pid: int) -> str:
    """The custom resource name of procedure ``pid``: ``procedure-<pid>``."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
        raise ValueError(f"a procedure ID is a whole number from 1 up, not {pid!r}")
    return f"{NAME_PREFIX}{pid}"


def procedure_id(name: str) -> int:
    """The numeric ID in a custom resource name; ProcedureNotFound if it has none."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ProcedureNotFound(name)
    return int(match.group(1))


def runner_job_name(pid: int) -> str:
    """The runner Job of procedure ``pid``.

    One fixed name per procedure: creating it twice fails with AlreadyExists,
    which is what keeps a restarted operator from starting a script twice.
    """
    return f"{procedure_name(pid)}-runner"


def procedure_labels(pid: int) -> dict[str, str]:
    """Labels on a Procedure resource."""
    return {
        LABEL_APP: APP,
        LABEL_COMPONENT: "procedure",
        LABEL_PROCEDURE_ID: str(pid),
    }


def runner_labels(pid: int) -> dict[str, str]:
    """Labels on a procedure's runner Job and Pod (select one runner by them)."""
    return {
        LABEL_APP: APP,
        LABEL_COMPONENT: "runner",
        LABEL_MANAGED_BY: OPERATOR,
        LABEL_PROCEDURE: procedure_name(pid),
        LABEL_PROCEDURE_ID: str(pid),
    }
