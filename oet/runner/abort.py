"""The runner's abort hook: :func:`oet.tango_abort.send_abort`, shared with the operator.

``python -m oet.runner.abort`` stays the embedded supervisor's way to abort
after it had to kill a runner.
"""

from oet.tango_abort import main, send_abort

__all__ = ["send_abort"]

if __name__ == "__main__":
    main()
