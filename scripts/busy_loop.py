"""Example procedure: computes until stopped, for practising ``oet stop``.

It never sleeps: the loop is pure Python, as a long calculation in an
observing script would be. A stop interrupts it all the same, within
milliseconds. It reports its progress about once a second and gives up by
itself after ``duration`` seconds (ten minutes unless told otherwise).

    oet create file://scripts/busy_loop.py --subarray_id=1
    oet start --duration=60
    oet listen
    oet stop
"""

import time

from oet import scripting


def init(subarray_id: int | None = None, **kwargs: object) -> None:
    """Nothing to prepare: the procedure is ready at once."""
    scripting.publish("user.script.announce", msg=f"busy_loop ready for subarray {subarray_id}")


def run(duration: float = 600.0, report_every: float = 1.0, **kwargs: object) -> None:
    """Count as fast as Python can for ``duration`` seconds, reporting progress."""
    start = time.monotonic()
    scripting.publish("user.script.busy.started", duration=float(duration))
    next_report = start + float(report_every)
    iterations = 0
    while (now := time.monotonic()) - start < float(duration):
        iterations += 1
        if now >= next_report:
            scripting.publish(
                "user.script.busy.progress",
                iterations=iterations,
                elapsed=round(now - start, 3),
            )
            next_report += float(report_every)
    scripting.publish("user.script.busy.finished", iterations=iterations)
