"""``python -m oet.runner``: run one procedure over stdin/stdout."""

from oet.runner.channels.stdio import StdioChannel
from oet.runner.process import run_procedure

if __name__ == "__main__":
    raise SystemExit(run_procedure(StdioChannel.from_process_stdio()))
