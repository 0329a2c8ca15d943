"""Which files may be run as procedure scripts on this machine.

A script URI is only a request: the file it names is run with the server's
rights, so it must lie (after every symlink and ``..`` is resolved) inside one
of the directories the ``script_dirs`` setting allows. The check is made
twice on purpose: by the REST server, to refuse a bad URI with a clear 400
before anything is recorded, and by the runner on the file it actually opens,
so that no other path to the runner can load a script from elsewhere.
"""

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from oet.domain import InvalidRequest, ScriptNotAllowed, ScriptNotFound
from oet.domain.scripts import script_path, uri_host


def allowed_script(path: str | os.PathLike[str], allowed: Sequence[Path], shown: str) -> Path:
    """The real path of ``path`` if it is a regular file inside an ``allowed`` directory.

    ``shown`` names the script in error messages (the URI the client gave),
    which never mention server paths.
    """
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError):
        raise ScriptNotFound(f"Script {shown} not found on the OET server") from None
    if not any(real.is_relative_to(Path(os.path.realpath(d))) for d in allowed):
        raise ScriptNotAllowed(
            f"Script {shown} is not in a directory scripts may be loaded from"
            " (the OET server's script_dirs setting)"
        )
    try:
        regular = stat.S_ISREG(os.stat(real).st_mode)
    except (OSError, ValueError):
        regular = False
    if not regular:
        raise ScriptNotFound(f"Script {shown} not found on the OET server")
    return real


def locate_script(uri: str, allowed: Sequence[Path]) -> Path:
    """The real path of the script a ``file://`` URI names, checked by :func:`allowed_script`.

    A URI whose authority is neither empty nor ``localhost`` names another
    machine (RFC 8089) and is refused, unless it is the user docs' relative
    form (``file://scripts/x.py``, a directory in the server's working directory).
    """
    path = script_path(uri)
    host = uri_host(uri)
    if host and "/" in uri[len("file://") :] and not os.path.isdir(host):
        raise InvalidRequest(
            f"Script URI {uri} names the host {host!r}: only scripts on the OET server"
            " can be loaded (file:///path, file://localhost/path, or file://relative/path"
            " from the server's working directory)"
        )
    return allowed_script(path, allowed, uri)
