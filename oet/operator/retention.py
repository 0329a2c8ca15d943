"""Which Procedures the operator deletes to keep the newest ``max_procedures``.

The choice is the domain's (``oet.domain.rules.next_to_drop``), the same the
embedded backend makes before a create: the oldest finished procedure goes
first, and a procedure whose script is executing is never dropped. The
operator only ever deletes *finished* procedures; making room among idle
(CREATED) ones is the create request's decision, as with the embedded backend.
Deleting a Procedure deletes its runner Job and Pod with it (ownerReference).
"""

from collections.abc import Iterable

from oet.domain import StateConflict
from oet.domain.rules import next_to_drop
from oet.kube import ProcedureResource, from_custom_resource


def procedures_to_delete(resources: Iterable[ProcedureResource], keep: int) -> list[str]:
    """Names of the Procedures to delete so that at most ``keep`` remain, oldest first.

    Procedures already being deleted do not count. Fewer are named when the
    rest are still live.
    """
    entries = [
        (from_custom_resource(r), r["metadata"]["name"])
        for r in resources
        if "deletionTimestamp" not in r.get("metadata", {})
    ]
    names = {id(procedure): name for procedure, name in entries}
    kept = [procedure for procedure, _ in entries]
    doomed: list[str] = []
    while len(kept) > keep:
        try:
            victim = next_to_drop(kept, keep + 1)
        except StateConflict:
            break
        if victim is None or not victim.is_final:
            break
        kept = [p for p in kept if p is not victim]
        doomed.append(names[id(victim)])
    return doomed
