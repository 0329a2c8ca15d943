"""The Kubernetes backend (``OET_BACKEND=kubernetes``): procedures as Procedure resources."""

from oet.api.backends.kubernetes.backend import KubernetesBackend
from oet.api.backends.kubernetes.bus import ClusterEventBus

__all__ = ["ClusterEventBus", "KubernetesBackend"]
