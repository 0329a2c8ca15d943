"""Credentials of one test cluster: a CA, the API server's certificate, tokens, kubeconfigs.

Why this exists: every cluster run gets fresh credentials (made with openssl, about a second),
so nothing secret is cached or shared between runs. The harness and the control-plane
components authenticate with static tokens (`--token-auth-file`); workloads under test use
ServiceAccount tokens, issued through the TokenRequest API like in a real cluster.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Names the API server certificate answers to: loopback, and the in-cluster service names.
SERVER_SANS = [
    "IP:127.0.0.1",
    "IP:10.0.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
]

# The API server reaches a kubelet by its node's Hostname address, and this kubelet listens on
# loopback only (anonymous access: never on a real interface). The kubelet refuses loopback
# node IPs, so the node is named for the one loopback name every host resolves.
NODE_NAME = "localhost"


@dataclass(frozen=True)
class Identity:
    """A static-token user of the API server."""

    user: str
    groups: tuple[str, ...]
    token: str


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path) -> None:
    """Write ca.crt/key, apiserver.crt/key and the ServiceAccount signing pair sa.key/pub."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
             "-subj", "/CN=oet-test-cluster-ca", cwd=directory)  # fmt: skip
    _openssl("req", *ec, "-keyout", "apiserver.key", "-out", "apiserver.csr",
             "-subj", "/CN=kube-apiserver", cwd=directory)  # fmt: skip
    (directory / "apiserver.ext").write_text(
        f"subjectAltName={','.join(SERVER_SANS)}\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "apiserver.crt", "-days", "30",
             "-extfile", "apiserver.ext", cwd=directory)  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=directory)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)


def make_identities() -> dict[str, Identity]:
    """The static-token users: the harness (admin), the controllers and the node."""

    def token() -> str:
        return secrets.token_hex(24)

    return {
        "admin": Identity("oet-test-admin", ("system:masters",), token()),
        # The controllers act for the whole cluster; masters keeps this harness small.
        "controller-manager": Identity(
            "system:kube-controller-manager", ("system:masters",), token()
        ),
        "scheduler": Identity("system:kube-scheduler", ("system:masters",), token()),
        # The kubelet is a real node identity: the Node authorizer decides what it may do.
        "kubelet": Identity(f"system:node:{NODE_NAME}", ("system:nodes",), token()),
    }


def write_token_file(path: Path, identities: dict[str, Identity]) -> None:
    """The API server's --token-auth-file: token,user,uid,"group1,group2"."""
    lines = [f'{i.token},{i.user},{i.user},"{",".join(i.groups)}"' for i in identities.values()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def kubeconfig(server: str, ca_file: Path, user: str, token: str, namespace: str = "") -> str:
    """A kubeconfig for one token user (YAML is a JSON superset, so JSON is written)."""
    import json

    context: dict[str, str] = {"cluster": "oet-test", "user": user}
    if namespace:
        context["namespace"] = namespace
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "oet-test",
                    "cluster": {"server": server, "certificate-authority": str(ca_file)},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "oet-test", "context": context}],
            "current-context": "oet-test",
        },
        indent=2,
    )
