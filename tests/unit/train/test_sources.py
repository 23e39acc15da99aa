"""The settings loader reads YAML 1.2's booleans and numbers; presets read as before."""

import re
from importlib import resources

import pytest
import yaml

from chase.train.sources import load_yaml_text, parse_assignment


class _Yaml11(yaml.SafeLoader):
    """The loader before booleans were narrowed: PyYAML's 1.1 rules plus ``5e-4`` floats."""


_Yaml11.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "Yes", "NO", "On", "y", "n"])
def test_only_true_and_false_are_booleans(word):
    assert load_yaml_text(word) == word
    assert parse_assignment(f"data.augment={word}") == {"data": {"augment": word}}


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("True", True), ("TRUE", True), ("false", False), ("False", False),
     ("FALSE", False), ("5e-4", 5e-4), ("1.5", 1.5), ("12", 12), ("~", None), ("null", None),
     ("[1, 64]", [1, 64]), ("{a: true, b: off}", {"a": True, "b": "off"}), ("tRUE", "tRUE")],
)  # fmt: skip
def test_everything_else_reads_as_before(text, value):
    assert load_yaml_text(text) == value


def test_presets_load_exactly_as_with_the_yaml_1_1_booleans():
    text = resources.files("chase").joinpath("presets/presets.yaml").read_text(encoding="utf-8")
    assert load_yaml_text(text) == yaml.load(text, Loader=_Yaml11)


def test_config_files_written_by_a_run_read_back_identically():
    data = {"flags": [True, False], "words": ["yes", "no", "on", "off"], "lr": 5e-4}
    assert load_yaml_text(yaml.safe_dump(data)) == data
