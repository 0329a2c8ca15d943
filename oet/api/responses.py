"""The JSON response every REST answer uses, which cannot fail to encode.

Starlette's ``JSONResponse`` writes UTF-8 and fails on a string holding a
lone surrogate (``"\\ud800"``), turning one bad record into a 500 for every
later request that shows it. Request bodies with such strings are refused,
but a record may still hold one (an old database, a script's event); this
response then falls back to ASCII-escaped JSON, which every client reads.
"""

import json
from typing import Any

from fastapi.responses import JSONResponse


class JSONBody(JSONResponse):
    """``JSONResponse`` that escapes what UTF-8 cannot carry instead of failing."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")
