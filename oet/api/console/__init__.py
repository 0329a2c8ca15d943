"""The operator console: a page an operator keeps open all night, served by OET itself.

The page is plain HTML, CSS and JavaScript modules shipped inside the package
(``assets/``), so an air-gapped site needs nothing but the installed OET: no
CDN, no build step. It talks to the server only through the public REST API
and the SSE stream, which is why it works the same whatever backend stands
behind them. The routes here only hand out those files, with a
Content-Security-Policy that allows nothing but this server.
"""

import functools
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

CONSOLE_PATH = "/console"
"""Where the page is served."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@functools.cache
def assets() -> dict[str, tuple[bytes, str]]:
    """Every file of the page by name, with its content type (read once)."""
    folder = resources.files(__package__) / "assets"
    found = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            found[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return found


def _file(name: str) -> Response:
    try:
        content, media_type = assets()[name]
    except KeyError:
        raise HTTPException(404, f"The console has no file called {name!r}") from None
    return Response(content, media_type=media_type, headers=_HEADERS)


@router.get("/")
async def root() -> RedirectResponse:
    """The server's front door leads to the console."""
    return RedirectResponse(CONSOLE_PATH, status_code=307)


@router.get(CONSOLE_PATH)
async def page() -> Response:
    """The console page."""
    return _file("index.html")


@router.get(CONSOLE_PATH + "/{name}")
async def asset(name: str) -> Response:
    """One of the page's scripts or style sheets."""
    return _file(name)
