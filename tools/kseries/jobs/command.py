"""The command line of plan / job / merge (registered by cli.py)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from kseries.core.context import Context, progress
from kseries.core.errors import KseriesError
from kseries.core.report import write_json_atomic
from kseries.export.command import add_format_options, check_formats, export_after_run
from kseries.jobs.gitlab import PIPELINE_NAME, write_pipeline
from kseries.jobs.merge import JOB_MARK, merge_jobs, read_job
from kseries.jobs.plan import PLAN_NAME, Job, load_plan, make_plan, write_plan

# A job is a whole kseries run: a kernel build, a guest; the longest (vmtest with every
# mutant on a cold cache) takes about an hour here.
JOB_TIMEOUT_S = 4 * 60 * 60


def configure_plan(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan-file", type=Path, default=None, metavar="FILE",
                        help=f"where to write the plan (default: <out>/{PLAN_NAME})")
    parser.add_argument("--format", dest="plan_format", choices=("json", "gitlab-ci"),
                        default="json", help="json: jobs.json only; gitlab-ci: also "
                        f"<out>/{PIPELINE_NAME}, a child pipeline that runs the jobs")
    parser.add_argument("--kseries-command", default="kseries", metavar="CMD",
                        help="how the pipeline's jobs call kseries (default: kseries)")


def plan_main(ctx: Context, args: argparse.Namespace) -> int:
    plan = make_plan(ctx, args.stage, args.arch)
    path = write_plan(plan, args.plan_file or ctx.out / PLAN_NAME)
    for job in plan.jobs:
        needs = f" (after {', '.join(job.needs)})" if job.needs else ""
        print(f"{job.id}: kseries {' '.join(job.argv)}{needs}")
    print(f"plan: {path} ({len(plan.jobs)} jobs)")
    if args.plan_format == "gitlab-ci":
        # paths as given (relative in a CI job), not resolved on this machine
        named = args.plan_file or args.out / PLAN_NAME
        written = write_pipeline(plan, ctx.out / PIPELINE_NAME, kseries=args.kseries_command,
                                 plan_file=str(named))
        print(f"pipeline: {written}")
    return 0


def configure_job(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", metavar="JOB", help="the job's id in the plan (kseries plan "
                        "lists them)")
    parser.add_argument("--plan-file", type=Path, default=None, metavar="FILE",
                        help=f"the plan (default: out/{PLAN_NAME})")
    parser.add_argument("--from", dest="inputs", action="append", type=Path, default=[],
                        metavar="DIR", help="the --out of a job this one needs (repeatable)")


def job_main(ctx: Context, args: argparse.Namespace) -> int:
    """Run one job of the plan into --out: the reports of the jobs it needs first (merged),
    then the job's own command, which adds its stages; job.json says which job it was."""
    plan = load_plan(args.plan_file or Path("out") / PLAN_NAME)
    job = plan.job(args.job)
    given = {read_job(d, i).job_id for i, d in enumerate(args.inputs)}
    missing = [need for need in job.needs if need not in given]
    if missing:
        raise KseriesError(f"job {job.id} needs the results of {', '.join(missing)}: pass "
                           "their --out directories with --from DIR")
    out = ctx.out
    out.mkdir(parents=True, exist_ok=True)
    if args.inputs:
        merge_jobs([read_job(d, i) for i, d in enumerate(args.inputs)]).write(out)
    index = [j.id for j in plan.jobs].index(job.id)
    write_json_atomic(out / JOB_MARK, {"id": job.id, "stage": job.stage, "arch": job.arch,
                                       "index": index, "argv": list(job.argv)})
    return run_job(job, out)


def run_job(job: Job, out: Path) -> int:
    cmd = [sys.executable, "-m", "kseries", *job.argv, "--out", str(out)]
    progress(f"job {job.id}: {' '.join(cmd[2:])}")
    try:
        return subprocess.run(cmd, check=False, timeout=JOB_TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        raise KseriesError(f"job {job.id} ran past {JOB_TIMEOUT_S} s and was stopped") from None


def configure_merge(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                        help="the --out directories of the jobs")
    parser.add_argument("--out", type=Path, default=Path("out"), metavar="DIR",
                        help="where the merged report.json goes (default: out)")
    add_format_options(parser, required=False)


def add_merge_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
                      epilog: str) -> None:
    text = "merge the --out directories of a plan's jobs into one report.json"
    child = subparsers.add_parser("merge", help=text, description=text, epilog=epilog)
    configure_merge(child)
    child.set_defaults(plain=merge_main, handler=None, locked=False)


def merge_main(args: argparse.Namespace) -> int:
    try:
        check_formats(args.formats, args.origin)
        report = merge_jobs([read_job(d, i) for i, d in enumerate(args.dirs)])
    except KseriesError as err:
        print(f"kseries: error: {err}", file=sys.stderr)
        return 1
    path = report.write(args.out)
    for line in report.summary_lines():
        print(line)
    print(f"report: {path}")
    code = export_after_run(args.out, args)
    return code or report.exit_code

