"""The runner with fake stages: order, needs, error capture, merging, Ctrl-C, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kseries.cli import finish
from kseries.core.context import Context, Options, make_context
from kseries.core.errors import InfraError, KseriesError
from kseries.core.pipeline import (
    NoOptions,
    Planned,
    Runner,
    RunState,
    StageDef,
    no_args,
    no_options_for_verify,
    no_options_from,
    plan,
)
from kseries.core.report import Stage, Status


def context(out: Path) -> Context:
    return make_context(Options(series_file=None, cache_dir=out / "cache", tree=None,
                                revision=None, mbox=None, out=out))


def fake(name: str, result: Callable[[RunState], Stage], needs: tuple[str, ...] = ()
         ) -> StageDef[NoOptions]:
    return StageDef(name=name, help=name, run=lambda state, _o: result(state),
                    from_args=no_options_from, for_verify=no_options_for_verify,
                    to_args=no_args, needs=lambda _o: needs)


def passing(name: str, **data: Any) -> Callable[[RunState], Stage]:
    return lambda _state: Stage(name=name, status="pass", summary=f"{name} ok", duration_s=0.0,
                                data=dict(data))


def raising(error: BaseException) -> Callable[[RunState], Stage]:
    def run(_state: RunState) -> Stage:
        raise error
    return run


def run(ctx: Context, *stages: StageDef[Any]) -> Any:
    return Runner(ctx, "verify", lambda _m: None).run([Planned(s, NoOptions()) for s in stages])


def saved(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "report.json").read_text())
    return data


def test_plan_adds_what_is_needed_in_registry_order() -> None:
    a, b, c = fake("a", passing("a")), fake("b", passing("b"), ("a",)), fake("c", passing("c"),
                                                                              ("b",))
    planned = plan([Planned(c, NoOptions())], [a, b, c], lambda s: Planned(s, NoOptions()))
    assert [p.stage.name for p in planned] == ["a", "b", "c"]


def test_unmet_need_is_a_reasoned_skip_and_the_run_goes_on(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    outcome = run(ctx, fake("a", raising(KseriesError("no such mbox: x.mbx"))),
                  fake("b", passing("b"), ("a",)), fake("c", passing("c")))
    statuses = {s.name: (s.status, s.summary) for s in outcome.report.stages}
    assert statuses["a"] == ("fail", "no such mbox: x.mbx")
    assert statuses["b"][0] == "skip" and "needs the a stage, which ended fail" in statuses["b"][1]
    assert statuses["c"] == ("pass", "c ok")
    assert outcome.raised == (("a", "no such mbox: x.mbx"),)
    assert outcome.report.exit_code == 1


def test_a_bug_in_a_stage_is_an_error_with_the_traceback_in_its_log(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    outcome = run(ctx, fake("a", raising(ZeroDivisionError("division by zero"))),
                  fake("b", passing("b")))
    a = outcome.report.stage("a")
    assert a.status == "error" and "ZeroDivisionError" in a.summary
    assert "Traceback (most recent call last)" in Path(a.log).read_text()
    assert outcome.report.stage("b").status == "pass"
    assert outcome.report.exit_code == 3
    assert saved(tmp_path)["status"] == "error"


def test_an_infrastructure_fault_is_an_error_not_a_failure(tmp_path: Path) -> None:
    outcome = run(context(tmp_path), fake("a", raising(InfraError("make timed out after 1 s"))))
    assert outcome.report.stage("a").status == "error"
    assert outcome.report.exit_code == 3


def test_report_is_written_after_every_stage(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def second(_state: RunState) -> Stage:
        seen.append([s["name"] for s in saved(tmp_path)["stages"]])
        return Stage(name="b", status="pass", summary="", duration_s=0.0)

    run(context(tmp_path), fake("a", passing("a")), fake("b", second))
    assert seen == [["a"]]


def test_ctrl_c_keeps_the_finished_stages(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run(ctx, fake("a", passing("a")), fake("b", raising(KeyboardInterrupt())),
            fake("c", passing("c")))
    report = saved(tmp_path)
    assert [s["name"] for s in report["stages"]] == ["a"]
    assert report["interrupted"] is True and report["exit_code"] == 130
    assert report["ended"] is not None


def test_a_later_run_merges_its_stages_into_the_report(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    run(ctx, fake("a", passing("a", n=1)), fake("b", passing("b")))
    run(ctx, fake("a", passing("a", n=2)))
    report = saved(tmp_path)
    assert [(s["name"], s["data"]) for s in report["stages"]] == [("b", {}), ("a", {"n": 2})]


def test_a_report_about_another_revision_is_replaced_not_merged(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    run(ctx, fake("a", passing("a")))
    data = saved(tmp_path)
    data["revision"] = "v0"
    (tmp_path / "report.json").write_text(json.dumps(data))
    run(ctx, fake("b", passing("b")))
    assert [s["name"] for s in saved(tmp_path)["stages"]] == ["b"]


def test_earlier_stages_are_visible_to_a_later_standalone_run(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    run(ctx, fake("build", passing("build", coverage={"x": 1})))
    got: list[Any] = []

    def reader(state: RunState) -> Stage:
        earlier = state.latest("build")
        got.append(earlier.data if earlier else None)
        return Stage(name="callers", status="pass", summary="", duration_s=0.0)

    run(ctx, fake("callers", reader))
    assert got == [{"coverage": {"x": 1}}]


def fixed(name: str, status: Status) -> Callable[[RunState], Stage]:
    return lambda _state: Stage(name=name, status=status, summary=status, duration_s=0.0)


@pytest.mark.parametrize(("statuses", "code"), [
    (("pass", "skip"), 0), (("skip",), 0), (("pass", "warn", "skip"), 250),
    (("warn", "fail"), 1), (("fail", "error"), 3),
])
def test_exit_code_of_the_stages_this_run_ran(tmp_path: Path, statuses: tuple[Status, ...],
                                              code: int, capsys: pytest.CaptureFixture[str]
                                              ) -> None:
    ctx = context(tmp_path)
    stages = [fake(f"s{i}", fixed(f"s{i}", status)) for i, status in enumerate(statuses)]
    planned = [Planned(s, NoOptions()) for s in stages]
    outcome = Runner(ctx, "verify", lambda _m: None).run(planned)
    assert finish(ctx, outcome, planned, render=False) == code
    assert capsys.readouterr().out.splitlines()[-2].startswith("overall: ")


def test_exit_code_ignores_stages_of_earlier_runs(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    ctx = context(tmp_path)
    run(ctx, fake("build", lambda _s: Stage(name="build", status="fail", summary="broken",
                                            duration_s=0.0)))
    planned = [Planned(fake("callers", passing("callers")), NoOptions())]
    outcome = Runner(ctx, "callers", lambda _m: None).run(planned)
    assert outcome.report.status == "fail"  # the merged report still shows the build
    assert finish(ctx, outcome, planned, render=False) == 0
    capsys.readouterr()
