"""``oet-operator``: run the OET operator for one namespace until stopped.

kopf runs standalone (no peering objects, so no cluster-wide rights) and
namespaced, with its liveness endpoint at ``/healthz`` on
``operator_health_port`` for the chart's probes; Prometheus ``/metrics`` is
served on ``operator_metrics_port`` (:mod:`oet.operator.metrics`). One
replica runs at a time (the chart's Deployment uses the Recreate strategy):
the handlers are idempotent, so even an overlap while one replaces another
starts no script twice.
"""

import logging

import kopf

from oet.config import get_settings
from oet.kube.client import current_namespace


def main() -> None:
    """Start the operator (blocks until SIGINT or SIGTERM)."""
    import oet.operator.handlers  # noqa: F401  (registers the handlers)

    settings = get_settings()
    namespace = current_namespace(settings.kube_namespace)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # not every handler success
    logging.getLogger("oet.operator").info("OET operator for namespace %s", namespace)
    kopf.run(
        standalone=True,
        clusterwide=False,
        namespaces=[namespace],
        liveness_endpoint=f"http://0.0.0.0:{settings.operator_health_port}/healthz",
    )


if __name__ == "__main__":
    main()
