"""kernel/cpp.py: #if guards per line and conditions under a .config or with nothing known."""

from __future__ import annotations

import pytest

from kseries.kernel.cpp import evaluate, guards

CONFIG = {"ON": "y", "MOD": "m", "OFF": "n"}


@pytest.mark.parametrize(("expr", "expected"), [
    ("defined(CONFIG_ON)", True),
    ("defined CONFIG_OFF", False),
    ("defined(CONFIG_MOD)", False),
    ("defined(CONFIG_MOD_MODULE)", True),
    ("CONFIG_ON && CONFIG_OFF", False),
    ("CONFIG_OFF || CONFIG_ON", True),
    ("!CONFIG_OFF && !(CONFIG_OFF || !CONFIG_ON)", True),
    ("IS_ENABLED(CONFIG_MOD)", True),
    ("IS_BUILTIN(CONFIG_MOD)", False),
    ("IS_MODULE(CONFIG_MOD)", True),
    ("IS_REACHABLE(CONFIG_ON)", True),
    ("IS_REACHABLE(CONFIG_MOD)", None),
    ("IS_ENABLED(CONFIG_NOT_IN_THE_CONFIG)", False),
    ("OTHER_MACRO", None),
    ("OTHER_MACRO && CONFIG_ON", None),
    ("OTHER_MACRO && CONFIG_OFF", False),
    ("OTHER_MACRO || CONFIG_ON", True),
    ("LINUX_VERSION_CODE >= 0x60000", None),
    ("defined(CONFIG_ON", None),
    ("1UL && 0x10", True),
])
def test_conditions_under_a_config(expr: str, expected: bool | None) -> None:
    assert evaluate(expr, CONFIG) is expected


@pytest.mark.parametrize(("expr", "expected"), [
    ("0", False),
    ("(1)", True),
    ("((0))", False),
    ("0x0", False),
    ("1UL", True),
    ("010", True),
    ("", None),
    ("1.0", None),
    ("CONFIG_ON", None),
    ("defined(CONFIG_ON)", None),
    ("IS_ENABLED(CONFIG_ON)", None),
    ("!defined(X)", None),
])
def test_without_a_config_only_numbers_decide(expr: str, expected: bool | None) -> None:
    assert evaluate(expr) is expected


def test_guards_of_nested_groups_and_continued_lines() -> None:
    text = ("#if defined(A) && \\\n    defined(B)\nint a;\n#ifndef C /* comment */\nint c;\n"
            "#endif\n#else\nint b;\n#endif\nint d;\n")
    lines = guards(text)
    assert lines[0] == lines[1] == ("defined(A) &&      defined(B)",)
    assert lines[2] == ("defined(A) &&      defined(B)",)
    assert lines[4] == ("defined(A) &&      defined(B)", "!defined(C)")
    assert lines[7] == ("!(defined(A) &&      defined(B))",)
    assert lines[9] == ()
