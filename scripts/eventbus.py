"""Example procedure: announces its progress on the event bus with pypubsub.

Existing SKA observing scripts publish with ``pub.sendMessage``; OET forwards
those messages to every ``oet listen`` unchanged, tagged with the procedure's
ID. This script shows it:

    oet create file://scripts/eventbus.py --subarray_id=1
    oet start --topic=demo --steps=3
    oet listen
"""

import os

from pubsub import pub

SOURCE = "eventbus.py"
subarray = None


def init(subarray_id: int | None = None, **kwargs: object) -> None:
    """Remember which subarray this procedure is for."""
    global subarray
    subarray = subarray_id
    pub.sendMessage(
        "user.script.announce", msg_src=SOURCE, msg=f"Loaded for subarray {subarray_id}"
    )


def main(topic: str = "user.script.progress", steps: int = 3, **kwargs: object) -> None:
    """Send ``steps`` progress messages on ``topic``, then a closing announcement."""
    pub.sendMessage(
        "user.script.announce",
        msg_src=SOURCE,
        msg=f"Running in OS process {os.getpid()} for subarray {subarray}",
    )
    for step in range(1, int(steps) + 1):
        pub.sendMessage(topic, msg_src=SOURCE, step=step, of=int(steps))
    pub.sendMessage("user.script.announce", msg_src=SOURCE, msg="Script complete")
