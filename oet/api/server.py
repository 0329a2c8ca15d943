"""``oet-rest``: serve the REST API with uvicorn (what ``make rest`` runs)."""

import argparse
import ipaddress
import logging
import socket
import sys

import uvicorn

from oet.api.app import create_app
from oet.config import get_settings
from oet.domain import ClusterUnavailable, StorageUnavailable

log = logging.getLogger("oet")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen_url(host: str, port: int) -> str:
    """How this server can be reached, for the absolute ``uri`` in events."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def main(argv: list[str] | None = None) -> None:
    """Parse ``--host``/``--port`` and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="oet-rest", description="Serve the OET REST API.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5000, help="TCP port to listen on")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if settings.backend == "kubernetes":
        log.info("procedures are Procedure resources in the cluster (kubernetes backend)")
    else:
        log.info("procedure records in %s", settings.db_path)
    if not _is_loopback(args.host) and not settings.api_token:
        log.warning(
            "listening on %s without an API token: anyone who can reach this port can run"
            " scripts; set OET_API_TOKEN (see docs/security.md)",
            args.host,
        )
    try:
        app = create_app(settings, listen_url=_listen_url(args.host, args.port))
    except (StorageUnavailable, ClusterUnavailable) as exc:
        print(f"oet-rest: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
