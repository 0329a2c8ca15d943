"""A zygote that fails a runner is stopped, and no new one is tried for a growing pause.

Failing a fork or the take-over of a forked runner (a kernel without ``pidfd_open``,
say) cannot be caused from outside, so this drives the spares' own give-up step on a
real zygote process.
"""

import asyncio

from oet.api.backends.embedded.spares import SpareRunners


def test_a_zygote_given_up_on_is_stopped_and_none_is_started_while_paused() -> None:
    async def scenario() -> tuple[bool, bool, list[float]]:
        spares = SpareRunners(1)
        try:
            zygote = await spares._live_zygote()
            assert zygote is not None
            assert zygote.alive
            pauses = [await spares._give_up_on(zygote)]
            stopped = not zygote.alive
            none_while_paused = await spares._live_zygote() is None
            pauses.append(await spares._give_up_on(zygote))
            return stopped, none_while_paused, pauses
        finally:
            await spares.close()

    stopped, none_while_paused, pauses = asyncio.run(scenario())
    assert stopped
    assert none_while_paused
    assert pauses == [1.0, 2.0]  # doubling, as after a zygote that failed to start
