"""A real Tango device standing in for a TMC subarray node, for the tests of Abort.

``DeviceTestContext(process=True)`` runs it in its own process, without a Tango
database, on 127.0.0.1; it counts the ``Abort`` commands it receives. The abort
hook's own tests, the console's and the operator's on the test cluster use it.
"""

import time
from collections.abc import Iterator
from typing import Any

import tango
from tango.server import Device, attribute, command, device_property
from tango.test_context import DeviceTestContext

DEVICE = "ska_mid/tm_subarray_node/1"


class SubarrayDevice(Device):
    """Stands in for a subarray node: accepts Abort and counts it."""

    abort_delay = device_property(dtype=float, default_value=0.0)

    def init_device(self) -> None:
        super().init_device()
        self._aborts = 0
        self.set_state(tango.DevState.ON)

    @attribute(dtype=int)
    def abort_count(self) -> int:
        return self._aborts

    @command
    def Abort(self) -> None:
        time.sleep(self.abort_delay)
        self._aborts += 1


class Subarray:
    """The running device, its proxy and the FQDN template that reaches it."""

    def __init__(self, context: DeviceTestContext, proxy: Any) -> None:
        self.proxy = proxy
        self.fqdn = context.get_device_access(DEVICE)
        address = f"tango://{context.host}:{context.port}"
        self.template = f"{address}/ska_mid/tm_subarray_node/{{subarray_id}}#dbase=no"

    @property
    def aborts(self) -> int:
        count: int = self.proxy.abort_count
        return count


def run_subarray_device(**properties: Any) -> Iterator[Subarray]:
    """Run the stand-in in its own process while the generator is open."""
    context = DeviceTestContext(
        SubarrayDevice,
        device_name=DEVICE,
        properties=properties,
        host="127.0.0.1",
        process=True,
        debug=0,
    )
    with context as proxy:
        yield Subarray(context, proxy)
