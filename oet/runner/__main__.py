"""``python -m oet.runner`` (or ``oet-runner``): run one procedure.

``--channel stdio`` (the default) takes commands on stdin and reports on
stdout, for the embedded backend's supervisor. ``--channel kubernetes`` runs
the Procedure named by ``OET_PROCEDURE_NAME`` in ``OET_PROCEDURE_NAMESPACE``,
as the operator's runner Job starts it.
"""

import argparse
import sys

from oet.runner.process import run_procedure

SPARE_NAME = "oet-spare"
"""What ``ps`` shows for a runner that waits for its load command (``/proc/<pid>/comm``)."""


def main(argv: list[str] | None = None) -> int:
    """Run one procedure over the chosen channel; return its exit code."""
    parser = argparse.ArgumentParser(prog="oet-runner", description=__doc__.splitlines()[0])
    parser.add_argument("--channel", choices=["stdio", "kubernetes"], default="stdio",
                        help="how the runner gets commands and reports")  # fmt: skip
    args = parser.parse_args(argv)
    if args.channel == "kubernetes":
        from oet.domain import OETError
        from oet.runner.channels.kubernetes import KubernetesChannel, log

        try:
            channel = KubernetesChannel.from_environment()
            if channel.start_up() is None:
                return 0
        except OETError as exc:
            log(str(exc))
            return 2
        return run_procedure(channel)
    from oet.process_tree import name_process
    from oet.runner.channels.stdio import StdioChannel

    name_process(SPARE_NAME)  # until its load command names it after its procedure
    return run_procedure(StdioChannel.from_process_stdio())


if __name__ == "__main__":
    sys.exit(main())
