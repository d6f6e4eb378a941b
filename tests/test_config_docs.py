"""One source of truth for settings (issue 11, item 2): the example config of `lexcoder init` and the
README's tables are written from the typed settings, and library messages name no command-line flag."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lexcoder.cli import app
from lexcoder.config import Config, DataConfig, ModelConfig, example_config, load_config
from lexcoder.demo import demo_data_path
from lexcoder.docs import main as docs_main
from lexcoder.docs import settings_table, update_markdown
from lexcoder.errors import ConfigError, LexcoderError
from lexcoder.models.params import REQUIRED, setting_docs
from lexcoder.models.registry import REGISTRY, get_model_class

README = Path(__file__).resolve().parents[1] / "README.md"
KINDS = sorted(REGISTRY)
runner = CliRunner()


def _settings(kind: str):
    """The family's settings that belong in [model.params] (its pretrained model is [model] name)."""
    return [doc for doc in setting_docs(get_model_class(kind)) if doc.name != "name"]


def _params_lines(text: str) -> list[str]:
    """The lines of the example config's [model.params] table (up to the next table)."""
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("[model.params]")))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("["))
    return lines[start + 1:end]


def _uncomment_examples(text: str) -> str:
    """The example config with every commented-out ``key = value`` line set (placeholders ``<...>`` left)."""
    return re.sub(r"^# (\w+ = (?!<))", r"\1", text, flags=re.MULTILINE)


# -- the example config -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_example_config_loads_with_defaults_and_lists_every_setting(tmp_path, kind):
    text = example_config(kind)
    (tmp_path / "my.toml").write_text(text, encoding="utf-8")
    cfg = load_config(tmp_path / "my.toml", [f"data.path={demo_data_path()}"])
    # as written, every key is at its default (bar the chosen kind), as the file's header says
    expected = Config(data=DataConfig(path=str(demo_data_path()), label_columns=cfg.data.label_columns),
                      model=ModelConfig(kind=kind))
    assert cfg.model_dump() == expected.model_dump()
    listed = [m.group(1) for line in _params_lines(text) if (m := re.match(r"# (\w+) = ", line))]
    assert listed == [doc.name for doc in _settings(kind)]
    assert max(len(line) for line in text.splitlines()) <= 112  # readable: wrapped comments


@pytest.mark.parametrize("kind", KINDS)
def test_every_value_shown_in_the_example_config_is_valid(tmp_path, kind):
    """Uncommenting every example and every default of [model.params] still gives a valid config, and the
    model settings shown are their real defaults."""
    text = _uncomment_examples(example_config(kind))
    if kind == "tfidf":  # [model] name is shown for encoder/llm; TF-IDF uses no pretrained model
        text = text.replace('\nname = "minilm"', '\n# name = "minilm"')
    (tmp_path / "my.toml").write_text(text, encoding="utf-8")
    cfg = load_config(tmp_path / "my.toml", [f"data.path={demo_data_path()}"])
    defaults = {doc.name: doc.default for doc in _settings(kind) if doc.default not in (None, REQUIRED)}
    assert cfg.model.params == defaults and defaults
    assert cfg.data.id_column and cfg.data.group_column and cfg.model.refit_on_val is not None
    assert tomllib.loads(text)["model"].get("name") == (None if kind == "tfidf" else cfg.model.name)


def test_every_config_key_is_documented():
    """The example config takes each key's words from its Field; an undocumented key would be a bare line."""
    for section in Config.model_fields.values():
        assert section.annotation.__doc__
        for key, info in section.annotation.model_fields.items():
            assert info.description, key
            if info.is_required() or info.get_default(call_default_factory=True) is None:
                assert info.examples, f"{key} needs an example value for the example config"


def test_unknown_kind_is_refused():
    with pytest.raises(ConfigError, match="Unknown model kind 'bert'"):
        example_config("bert")


def test_init_writes_the_chosen_family(tmp_path):
    res = runner.invoke(app, ["init", str(tmp_path / "llm.toml"), "--kind", "llm"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "llm.toml").read_text(encoding="utf-8") == example_config("llm")
    cfg = load_config(tmp_path / "llm.toml", [f"data.path={demo_data_path()}"])
    assert cfg.model.kind == "llm" and "lora_r" in (tmp_path / "llm.toml").read_text(encoding="utf-8")
    res = runner.invoke(app, ["init", str(tmp_path / "x.toml"), "--kind", "bert"])
    assert res.exit_code == 2 and not (tmp_path / "x.toml").exists()


# -- the README's tables ------------------------------------------------------------------------------------
def test_readme_settings_tables_are_up_to_date():
    """Fails when a setting changed without `python -m lexcoder.docs --write README.md`."""
    text = README.read_text(encoding="utf-8")
    assert update_markdown(text) == text, "run: python -m lexcoder.docs --write README.md"
    for kind in KINDS:
        assert f"<!-- settings:{kind} -->\n\n{settings_table(kind)}\n\n<!-- /settings:{kind} -->" in text


def test_settings_table_has_one_row_per_setting():
    table = settings_table("tfidf").splitlines()
    docs = setting_docs(get_model_class("tfidf"))
    assert len(table) == 2 + len(docs)
    row = next(line for line in table if line.startswith("| `max_features` |"))
    assert row.split(" | ")[2] == "unset"
    assert all(line.count(" | ") == 3 for line in table[2:])  # no description breaks a cell


def test_docs_script_rewrites_stale_blocks_and_checks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- settings:tfidf -->\n| old | table |\n<!-- /settings:tfidf -->\nend\n",
                    encoding="utf-8")
    with pytest.raises(SystemExit) as stale:
        docs_main(["--check", str(page)])
    assert stale.value.code == 1
    assert docs_main(["--write", str(page)]) == 0
    assert docs_main(["--check", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert "| old |" not in text and settings_table("tfidf") in text and text.startswith("intro\n")
    with pytest.raises(LexcoderError, match="no closing <!-- /settings:llm -->"):
        update_markdown("<!-- settings:llm -->\n| table |\n")


# -- messages: the library names no flag; the command line says --set ---------------------------------------
@pytest.fixture()
def config_file(tmp_path, make_config):
    return make_config(tmp_path, demo_data_path(), ["arbitration"])


@pytest.mark.parametrize("item, words", [
    ("split", "override 'split': expected section.key=value, e.g. split.seed=7 or model.params.C=3."),
    ("data.label_columns=[a]", """e.g. data.label_columns=["remorse", "hardship"]."""),
    ("data.path.x=1", "override 'data.path.x=1': data.path is a single value, not a table; use data.path=..."),
    ("model.params=3", "e.g. model.params.C=3, or give a whole table: model.params={C = 3}."),
])
def test_override_messages_in_python_name_no_flag(config_file, item, words):
    with pytest.raises(ConfigError) as err:
        load_config(config_file, [item])
    assert words in str(err.value) and "--set" not in str(err.value)


def test_override_messages_name_the_flag_given(config_file):
    with pytest.raises(ConfigError) as err:
        load_config(config_file, ["data.label_columns=[a]"], flag="--set")
    assert str(err.value).startswith("--set 'data.label_columns=[a]': ")
    assert """e.g. --set 'data.label_columns=["remorse", "hardship"]'.""" in str(err.value)  # shell-quoted
    with pytest.raises(ConfigError) as err:
        load_config(config_file, ["split.seed=abc"])
    assert f"Invalid configuration in {config_file} (with overrides):" in str(err.value)
    assert "--set" not in str(err.value) and "example_config()" in str(err.value)
