"""One source of descriptions: the schema module describes every table, view and column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reelset.cli import main
from reelset.storage import schema
from reelset.storage.schema import CONTRACT_TABLES, VIEWS, describe, schema_doc

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_contract_name_has_a_description() -> None:
    described = describe()
    for name, columns in CONTRACT_TABLES.items():
        assert described[name]["description"], name
        for column in columns:
            assert described[name]["columns"].get(column), (name, column)
            assert column not in described[name]["internal"], (name, column)


def test_every_table_and_column_is_described_where_it_is_defined() -> None:
    for table in schema.metadata.tables.values():
        assert table.info.get(schema.DOC), table.name
        for column in table.c:
            assert column.info.get(schema.DOC), f"{table.name}.{column.name}"
    described = describe()
    assert list(described) == [
        *schema.metadata.tables,
        *(view.name for view in VIEWS),
        schema.FTS_TABLE,
    ]
    assert described["movies"]["internal"] == ["keywords", "status", "content_hash"]
    assert described["genre_map"]["kind"] == "table"
    assert described["run_summary"]["kind"] == "view"
    assert set(described[schema.FTS_TABLE]["columns"]) == set(schema.FTS_COLUMNS)


def test_schema_doc_lists_every_relation_and_column() -> None:
    doc = schema_doc()
    for name, entry in describe().items():
        assert f"`{name}`: {entry['description']}." in doc
        for column in entry["columns"]:
            assert f"| `{column}` |" in doc
    keywords = "| `keywords` | TMDB keyword names (JSON list) when fetched, or NULL *(internal)* |"
    assert keywords in doc
    assert schema_doc() == doc  # deterministic


def test_readme_holds_the_generated_schema_doc() -> None:
    # Regenerate: python -c "from reelset.storage.schema import schema_doc; print(schema_doc())"
    assert schema_doc() in README.read_text(encoding="utf-8")


def test_db_info_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / "r.db"}"\n', encoding="utf-8")
    assert main(["--config", str(cfg), "db", "init"]) == 0
    capsys.readouterr()

    assert main(["--config", str(cfg), "db", "info", "--schema", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == describe()
    assert data["schema_version"] == data["schema_head"]

    assert main(["--config", str(cfg), "db", "info", "--schema"]) == 0
    out = capsys.readouterr().out
    assert f"genre_agreement (view): {describe()['genre_agreement']['description']}" in out
    assert "  content_hash: hash of the stored fields" in out and "(internal)" in out

    assert main(["--config", str(cfg), "db", "info"]) == 0
    assert "genre_agreement" not in capsys.readouterr().out
