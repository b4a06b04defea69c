"""``ragloop retrain --options``: bad options are one line and exit 1, before anything opens."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragloop.cli.main import app


@pytest.mark.parametrize(
    "options, message",
    [
        ("[1]", "--options: must be a JSON object"),
        ("{nope", "--options: Expecting property name"),
        ('{"learning_rate": -1}', "learning_rate: Input should be greater than 0"),
        ('{"bogus": 1}', "bogus: Extra inputs are not permitted"),
    ],
)
def test_bad_options_fail_in_one_line(tmp_path: Path, options: str, message: str) -> None:
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["retrain", "--data-dir", str(data), "--options", options])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not data.exists()  # refused before the data dir was touched
