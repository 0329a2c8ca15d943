"""Turns the script arguments typed after an ``oet`` command into a script call.

``oet create file://x.py 'hello' --verbose=true --dishes=[1,2]`` must reach the
script as ``init('hello', verbose='true', dishes=[1, 2])``. The user docs fix
the rules: words are positional arguments, ``--key=value`` words are keyword
arguments (the docs also write them ``-key=value``), and a value keeps its
type when it reads as a Python literal. This is pure text handling, kept out
of the command functions so that it can be tested on its own.
"""

import ast
import json
import re
from collections.abc import Iterable
from typing import Any

from oet.domain import ProcedureInput

_KEYWORD = re.compile(
    r"""--(?P<key>[^=\s-][^=\s]*)(?:=(?P<value>.*))?   # --key=value, or a bare --flag
      | -(?P<short_key>[A-Za-z_]\w*)=(?P<short_value>.*) # -key=value, as the docs spell it""",
    re.S | re.X,
)


def parse_value(text: str) -> Any:
    """``text`` as the Python literal it spells, if it spells one that JSON can carry.

    ``'3'`` is the integer 3, ``'[1,2]'`` a list, ``'None'`` null; anything
    else (``'true'``, ``'hello'``, ``'file:///sb.json'``) stays the string it is.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return text  # sets, bytes, complex numbers, infinities: not JSON
    if isinstance(value, tuple):
        return list(value)
    return value


def parse_script_args(words: Iterable[str]) -> ProcedureInput:
    """Split command-line words into positional and keyword script arguments.

    ``--key=value`` (or ``-key=value``) is a keyword argument whose value goes
    through :func:`parse_value`; a bare ``--flag`` is ``flag=True``; every other
    word, in order, is a positional argument. Keyword and positional words may
    be interleaved; a repeated key keeps its last value.
    """
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for word in words:
        match = _KEYWORD.fullmatch(word)
        if match is None:
            args.append(parse_value(word))
        elif match["short_key"] is not None:
            kwargs[match["short_key"]] = parse_value(match["short_value"])
        elif match["value"] is None:
            kwargs[match["key"]] = True
        else:
            kwargs[match["key"]] = parse_value(match["value"])
    return ProcedureInput(tuple(args), kwargs)
