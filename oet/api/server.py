"""``oet-rest``: serve the REST API with uvicorn (what ``make rest`` runs)."""

import argparse
import logging

import uvicorn

from oet.api.app import create_app
from oet.config import get_settings


def main(argv: list[str] | None = None) -> None:
    """Parse ``--host``/``--port`` and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="oet-rest", description="Serve the OET REST API.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5000, help="TCP port to listen on")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    logging.getLogger("oet").info("procedure records in %s", settings.db_path)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
