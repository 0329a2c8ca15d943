"""Script URIs: which ones OET can load, and where they point."""

from pathlib import PurePath

from oet.domain.errors import InvalidRequest

SUPPORTED_SCHEMES = ("file://",)


def script_path(uri: str) -> PurePath:
    """The filesystem path a ``file://`` URI names.

    Both ``file:///abs/path.py`` and the relative ``file://scripts/x.py`` form
    of the user docs are accepted; a relative path is relative to the server's
    working directory.
    """
    if not isinstance(uri, str) or not uri.startswith("file://"):
        raise InvalidRequest(f"Script URI {uri!r} is not supported: use file:///path/to/script.py")
    path = uri[len("file://") :]
    if not path or "\x00" in path:
        raise InvalidRequest(f"Script URI {uri!r} names no file")
    return PurePath(path)
