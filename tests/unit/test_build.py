"""build.py and kwarn.py on small real inputs: real gcc, sparse and make runs on tiny C files,
and the compile plan (touched functions, callers) on a small git repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.kernel.cpp import evaluate, guards
from kseries.kernel.kwarn import (
    counted,
    fixed_warnings,
    format_0day,
    new_warnings,
    parse_diagnostics,
    warnings_only,
)
from kseries.series.apply import AppliedPatch, ApplyResult
from kseries.stages.build.checks import coverage_check, new_failures
from kseries.stages.build.coverage import compiled_calls
from kseries.stages.build.execute import BaseCache
from kseries.stages.build.make import StepResult, run_make
from kseries.stages.build.plan import (
    caller_files,
    diff_changes,
    functions_at,
    is_static,
    make_plan,
    touched_functions,
)
from tests.conftest import git

MAKEFILE = """\
CFLAGS := -Wall -Wextra -Wno-unused-parameter
%.o: %.c
\t@echo '  CC      $@'
\t@$(CC) $(CFLAGS) -c $(abspath $<) -o $@
%.chk: %.c
\t@echo '  CHECK   $(abspath $<)'
\t@sparse -Wbitwise $(abspath $<)
"""


def build(directory: Path, sources: dict[str, str], *targets: str) -> tuple[int, str]:
    """Write SOURCES and make TARGETS there (kbuild-style quiet lines, real gcc/sparse)."""
    (directory / "Makefile").write_text(MAKEFILE)
    for name, text in sources.items():
        (directory / name).write_text(text)
    for target in targets:
        (directory / target).unlink(missing_ok=True)
    return run_make(["make", "-C", str(directory), "-k", "-Otarget", "-j2", *targets],
                    directory / "make.log")


UNUSED_X = "int f(void)\n{\n\tint x;\n\treturn 0;\n}\n"
UNUSED_Y = "int f(void)\n{\n\tint y;\n\treturn 0;\n}\n"


def test_gcc_warning_parsed_with_file_text_flag_and_object(tmp_path: Path) -> None:
    code, output = build(tmp_path, {"a.c": UNUSED_X}, "a.o")
    assert code == 0, output
    [diag] = parse_diagnostics(output, (tmp_path,))
    assert (diag.file, diag.line, diag.severity) == ("a.c", 3, "warning")
    assert (diag.text, diag.flag, diag.obj, diag.tool) == (
        "unused variable 'x'", "-Wunused-variable", "a.o", "cc")
    assert diag.key == ("a.c", "unused variable 'x'", "-Wunused-variable")
    assert any("int x;" in line for line in diag.detail)
    assert diag.context == ("a.c: In function 'f':",)


def test_moved_warning_is_not_new_but_swapped_one_is(tmp_path: Path) -> None:
    _, base_log = build(tmp_path, {"a.c": UNUSED_X}, "a.o")
    base = parse_diagnostics(base_log, (tmp_path,))
    _, moved_log = build(tmp_path, {"a.c": "\n\n/* moved */\n" + UNUSED_X}, "a.o")
    moved = parse_diagnostics(moved_log, (tmp_path,))
    assert moved[0].line == 6
    assert new_warnings(base, moved) == []
    _, swapped_log = build(tmp_path, {"a.c": UNUSED_Y}, "a.o")
    swapped = parse_diagnostics(swapped_log, (tmp_path,))
    assert len(swapped) == len(base) == 1
    assert [d.text for d in new_warnings(base, swapped)] == ["unused variable 'y'"]
    assert [d.text for d in fixed_warnings(base, swapped)] == ["unused variable 'x'"]
    report = format_0day(swapped, new_warnings(base, swapped))
    assert report[0] == "All warnings (new ones prefixed by >>):"
    assert ">> a.c:3:13: warning: unused variable 'y' [-Wunused-variable]" in report


def test_one_more_instance_of_the_same_warning_is_new(tmp_path: Path) -> None:
    one = "int f(int a)\n{\n\tif (a = 1)\n\t\treturn 1;\n\treturn 0;\n}\n"
    two = one + "int g(int a)\n{\n\tif (a = 1)\n\t\treturn 1;\n\treturn 0;\n}\n"
    _, base_log = build(tmp_path, {"a.c": one}, "a.o")
    _, head_log = build(tmp_path, {"a.c": two}, "a.o")
    base, head = parse_diagnostics(base_log, (tmp_path,)), parse_diagnostics(head_log, (tmp_path,))
    assert counted(base)[base[0].key] == 1 and counted(head)[base[0].key] == 2
    assert len(new_warnings(base, head)) == 2


def test_header_warning_from_several_objects_counts_once(tmp_path: Path) -> None:
    header = "static inline int h(void)\n{\n\tint unused;\n\treturn 0;\n}\n"
    sources = {"h.h": header, "a.c": '#include "h.h"\nint a(void) { return h(); }\n',
               "b.c": '#include "h.h"\nint b(void) { return h(); }\n'}
    _, base_log = build(tmp_path, {k: v for k, v in sources.items() if k != "b.c"}, "a.o")
    _, head_log = build(tmp_path, sources, "a.o", "b.o")
    base, head = parse_diagnostics(base_log, (tmp_path,)), parse_diagnostics(head_log, (tmp_path,))
    assert {d.obj for d in head} == {"a.o", "b.o"}
    assert {d.file for d in head} == {"h.h"}
    assert new_warnings(base, head) == []


def test_compile_error_and_failed_target(tmp_path: Path) -> None:
    code, output = build(tmp_path, {"ok.c": "int ok;\n", "bad.c": "int f(void) { return 1 }\n"},
                         "ok.o", "bad.o")
    assert code != 0
    errors = [d for d in parse_diagnostics(output, (tmp_path,)) if d.severity == "error"]
    assert errors and errors[0].file == "bad.c" and "expected ';'" in errors[0].text
    assert errors[0].obj == "bad.o"
    assert (tmp_path / "ok.o").exists() and not (tmp_path / "bad.o").exists()


BITWISE = """typedef int __attribute__((bitwise)) mhp_t;
#define MHP_A ((__attribute__((force)) mhp_t)1)
int add(int nid, mhp_t flags);
int one(void);
int one(void) { return add(0, 1); }
"""


def test_sparse_bitwise_warning_parsed_with_its_details(tmp_path: Path) -> None:
    _, output = build(tmp_path, {"s.c": BITWISE}, "s.chk")
    diags = parse_diagnostics(output, (tmp_path,))
    [diag] = warnings_only(diags)
    assert (diag.file, diag.tool, diag.obj, diag.flag) == ("s.c", "sparse", "s.o", "")
    assert "incorrect type in argument 2" in diag.text
    assert "expected restricted mhp_t" in diag.key[1]
    fixed = BITWISE.replace("add(0, 1)", "add(0, MHP_A)")
    _, clean = build(tmp_path, {"s.c": fixed}, "s.chk")
    assert warnings_only(parse_diagnostics(clean, (tmp_path,))) == []


# -- the compile plan on a small repository ---------------------------------------------------

API_H = "int api_fn(int a);\nint other_fn(int a);\n"
API_C = """#include "api.h"

static int helper(int a)
{
\treturn a + 1;
}

int api_fn(int a)
{
\treturn helper(a);
}

int other_fn(int a)
{
\treturn a;
}
"""
USER_C = '#include "../lib/api.h"\nint user(void)\n{\n\treturn api_fn(1);\n}\n'
COMMENT_C = "/* api_fn(x) is documented elsewhere */\nint quiet(void) { return 0; }\n"
OTHER_C = '#include "../lib/api.h"\nint o(void) { return other_fn(2); }\n'


@pytest.fixture
def api_repo(tmp_path: Path) -> tuple[Path, str, list[str]]:
    repo = tmp_path / "linux"
    for name, text in {"lib/api.h": API_H, "lib/api.c": API_C, "drivers/user.c": USER_C,
                       "drivers/comment.c": COMMENT_C, "drivers/other.c": OTHER_C,
                       "tools/t.c": "int t(void) { return api_fn(0); }\n"}.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "init", "-q", "-b", "master")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD")
    commits = []
    api = repo / "lib" / "api.c"
    api.write_text(api.read_text().replace("return a + 1;", "return a + 2;"))
    git(repo, "commit", "-q", "-a", "-m", "helper")
    commits.append(git(repo, "rev-parse", "HEAD"))
    api.write_text(api.read_text().replace("return helper(a);", "return helper(a) * 2;"))
    git(repo, "commit", "-q", "-a", "-m", "api")
    commits.append(git(repo, "rev-parse", "HEAD"))
    return repo, base, commits


def test_functions_at_and_static() -> None:
    assert functions_at(API_C, [5]) == {"helper"}
    assert functions_at(API_C, [10, 15]) == {"api_fn", "other_fn"}
    assert functions_at(API_C, [1, 2]) == set()
    assert functions_at(API_H, [1]) == {"api_fn"}
    assert is_static(API_C, "helper") and not is_static(API_C, "api_fn")


def test_touched_functions_and_their_callers(api_repo: tuple[Path, str, list[str]]) -> None:
    repo, base, commits = api_repo
    changes = diff_changes(repo, base, commits[-1])
    assert [(c.path, sorted(c.new_lines)) for c in changes] == [("lib/api.c", [5, 10])]
    assert touched_functions(repo, base, commits[-1], changes) == {"api_fn": "lib/api.c"}
    assert caller_files(repo, ["api_fn"]) == {"drivers/user.c": ("api_fn",)}


def test_plan_touched_files_then_callers(api_repo: tuple[Path, str, list[str]]) -> None:
    repo, base, commits = api_repo
    patches = tuple(AppliedPatch(i + 1, f"patch {i + 1}", c) for i, c in enumerate(commits))
    applied = ApplyResult(repo, "b", base, commits[-1], patches, False, (), "")
    plan = make_plan(repo, applied)
    assert [(t.source, t.obj, t.why) for t in plan.targets] == [
        ("lib/api.c", "lib/api.o", "touched by patch 1, 2"),
        ("drivers/user.c", "drivers/user.o", "calls api_fn()"),
    ]
    assert plan.patch_files == (frozenset({"lib/api.c"}), frozenset({"lib/api.c"}))
    family_plan = make_plan(repo, applied, family=("api_fn", "other_fn"))
    assert [t.source for t in family_plan.targets] == ["lib/api.c", "drivers/other.c",
                                                       "drivers/user.c"]


def test_coverage_fails_when_a_file_is_built_nowhere() -> None:
    matrix = {"a.c": {"x86_64": {"status": "built", "reason": ""},
                      "s390": {"status": "failed", "reason": "fails at patch-2"}},
              "arch/powerpc/b.c": {"x86_64": {"status": "not-buildable",
                                              "reason": "arch/powerpc/ is built only with "
                                                        "ARCH=powerpc"}}}
    check = coverage_check(matrix)
    assert check.status == "fail" and "arch/powerpc/b.c" in check.summary
    assert coverage_check(matrix, some_arches=True).status == "warn"
    matrix["a.c"]["x86_64"] = {"status": "failed", "reason": "fails at patch-1"}
    assert coverage_check(matrix, some_arches=True).status == "fail"


# -- is the call compiled under this config? --------------------------------------------------

GUARDED = """int a(void);
#ifdef CONFIG_PROBE
int probe(void) { return add(1); }
#elif IS_ENABLED(CONFIG_OTHER) && !defined(CONFIG_NOT)
int other(void) { return add(2); }
#else
int none(void) { return add(3); }
#endif
#if SOME_MACRO > 1
int maybe(void) { return add(4); }
#endif
"""


def test_guards_follow_if_elif_else() -> None:
    lines = guards(GUARDED)
    assert lines[0] == ()
    assert lines[2] == ("defined(CONFIG_PROBE)",)
    assert lines[4] == ("!(defined(CONFIG_PROBE))", "IS_ENABLED(CONFIG_OTHER) && "
                        "!defined(CONFIG_NOT)")
    assert lines[6] == ("!(defined(CONFIG_PROBE))", "!(IS_ENABLED(CONFIG_OTHER) && "
                        "!defined(CONFIG_NOT))")
    assert lines[9] == ("SOME_MACRO > 1",)


def test_evaluate_conditions_under_a_config() -> None:
    values = {"A": "y", "M": "m", "N": "n"}
    assert evaluate("defined(CONFIG_A)", values) is True
    assert evaluate("defined CONFIG_M", values) is False
    assert evaluate("defined(CONFIG_M_MODULE)", values) is True
    assert evaluate("IS_ENABLED(CONFIG_M) && !IS_BUILTIN(CONFIG_M)", values) is True
    assert evaluate("IS_MODULE(CONFIG_A) || CONFIG_N", values) is False
    assert evaluate("CONFIG_UNSET || (1 && CONFIG_A)", values) is True
    assert evaluate("SOME_MACRO > 1", values) is None
    assert evaluate("IS_ENABLED(CONFIG_A) || SOME_MACRO", values) is True
    assert evaluate("IS_ENABLED(CONFIG_N) && SOME_MACRO", values) is False


def test_compiled_calls_says_which_condition_keeps_the_call_out() -> None:
    assert compiled_calls(GUARDED, [3], {"PROBE": "y"}) == ("compiled", "")
    assert compiled_calls(GUARDED, [3], {}) == (
        "compiled out", "every call is under #if defined(CONFIG_PROBE)")
    assert compiled_calls(GUARDED, [3, 5], {"OTHER": "m"}) == ("compiled", "")
    assert compiled_calls(GUARDED, [10], {})[0] == "unknown"


def test_only_objects_that_built_at_the_base_are_new_failures(tmp_path: Path) -> None:
    """An object that already failed at the base (e.g. a config the base cannot build)
    is not blamed on the series; one that built there, or is new, is."""
    base = BaseCache(tmp_path / "base.json", "key", {
        "mm/a.o": {"ok": True, "diagnostics": []},
        "mm/b.o": {"ok": False, "diagnostics": []}})
    step = StepResult("x86_64", "patch-1", "c0ffee", ("mm/a.o", "mm/b.o", "mm/new.o"),
                      ("mm/a.o", "mm/b.o", "mm/new.o"), (), 1.0, "log", "make")
    assert new_failures(base, step) == ["mm/a.o", "mm/new.o"]
    only_old = StepResult("x86_64", "patch-1", "c0ffee", ("mm/a.o", "mm/b.o"), ("mm/b.o",),
                          (), 1.0, "log", "make", returncode=2)
    assert new_failures(base, only_old) == []


def test_caller_files_are_remembered_per_head_and_names(small_repo: Path, tmp_path: Path) -> None:
    """A second build of the same head (a rerun, a per-arch job) does not tokenize the
    tree again; another head or other names ask again."""
    from kseries.stages.build.plan import cached_caller_files
    (small_repo / "mm" / "b.c").write_text("void f(void) { add_memory(0, 0, 0, 0); }\n")
    git(small_repo, "add", "mm/b.c")
    cache = tmp_path / "cache"
    first = cached_caller_files(cache, small_repo, "head1", ["add_memory"])
    assert first == {"mm/b.c": ("add_memory",)}
    (small_repo / "mm" / "b.c").unlink()
    assert cached_caller_files(cache, small_repo, "head1", ["add_memory"]) == first
    assert cached_caller_files(cache, small_repo, "head2", ["add_memory"]) == {}
    assert cached_caller_files(None, small_repo, "head1", ["add_memory"]) == {}
