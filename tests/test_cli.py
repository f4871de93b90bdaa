"""The CLI: version, help, db commands, JSON summaries, one-line errors, and the layering
(the command layer imports the library, never the other way round; no import cycle)."""

from __future__ import annotations

import ast
import json
import logging
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from sqlalchemy import text

import reelset
import reelset.commands
import reelset.sandbox
from reelset import __version__
from reelset.cli import LazyGroup, cli, main
from reelset.commands.app import App, json_option
from reelset.console import print_summary
from reelset.errors import UsageError
from reelset.redaction import register_secrets
from reelset.storage import Store

PACKAGE = Path(reelset.__file__).resolve().parent
COMMAND_LAYER = ("reelset.cli", "reelset.commands")
ENTRY_POINTS = ("reelset.__main__", "reelset.cli", "reelset.commands", "reelset.demo")
"""Modules allowed to import the command layer: itself, `python -m reelset` and the demo
script that drives it."""


def write_config(tmp_path: Path, url: str | None = None) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[storage]\nurl = "{url or "sqlite:///store.db"}"\n')
    return cfg


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("db", "scrape", "posters", "build", "datasets", "imdb", "sandbox"):
        assert name in out


def test_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "nosuch"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_db_init_upgrade_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert main(["--config", str(cfg), "db", "init", "--json"]) == 0
    init = json.loads(capsys.readouterr().out)
    assert init["backend"] == "sqlite" and init["schema_version"]
    assert (tmp_path / "store.db").exists()
    assert main(["--config", str(cfg), "db", "init"]) == 0
    capsys.readouterr()
    assert main(["--config", str(cfg), "db", "upgrade", "--json"]) == 0
    up = json.loads(capsys.readouterr().out)
    assert up["from_version"] == up["to_version"] == init["schema_version"]
    assert main(["--config", str(cfg), "db", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tables"]["movies"] == 0 and info["schema_version"] == init["schema_version"]
    assert main(["--config", str(cfg), "db", "info"]) == 0
    assert "movies: 0" in capsys.readouterr().out


def test_db_info_masks_password(
    pg_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_database.replace("postgres@", "postgres:hunter2secret@", 1)
    cfg = write_config(tmp_path, url)
    code = main(["--config", str(cfg), "db", "info", "--json"])
    out, err = capsys.readouterr()
    assert "hunter2secret" not in out + err
    assert code == 0, err
    assert json.loads(out)["url"].count("***") == 1


def test_newer_store_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert main(["--config", str(cfg), "db", "init"]) == 0
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as s, s.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    capsys.readouterr()
    assert main(["--config", str(cfg), "db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "newer than this reelset" in err


def test_console_script_runs_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[tmdb]\nmax_workers = 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "reelset.cli", "--config", str(bad), "db", "info"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "[tmdb] max_workers" in proc.stderr


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            RuntimeError("boom s3cr3t-value\nsecond line"),
            "reelset: internal error: RuntimeError: boom ***",
        ),
        (UsageError("bad s3cr3t-value\nsecond line"), "reelset: error: bad ***"),
    ],
)
def test_errors_are_one_redacted_line(
    error: Exception,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bug or a user error is one line on stderr, with secrets masked."""

    def fail(*_args: object, **_kwargs: object) -> None:
        raise error

    register_secrets(["s3cr3t-value"])
    monkeypatch.setattr(App, "open_store", fail)
    code = main(["--config", str(write_config(tmp_path)), "db", "info"])
    err = capsys.readouterr().err
    assert code == (1 if isinstance(error, RuntimeError) else 2)
    assert err.count("\n") == 1 and err.startswith(expected), err
    assert "s3cr3t" not in err and "second line" not in err


def _in_layer(module: str, layers: tuple[str, ...]) -> bool:
    return any(module == layer or module.startswith(f"{layer}.") for layer in layers)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports (relative imports resolved), wherever the import
    statement is (``TYPE_CHECKING`` blocks and function bodies included)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _library_files() -> list[object]:
    return [
        pytest.param(path, id=_module_name(path))
        for path in sorted(PACKAGE.rglob("*.py"))
        if not _in_layer(_module_name(path), ENTRY_POINTS)
    ]


@pytest.mark.parametrize("path", _library_files())
def test_the_library_never_imports_the_command_layer(path: Path) -> None:
    """Data and control flow one way: cli.py and commands/ call the library (sandbox/
    included: ``reelset sandbox`` mounts the sandbox's own command line)."""
    upward = sorted(m for m in imported_modules(path) if _in_layer(m, COMMAND_LAYER))
    assert not upward, f"{_module_name(path)} imports {', '.join(upward)}"


def _fresh_import(modules: list[str]) -> set[str]:
    """The ``reelset`` modules loaded after importing ``modules`` in a new interpreter."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('reelset')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"importing {', '.join(modules)} failed:\n{proc.stderr[-3000:]}"
    return set(proc.stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        f"reelset.commands.{info.name}"
        for info in pkgutil.iter_modules(reelset.commands.__path__)
    ],
)
def test_commands_do_not_import_cli(module: str) -> None:
    """No import cycle: cli.py imports the commands, the commands never import cli.py."""
    loaded = _fresh_import([module])
    assert module in loaded
    assert "reelset.cli" not in loaded


def test_the_sandbox_loads_without_the_command_layer() -> None:
    modules = [
        info.name for info in pkgutil.walk_packages(reelset.sandbox.__path__, "reelset.sandbox.")
    ]
    assert "reelset.sandbox.__main__" in modules and "reelset.sandbox.server" in modules
    loaded = _fresh_import(["reelset.sandbox", *modules])
    assert not {m for m in loaded if _in_layer(m, COMMAND_LAYER)}


# -- global options anywhere, and --json errors -----------------------------------------


@pytest.mark.parametrize(
    ("position", "level"),
    [
        (["-v", "db", "info"], logging.DEBUG),
        (["db", "info", "-v"], logging.DEBUG),
        (["db", "-v", "info"], logging.DEBUG),
        (["db", "info", "--verbose", "--json"], logging.DEBUG),
        (["db", "info", "-q"], logging.WARNING),
        (["db", "info", "--quiet"], logging.WARNING),
        (["db", "info"], logging.INFO),
    ],
)
def test_global_options_work_before_and_after_the_command(
    position: list[str], level: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert main([*position, "--config", str(cfg)]) == 0, capsys.readouterr()
    assert logging.getLogger("reelset").level == level
    assert main(["--config", str(cfg), *position]) == 0
    assert logging.getLogger("reelset").level == level


def test_config_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, "sqlite:///after.db")
    assert main(["db", "init", f"--config={cfg}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["url"].endswith("after.db")
    assert (tmp_path / "after.db").exists()
    assert main(["db", "info", "--config"]) == 2
    assert "'--config' requires an argument" in capsys.readouterr().err


def test_values_of_command_options_and_words_after_dashes_stay_put(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(write_config(tmp_path))
    assert main(["failures", "--kind", "-v", "--config", cfg]) == 2
    assert "Invalid value for '--kind': '-v'" in capsys.readouterr().err
    assert main(["datasets", "show", "--config", cfg, "--", "-q"]) == 2
    assert "invalid dataset name '-q'" in capsys.readouterr().err


def test_a_command_keeps_its_own_option_named_like_a_global_one() -> None:
    seen: dict[str, object] = {}

    @click.group(cls=LazyGroup, lazy_commands={})
    @click.option("--config")
    @click.option("-v", "--verbose", count=True)
    def tool(config: str | None, verbose: int) -> None:
        seen["tool"] = (config, verbose)

    @tool.command()
    @click.option("-v", "--invert", is_flag=True)
    @click.option("--label")
    @click.argument("words", nargs=-1)
    def grep(invert: bool, label: str | None, words: tuple[str, ...]) -> None:
        seen["grep"] = (invert, label, words)

    args = ["grep", "-v", "--label", "--config", "--config", "x.toml", "--", "-v"]
    tool.main(args, standalone_mode=False)
    assert seen == {"tool": ("x.toml", 0), "grep": (True, "--config", ("-v",))}
    tool.main(["grep", "-vv", "--verbose"], standalone_mode=False)
    assert seen["tool"] == (None, 1)  # --verbose is reelset's; -vv is grep's -v twice


def test_json_errors_go_to_stdout_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.toml")
    assert main(["db", "info", "--json", "--config", missing]) == 2
    out, err = capsys.readouterr()
    message = f"{missing}: config file not found (from --config)"
    assert json.loads(out) == {"error": message, "exit_code": 2}
    assert err == f"reelset: error: {message}\n"
    assert main(["db", "info", "--json", "--nope"]) == 2  # before --json was even read
    out, err = capsys.readouterr()
    assert json.loads(out)["error"].startswith("No such option '--nope'")
    assert err.count("\n") == 1
    assert main(["db", "info", "--config", missing]) == 2
    assert capsys.readouterr().out == ""


def test_json_internal_error_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom s3cr3t-value")

    register_secrets(["s3cr3t-value"])
    monkeypatch.setattr(App, "open_store", fail)
    assert main(["db", "info", "--json", "--config", str(write_config(tmp_path))]) == 1
    out, err = capsys.readouterr()
    error = json.loads(out)
    assert error["exit_code"] == 1
    assert error["error"].startswith("internal error: RuntimeError: boom ***")
    assert "s3cr3t" not in out + err


def test_no_error_object_after_a_json_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command that printed its summary and then failed leaves one JSON document."""

    @click.command("half")
    @json_option
    def half(as_json: bool) -> None:
        print_summary("half", {"done": 1}, as_json=as_json)
        raise UsageError("then it failed")

    cli.add_command(half)
    try:
        assert main(["half", "--json"]) == 2
    finally:
        cli.commands.pop("half")
    out, err = capsys.readouterr()
    assert json.loads(out) == {"done": 1}
    assert err == "reelset: error: then it failed\n"
