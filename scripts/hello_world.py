"""Example procedure: greets, publishes an event, and finishes.

Load it with any arguments (they are printed), then start it with a name::

    oet create file://scripts/hello_world.py 'hello' --verbose=true
    oet start 'world'
"""

from oet import scripting


def init(*args: object, subarray_id: int = 1, **kwargs: object) -> None:
    """Called when the procedure is created: shows what it was given."""
    print(f"hello_world loaded for subarray {subarray_id} with {args} {kwargs}")


def run(name: str = "world", **kwargs: object) -> None:
    """Called when the procedure is started: greets ``name`` and says so on the stream."""
    print(f"Hello, {name}!")
    scripting.publish("user.script.hello", greeting=f"Hello, {name}!")
