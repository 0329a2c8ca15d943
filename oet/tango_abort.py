"""Sends ``Abort`` to a subarray's Tango device after a procedure is stopped.

pytango is imported only here, only when an abort is actually sent, so that
runners which never abort start quickly and stay small. The runner sends it
after stopping a script; the operator sends it when a stop with abort found
the runner already gone. Both use this module, which is why it sits beside
the components rather than inside one of them.
"""

import threading
from typing import Any


def _describe(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    desc = getattr(args[0], "desc", None) if args else None  # tango.DevFailed
    return " ".join(str(desc or exc).split()) or type(exc).__name__


def _whole_number(value: Any) -> int | None:
    """``value`` as a subarray number, or None: never rounds, so never aborts the wrong one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value)
    return None


def send_abort(subarray_id: Any, fqdn_template: str, timeout: float) -> tuple[bool, str]:
    """Send ``Abort`` to the subarray's device; return (sent, what happened).

    Never raises and never blocks for much longer than ``timeout`` seconds:
    an unreachable device is reported as a failure, not waited for.
    """
    if subarray_id is None:
        return False, "Abort not sent: the procedure was created without a subarray_id"
    sid = _whole_number(subarray_id)
    if sid is None:
        return False, f"Abort not sent: subarray_id {subarray_id!r} is not a whole number"
    try:
        fqdn = fqdn_template.format(subarray_id=sid)
    except (KeyError, IndexError, ValueError) as exc:
        return False, f"Abort not sent: bad device name template {fqdn_template!r} ({exc})"

    outcome: list[tuple[bool, str]] = []

    def call() -> None:
        try:
            import tango

            proxy = tango.DeviceProxy(fqdn)
            proxy.set_timeout_millis(max(1, int(timeout * 1000)))
            proxy.command_inout("Abort")
            outcome.append((True, f"Abort sent to {fqdn}"))
        except Exception as exc:  # any Tango or import failure is reported, not raised
            outcome.append((False, f"Abort to {fqdn} failed: {_describe(exc)}"))

    worker = threading.Thread(target=call, name="oet-abort", daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    if not outcome:
        return False, f"Abort to {fqdn} failed: no answer within {timeout:g} s"
    return outcome[0]


def main() -> None:
    """Abort from the command line: one JSON argument ``[subarray_id, template, timeout]``.

    Prints ``{"sent": ..., "message": ...}``; used by the embedded supervisor
    when it had to kill a runner.
    """
    import json
    import sys

    subarray, template, seconds = json.loads(sys.argv[1])
    sent, message = send_abort(subarray, template, float(seconds))
    print(json.dumps({"sent": sent, "message": message}))


if __name__ == "__main__":
    main()
