"""``python -m oet.runner`` (or ``oet-runner``): run one procedure over stdin/stdout."""

from oet.runner.channels.stdio import StdioChannel
from oet.runner.process import run_procedure


def main() -> int:
    """Run the procedure the first stdin message describes; return its exit code."""
    return run_procedure(StdioChannel.from_process_stdio())


if __name__ == "__main__":
    raise SystemExit(main())
