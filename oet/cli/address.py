"""Where the procedures collection is, from whatever server address a user gives.

The user docs write the server address as the procedures collection
(``http://oet-rest:5000/api/v1.0/procedures``) and the stream's as
``.../api/v1.0/stream``; people also type just ``http://host:5000`` or
``.../api/v1.0``. All of those mean the same server.
"""

API_PATH = "/api/v1.0"
HINT = f"the server URL should look like http://HOST:5000{API_PATH}/procedures"


def procedures_url(given: str) -> str:
    """The procedures collection's URL for a server address in any of the usual forms.

    ``http://h:5000``, ``http://h:5000/api/v1.0`` (or ``/api/v1``),
    ``.../procedures`` and ``.../stream`` all give
    ``http://h:5000/api/v1.0/procedures`` (keeping ``/api/v1`` if given).
    Any other path is kept as it is: it may be a proxy's prefix.
    """
    url = given.strip().rstrip("/")
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    host, slash, path = rest.partition("/")
    path = f"{slash}{path}"
    if path.endswith("/stream"):
        path = path[: -len("/stream")]
    if path.endswith("/procedures"):
        return f"{scheme}://{host}{path}"
    if path.endswith(("/api/v1.0", "/api/v1")):
        return f"{scheme}://{host}{path}/procedures"
    if path == "":
        return f"{scheme}://{host}{API_PATH}/procedures"
    return f"{scheme}://{host}{path}"
