"""Example procedure: greets, publishes an event, and finishes.

oet create file://scripts/hello_world.py --subarray_id=1
oet start 'world'
"""

from oet import scripting


def init(subarray_id: int = 1, **kwargs: object) -> None:
    """Called when the procedure is created."""
    print(f"hello_world loaded for subarray {subarray_id}")


def run(name: str = "world", **kwargs: object) -> None:
    """Called when the procedure is started."""
    print(f"Hello, {name}!")
    scripting.publish("user.script.hello", greeting=f"Hello, {name}!")
