"""Which script URIs OET accepts, and the paths they name."""

from pathlib import PurePath

import pytest

from oet.domain import InvalidRequest
from oet.domain.scripts import script_path


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:///path/to/obsscript.py", "/path/to/obsscript.py"),
        ("file://test.py", "test.py"),
        ("file://scripts/eventbus.py", "scripts/eventbus.py"),
    ],
)
def test_file_uris_name_absolute_and_relative_paths(uri: str, path: str) -> None:
    assert script_path(uri) == PurePath(path)


@pytest.mark.parametrize(
    "uri", ["git://repo/script.py", "/no/scheme.py", "http://x/y.py", "file://", "file://a\x00b"]
)
def test_other_uris_are_refused_with_a_readable_reason(uri: str) -> None:
    with pytest.raises(InvalidRequest, match="Script URI"):
        script_path(uri)
