"""What procedure scripts import to publish events.

    from oet import scripting
    scripting.publish("observation.scan.started", scan_id=3)

Each call becomes one event on the REST server's SSE stream, tagged with the
procedure's ID. Payload values must be JSON-able (others are sent as their
``repr``). Outside a runner, for example when a script is tried by hand,
events are written to standard error instead.

Existing SKA scripts that call pypubsub's ``pub.sendMessage(topic, **kwargs)``
need no change: the runner forwards those messages in the same way.
"""

import sys
import time
from collections.abc import Callable
from typing import Any

EventSink = Callable[[str, dict[str, Any], float], None]


def _print_sink(topic: str, payload: dict[str, Any], when: float) -> None:
    print(f"oet event {topic}: {payload}", file=sys.stderr)


_sink: EventSink = _print_sink


def publish(topic: str, /, **payload: Any) -> None:
    """Publish an event on ``topic`` with ``payload`` as its JSON body.

    On the stream, the keyword arguments are top-level fields of the event.
    A keyword named like one of OET's own fields (``id``, ``topic``, ``time``,
    ``procedure_id``, ``source``, ``payload``) does not replace OET's value:
    it is kept under ``payload``, which always holds the keywords as given.
    """
    if not isinstance(topic, str) or not topic:
        raise ValueError("an event topic must be a non-empty string")
    _sink(topic, payload, time.time())


def set_sink(sink: EventSink) -> None:
    """Route published events to ``sink`` (the runner calls this; scripts do not)."""
    global _sink
    _sink = sink
