"""Tests on a real single-node Kubernetes cluster, and the harness that runs it."""
