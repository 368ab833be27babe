"""The bounded YAML loader every foreign YAML document goes through (profiles now; MLmodel and --kitfile next).

The bombs are real documents; what is asserted is what the loader built (node counts it reports) and the
peak memory of a process that loads them, never how long it took."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from kitmlflow_tui.core import safe_yaml
from kitmlflow_tui.core.safe_yaml import YamlLimits, YamlRefused
from tests.support.yaml_bombs import billion_laughs


def test_the_billion_laughs_stops_at_the_node_cap_and_names_where() -> None:
    limits = YamlLimits(max_nodes=10_000)
    text = billion_laughs()
    assert len(text) < 1024  # ~ 387 million strings once expanded
    with pytest.raises(YamlRefused) as caught:
        safe_yaml.load(text, limits)
    error = caught.value
    assert "more than 10,000 values" in error.problem
    # It stopped at the alias that crossed the cap: the nodes it built are the cap plus one alias's worth
    # (a level-3 alias is 9**3 + ... nodes), never the expansion.
    assert limits.max_nodes < error.nodes <= limits.max_nodes + 9**4
    assert error.line == 5 and error.column is not None
    assert "line 5, column" in error.where


# Loads the document and walks it the way any caller does (here: json.dumps), under a 2 GiB address-space
# cap so that a loader that is not bounded fails with MemoryError instead of taking the machine's memory.
PEAK_RSS = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
from kitmlflow_tui.core import safe_yaml
text = sys.stdin.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    json.dumps(safe_yaml.load(text))
    outcome = "loaded"
except safe_yaml.YamlRefused as exc:
    outcome = exc.problem
except MemoryError:
    outcome = "MemoryError"
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "grew_kib": after - before}))
"""


def test_the_billion_laughs_is_refused_with_bounded_memory() -> None:
    """With the default limits, in a process of its own: peak RSS grows by a few MiB at most (PyYAML's
    plain loader reaches gigabytes and a MemoryError on the same document)."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS], input=billion_laughs(), capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    assert "more than 200,000 values" in result["outcome"]
    assert result["grew_kib"] < 64 * 1024, result


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(YamlRefused, match="contains it"):
        safe_yaml.compose("a: &a [1, *a]\n")


def test_too_many_aliases_are_refused() -> None:
    text = "x: &x 1\nl: [" + ", ".join(["*x"] * 20) + "]\n"
    with pytest.raises(YamlRefused, match="more than 10 aliases"):
        safe_yaml.compose(text, YamlLimits(max_aliases=10))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 40 + "]" * 40,  # nesting
        "a: &x " + "[" * 10 + "]" * 10 + "\nb: " + "[" * 25 + "*x" + "]" * 25 + "\n",  # nesting through an alias
    ],
    ids=["plain", "through-an-alias"],
)
def test_deep_nesting_is_refused(text: str) -> None:
    with pytest.raises(YamlRefused, match="deeper than 32"):
        safe_yaml.compose(text, YamlLimits(max_depth=32))


def test_the_depth_counts_every_level_once() -> None:
    exactly = "[" * 31 + "1" + "]" * 31  # 31 sequences and the scalar: 32 levels
    assert safe_yaml.load(exactly, YamlLimits(max_depth=32)) is not None
    with pytest.raises(YamlRefused):
        safe_yaml.load("[" + exactly + "]", YamlLimits(max_depth=32))


def test_the_node_cap_is_exact() -> None:
    three = "[1, 2]"  # the sequence and two scalars
    assert safe_yaml.load(three, YamlLimits(max_nodes=3)) == [1, 2]
    with pytest.raises(YamlRefused):
        safe_yaml.load(three, YamlLimits(max_nodes=2))


def test_the_size_cap_is_checked_before_parsing(tmp_path: Path) -> None:
    text = "a: " + "x" * 100 + "\n"
    limits = YamlLimits(max_bytes=len(text))
    assert safe_yaml.load(text, limits) == {"a": "x" * 100}
    with pytest.raises(YamlRefused, match="105 bytes, more than the 104 allowed") as caught:
        safe_yaml.load(text + " ", limits)
    assert caught.value.where == ""
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 10_000_000 + "\n")
    with pytest.raises(YamlRefused, match="the file is 10,000,004 bytes"):
        safe_yaml.read_text(big, limits)
    assert safe_yaml.read_text(big, YamlLimits(max_bytes=20_000_000)).startswith("a: x")


@pytest.mark.parametrize(
    "text",
    [
        "x: !!python/object/apply:os.system ['true']\n",
        "x: !!python/name:os.system\n",
        "!!python/object:collections.OrderedDict {}\n",
        "x: !custom value\n",
        "x: !!set {a: null}\n",
        "x: !<tag:example.com,2024:thing> 1\n",
    ],
)
def test_tags_outside_the_core_schema_are_refused(text: str) -> None:
    with pytest.raises(YamlRefused, match="is not allowed") as caught:
        safe_yaml.compose(text)
    assert caught.value.line == 1


def test_plain_documents_load_as_safe_load_does() -> None:
    text = "a: [1, 2.5, true, null, '3']\nb: {c: 2024-01-02}\nd: !!str 7\nbase: &b {x: 1}\ne:\n  <<: *b\n  y: 2\n"
    assert safe_yaml.load(text) == yaml.safe_load(text)
    assert safe_yaml.compose("") is None


def test_a_syntax_error_is_still_yamls_own() -> None:
    with pytest.raises(yaml.YAMLError) as caught:
        safe_yaml.compose("a: [1, 2\n")
    assert not isinstance(caught.value, YamlRefused)


# The oracle is PyYAML's safe loader on the same parser (libyaml's where PyYAML has it, as safe_yaml uses).
_ORACLE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@given(st.text(max_size=200))
@example("!")  # found by `make fuzz`: libyaml reads it as '', PyYAML's own parser as None (the oracle was the latter)
def test_arbitrary_text_loads_like_safe_load_or_fails_as_yaml(text: str) -> None:
    try:
        expected = yaml.load(text, Loader=_ORACLE)
    except yaml.YAMLError:
        expected = YamlRefused
    except (RecursionError, ValueError, OverflowError):  # PyYAML's own constructors on odd scalars
        return
    try:
        got = safe_yaml.load(text, YamlLimits(max_depth=1000))
    except YamlRefused:  # a tag PyYAML's safe loader would build but we refuse (!!set, !!omap, ...)
        return
    except yaml.YAMLError:
        got = YamlRefused
    assert got == expected or got != got  # NaN


def test_without_libyaml_the_pure_python_parser_gives_the_same_bounds() -> None:
    """PyYAML built without libyaml (some platforms): the same loader on PyYAML's own parser."""
    code = (
        "import sys; sys.modules['yaml._yaml'] = sys.modules['yaml.cyaml'] = None\n"
        "from kitmlflow_tui.core import safe_yaml\n"
        "assert safe_yaml._PARSER_BASES[0].__module__ == 'yaml.reader', safe_yaml._PARSER_BASES\n"
        "assert safe_yaml.load('a: [1, {b: c}]') == {'a': [1, {'b': 'c'}]}\n"
        "try:\n    safe_yaml.load(sys.stdin.read())\nexcept safe_yaml.YamlRefused as exc:\n    print(exc.problem)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=billion_laughs(), capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("more than 200,000 values"), done.stdout
