from pathlib import Path

import pytest

from ragloop.core.errors import ConfigError
from ragloop.core.settings import Settings, load_settings


def test_env_prefix_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAGLOOP_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("RAGLOOP_CHUNK_TOKENS", "128")
    s = load_settings()
    assert s.data_dir == tmp_path / "env"
    assert s.chunk_tokens == 128
    assert load_settings(data_dir=tmp_path / "flag").data_dir == tmp_path / "flag"


def test_defaults() -> None:
    s = load_settings()
    assert s.data_dir == Path("./ragloop-data")
    assert s.chroma_url is None
    assert s.resolved_catalog_url.endswith("ragloop-data/catalog.sqlite")
    assert s.max_file_bytes == 50 * 1024 * 1024


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("RAGLOOP_CHUNK_TOKENS", "not-a-number", "RAGLOOP_CHUNK_TOKENS"),
        ("RAGLOOP_CHROMA_URL", "localhost:8000", "http://"),
        ("RAGLOOP_PRECISION", "fp8", "RAGLOOP_PRECISION"),
    ],
)
def test_bad_values_fail_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_overlap_must_be_below_chunk_size() -> None:
    with pytest.raises(ConfigError, match="chunk_overlap"):
        load_settings(chunk_tokens=32, chunk_overlap=32)


def test_the_shared_root_holds_models_uploads_and_jobs(tmp_path: Path) -> None:
    # Every replica and training host mounts it at the same path; without it, the data dir.
    local = Settings(data_dir=tmp_path / "data")
    assert local.models_dir == tmp_path / "data" / "models"
    assert local.uploads_dir == tmp_path / "data" / "uploads"
    shared = Settings(data_dir=tmp_path / "data", shared_root=tmp_path / "mnt")
    assert shared.models_dir == tmp_path / "mnt" / "models"
    assert shared.uploads_dir == tmp_path / "mnt" / "uploads"
    assert shared.artifacts_root == tmp_path / "mnt"
