"""Script URIs: which ones OET can load, and where they point."""

from pathlib import PurePath

from oet.domain.errors import InvalidRequest

SUPPORTED_SCHEMES = ("file://",)

LOCAL_HOSTS = ("", "localhost")
"""``file://`` authorities that mean this machine (RFC 8089)."""


def script_path(uri: str) -> PurePath:
    """The filesystem path a ``file://`` URI names.

    ``file:///abs/path.py`` and ``file://localhost/abs/path.py`` name an
    absolute path on this machine (RFC 8089); the user docs' relative form
    ``file://scripts/x.py`` names a path relative to the server's working
    directory.
    """
    if not isinstance(uri, str) or not uri.startswith("file://"):
        raise InvalidRequest(f"Script URI {uri!r} is not supported: use file:///path/to/script.py")
    path = uri[len("file://") :]
    if path[:10].lower() == "localhost/":
        path = path[len("localhost") :]
    if not path.strip("/") or "\x00" in path:
        raise InvalidRequest(f"Script URI {uri!r} names no file")
    return PurePath(path)


def uri_host(uri: str) -> str:
    """The authority of a ``file://`` URI read as RFC 8089 does ('' for this machine)."""
    authority = uri[len("file://") :].split("/", 1)[0]
    return "" if authority.lower() in LOCAL_HOSTS else authority
