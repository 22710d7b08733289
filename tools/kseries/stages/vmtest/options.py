"""kseries vmtest's command line: flags <-> VmOptions (both ways, for reproducers), and what
verify runs."""

from __future__ import annotations

import argparse

from kseries.core.context import Context
from kseries.core.errors import KseriesError
from kseries.kernel.qemu import MACHINES
from kseries.stages.vmtest.guest import DEFAULT_PHASES, SCENARIOS, VmOptions
from kseries.stages.vmtest.variants import selected_mutants


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", choices=tuple(MACHINES), default="x86_64",
                        help="guest architecture (default: x86_64)")
    parser.add_argument("--no-base", dest="base", action="store_false",
                        help="do not build and run the base kernel for comparison")
    parser.add_argument("--keep", action="store_true",
                        help="keep each kernel and initramfs next to its logs, to rerun the "
                             "QEMU command by hand")
    parser.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto",
                        help="QEMU accelerator (auto: TCG unless a KVM probe boot works)")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="hard limit per guest run (default: 600)")
    parser.add_argument("--scenario", dest="scenarios", action="append",
                        choices=tuple(sc.name for sc in SCENARIOS), metavar="NAME",
                        help="run only this scenario (repeatable; default: all of "
                             f"{', '.join(sc.name for sc in SCENARIOS)})")
    parser.add_argument("--mutants", action="store_true",
                        help="also build and run every mutant kernel of "
                             "kernel-overlay/vmtest/mutants/ (verify does): each check must "
                             "fail with the mutant that names it")
    parser.add_argument("--also-arch", dest="more_arches", action="append",
                        choices=tuple(MACHINES), metavar="ARCH",
                        help="after --arch, also boot the series on this arch (repeatable; "
                             "verify adds arm64)")
    parser.add_argument("--every-commit", action="store_true",
                        help="also boot every commit of the series, not only the head (a "
                             "runtime bisect; verify does)")
    parser.add_argument("--mutant", dest="only_mutants", action="append", metavar="NAME",
                        help="with --mutants, only this mutant (repeatable; the patch's file "
                             "name without .patch)")
    parser.add_argument("--guests", type=int, default=0, metavar="N",
                        help="guests run at once (default: one per CPU: a TCG guest uses one)")
    parser.add_argument("--phases", default=None, metavar="NAME:MIB,...",
                        help="virtio-mem sizes per phase (default: boot:256,grow:512,"
                             "shrink:128; the first is the size at boot)")


def parse_phases(text: str | None) -> tuple[tuple[str, int], ...]:
    if not text:
        return DEFAULT_PHASES
    phases = []
    for item in text.split(","):
        name, _, size = item.partition(":")
        if not name.isidentifier() or not size.isdigit() or int(size) % 128:
            raise KseriesError(f"--phases: '{item}' is not NAME:MIB with MIB a multiple of "
                               "128 (the memory block size)")
        phases.append((name, int(size)))
    if phases[0][0] != "boot" or len({n for n, _ in phases}) != len(phases):
        raise KseriesError("--phases: the first phase must be 'boot' and names must differ")
    return tuple(phases)


def options_from(args: argparse.Namespace) -> VmOptions:
    selected_mutants(tuple(args.only_mutants or ()))  # an unknown name fails here, not late
    return VmOptions(arch=args.arch, base=args.base, keep=args.keep, accel=args.accel,
                     timeout_s=args.timeout, phases=parse_phases(args.phases),
                     mutants=args.mutants or bool(args.only_mutants),
                     only_mutants=tuple(args.only_mutants or ()),
                     every_commit=args.every_commit,
                     more_arches=tuple(a for a in args.more_arches or () if a != args.arch),
                     scenarios=tuple(args.scenarios or ()), guests=guests_from(args.guests))


def guests_from(value: int) -> int:
    if value < 0:
        raise KseriesError(f"--guests: {value} is negative; give N >= 1, or 0 for one per CPU")
    return value


def options_to_args(options: VmOptions) -> list[str]:
    """The flags that differ from the defaults (so parsing them gives OPTIONS back)."""
    default = VmOptions()
    args = [] if options.arch == default.arch else [f"--arch={options.arch}"]
    args += [] if options.base else ["--no-base"]
    args += ["--keep"] if options.keep else []
    args += [] if options.accel == default.accel else [f"--accel={options.accel}"]
    args += [] if options.timeout_s == default.timeout_s else [f"--timeout={options.timeout_s}"]
    if options.phases != default.phases:
        args.append("--phases=" + ",".join(f"{name}:{mib}" for name, mib in options.phases))
    args += [f"--scenario={name}" for name in options.scenarios]
    args += ["--mutants"] if options.mutants else []
    args += [f"--mutant={name}" for name in options.only_mutants]
    args += ["--every-commit"] if options.every_commit else []
    args += [f"--also-arch={arch}" for arch in options.more_arches]
    args += [f"--guests={options.guests}"] if options.guests != default.guests else []
    return args


GUEST_ARCHES = ("x86_64", "arm64")  # verify boots both, x86_64 with everything


def verify_options(_ctx: Context, arches: tuple[str, ...] | None) -> VmOptions:
    """verify boots every guest arch asked for (default both), the first with the base side
    by side, the mutants (its report says which check each one kills) and every commit of
    the series; an arch list without a guest arch gives its reasoned skip."""
    guests = [a for a in GUEST_ARCHES if arches is None or a in arches]
    if not guests:
        return VmOptions(arch=(arches or GUEST_ARCHES)[0])
    return VmOptions(arch=guests[0], more_arches=tuple(guests[1:]), mutants=True,
                     every_commit=True)
