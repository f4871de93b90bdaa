"""Configuration: the documented file equals the defaults; every error is one clear line."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from reelset.cli import main
from reelset.config import (
    Settings,
    load_settings,
    mask_url,
    resolve_database_url,
    settings_from_dict,
)
from reelset.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _keys(model: object, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, value in model.__dict__.items():
        if name in ("source", "base_dir"):
            continue
        if hasattr(type(value), "model_fields"):
            out |= _keys(value, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def _toml_keys(data: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, value in data.items():
        if isinstance(value, dict) and name not in ("patch", "imdb_to_tmdb", "storage_options"):
            out |= _toml_keys(value, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def test_documented_config_equals_embedded_defaults() -> None:
    data = tomllib.loads((ROOT / "config.toml").read_text())
    from_file = settings_from_dict(data, base_dir=ROOT)
    assert from_file.model_dump() == Settings().model_dump()


def test_documented_config_lists_every_setting() -> None:
    data = tomllib.loads((ROOT / "config.toml").read_text())
    documented = _toml_keys(data) | {"tmdb.api_key"}  # the discouraged key is commented out
    assert _keys(Settings()) == documented
    assert "# api_key" in (ROOT / "config.toml").read_text()


def test_relative_paths_resolve_against_config_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "sub" / "reelset.toml"
    cfg.parent.mkdir()
    cfg.write_text('[storage]\nurl = "sqlite:///db/x.db"\nposters_dir = "p"\n')
    s = load_settings(cfg)
    assert s.database_url == f"sqlite:///{tmp_path / 'sub' / 'db' / 'x.db'}"
    assert s.posters_dir == tmp_path / "sub" / "p"
    assert s.output_dir == tmp_path / "sub" / "data" / "datasets"


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('[build]\nname = "from-a"\n')
    b.write_text('[build]\nname = "from-b"\n')
    (tmp_path / "config.toml").write_text('[build]\nname = "from-cwd"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings().build.name == "from-cwd"
    monkeypatch.setenv("REELSET_CONFIG", str(b))
    assert load_settings().build.name == "from-b"
    assert load_settings(a).build.name == "from-a"


def test_no_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.source == "<defaults>"
    assert s.database_url == f"sqlite:///{tmp_path / 'data' / 'reelset.db'}"


def test_credentials_from_environment_win(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_from_dict({"tmdb": {"api_key": "from-file-key"}})
    assert s.credentials().api_key is not None
    assert s.credentials().api_key.get_secret_value() == "from-file-key"
    monkeypatch.setenv("TMDB_READ_ACCESS_TOKEN", "bearer-token-value")
    creds = s.credentials()
    assert creds.bearer_token is not None and creds.api_key is None
    monkeypatch.setenv("TMDB_API_KEY", "env-key-value")
    assert s.credentials().api_key.get_secret_value() == "env-key-value"  # type: ignore[union-attr]
    assert "env-key-value" not in repr(s.credentials())
    assert "from-file-key" not in str(s.public_dict())


def test_mask_url() -> None:
    assert (
        mask_url("postgresql+psycopg://bob:s3cret@db:5432/x")
        == "postgresql+psycopg://bob:***@db:5432/x"
    )
    assert mask_url("sqlite:///data/x.db") == "sqlite:///data/x.db"


def test_resolve_database_url_leaves_absolute_and_memory(tmp_path: Path) -> None:
    assert resolve_database_url("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    assert resolve_database_url("sqlite:///:memory:", tmp_path) == "sqlite:///:memory:"
    assert resolve_database_url("postgresql://h/db", tmp_path) == "postgresql://h/db"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[storage\n", "TOML syntax error"),
        ('[storage]\nurll = "sqlite:///x.db"\n', "[storage] urll: unknown key"),
        ("[storag]\n", "[storag]: unknown key"),
        ('[tmdb]\nmax_workers = "many"\n', "[tmdb] max_workers: "),
        ('[tmdb]\napi_base_url = "not a url"\n', "[tmdb] api_base_url: not an http(s) URL"),
        ('[storage]\nurl = "mysql://x/y"\n', "[storage] url: unsupported database backend"),
        ('[tmdb]\nrate_limit = "fast"\n', "[tmdb] rate_limit: not a rate"),
        ("[build.splits]\ntrain = 0.5\n", "split fractions must sum to 1"),
        ('[genres.patch]\nforeign = "Foreign"\n', "is not an integer"),
    ],
)
def test_config_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert str(cfg) in str(info.value) and expected in str(info.value)
    assert main(["--config", str(cfg), "db", "info"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err


def test_missing_config_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["--config", str(tmp_path / "nope.toml"), "db", "info"]) == 2
    assert "config file not found" in capsys.readouterr().err
    monkeypatch.setenv("REELSET_CONFIG", str(tmp_path / "gone.toml"))
    assert main(["db", "info"]) == 2
    assert "REELSET_CONFIG" in capsys.readouterr().err
