"""A run's output notebook is the run's: hostile. Rendering it must read no file of the
jobs service's machine, whatever its cells name (issue 32, item 1)."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs_service import outputs

#: a 1x1 PNG
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


@pytest.fixture
def opened() -> Iterator[list[str]]:
    """The paths the process opens while the test runs (an audit hook: it sees every
    ``open``, however nbconvert, mistune or the image code reach it)."""
    seen: list[str] = []
    on = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if on[0] and event == "open" and isinstance(args[0], (str, bytes)):
            seen.append(str(args[0]))

    sys.addaudithook(hook)  # cannot be removed: switched off below
    yield seen
    on[0] = False


def _notebook(*markdown: str, attachment: bool = True) -> bytes:
    cells: list[dict[str, object]] = [
        {"cell_type": "markdown", "metadata": {}, "source": m, **({"attachments": {}} if not attachment else {})}
        for m in markdown
    ]
    if attachment:
        cells.append(
            {
                "cell_type": "markdown",
                "metadata": {},
                "source": "![plot](attachment:plot.png)",
                "attachments": {"plot.png": {"image/png": PNG}},
            }
        )
    cells.append(
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": 1,
            "source": "plot()",
            "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"image/png": PNG}}],
        }
    )
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    return json.dumps(nb).encode()


def test_a_notebook_naming_files_of_the_service_gets_none_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: list[str]
) -> None:
    state = tmp_path / ".state" / "hub"
    state.mkdir(parents=True)
    secret = b"the-development-password-7f3a"
    (state / "dev-password").write_bytes(secret)
    (state / "pixel.png").write_bytes(base64.b64decode(PNG))  # a real image: inlined if read
    monkeypatch.chdir(tmp_path)  # the service's working folder, as the local set-up had it
    opened.clear()  # what the test wrote itself
    page = outputs.render(
        _notebook(
            "![a](.state/hub/dev-password)",
            f"![b]({state}/dev-password)",
            f"![c](file://{state}/dev-password)",
            '<img src=".state/hub/pixel.png">',
            f'<p><img src="{state}/pixel.png"></p>',
            "![d](.state/hub/pixel.png) and ![e](../../../../../../../etc/hostname)",
        )
    )
    for data in (secret, base64.b64decode(PNG)):
        encoded = base64.b64encode(data).decode()
        assert secret.decode() not in page and encoded not in page.replace(PNG, ""), "a file was inlined"
    assert not [p for p in opened if p.startswith(str(tmp_path)) or not p.startswith("/") or p == "/etc/hostname"], (
        "rendering opened a file a cell named"
    )
    # what the notebook carries itself still shows: the attachment and the output's image
    assert page.count(f"data:image/png;base64,{PNG}") == 2, "attachment and output image shown"


def test_a_page_is_the_same_from_any_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is resolved against the folder the service runs in."""
    nb = _notebook("![a](pixel.png)")
    first = outputs.render(nb)
    (tmp_path / "pixel.png").write_bytes(base64.b64decode(PNG))
    monkeypatch.chdir(tmp_path)
    assert outputs.render(nb) == first
