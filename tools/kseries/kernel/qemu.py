"""Run a test guest in QEMU: command line per arch (as data), QMP, hard timeouts, crash detection.

The per-arch data (QEMU binary and machine, console, kernel image) is the arch registry's,
kernel/arches.toml.

The guest has two serial ports: the kernel console (first port) and a results port
(second port) where the guest prints TAP and asks the host for actions
("# vmtest-request: requested-size=BYTES"), which the host carries out through QMP.
Both are files on the host, polled; the guest is killed when it runs past the
timeout or prints nothing for too long, and panics, oopses and WARNs are named.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kseries.core import events as run_events
from kseries.core.errors import KseriesError
from kseries.core.proc import ToolTimeout, command_line, run
from kseries.kernel.arches import ARCHES, Arch, GuestFacts, require_arch_program

MIB = 1 << 20


@dataclass(frozen=True)
class Machine:
    """What differs per architecture: QEMU binary and machine, consoles, kernel image
    (the arch registry's facts, kernel/arches.toml)."""

    arch: str
    qemu: str
    machine_args: tuple[str, ...]
    console: str
    kernel_image: str
    memory_device: str
    results_port: str = "ttyS1"
    debian_arch: str = "amd64"


def _machine_of(arch: Arch, guest: GuestFacts) -> Machine:
    return Machine(arch.name, arch.qemu, guest.machine_args, guest.console, guest.kernel_image,
                   guest.memory_device, guest.results_port, guest.debian_arch)


# The arches with a [<arch>.guest] table in the registry.
MACHINES: Mapping[str, Machine] = MappingProxyType({
    a.name: _machine_of(a, a.guest) for a in ARCHES.values() if a.guest is not None})


def machine(arch: str) -> Machine:
    try:
        return MACHINES[arch]
    except KeyError:
        raise KseriesError(f"no VM support for arch '{arch}'; use one of "
                           f"{', '.join(MACHINES)}") from None


@dataclass(frozen=True)
class VirtioMem:
    """A virtio-mem device: its backing region (the most it can plug) and the size asked for.

    With BACKING (a file on a tmpfs), the region is a shared file mapping: QEMU punches holes
    for what is unplugged and anything that reads guest memory there allocates it, so the
    file's allocated size tells the host how much of the device the guest touched.
    """

    region: int = 1024 * MIB
    requested: int = 256 * MIB
    device_id: str = "vm0"
    # the device block: what is plugged at once (x86's memory block is 128 MiB, so a size
    # that is not a multiple of it leaves a block partly plugged)
    block_size: int = 2 * MIB
    backing: Path | None = None

    @property
    def qom_path(self) -> str:
        return f"/machine/peripheral/{self.device_id}"


@dataclass(frozen=True)
class Guest:
    machine: Machine
    kernel: Path
    initrd: Path
    append: str
    memory: int = 512 * MIB
    maxmem: int = 4096 * MIB
    virtio_mem: VirtioMem | None = field(default_factory=VirtioMem)
    accel: str = "tcg"


@dataclass(frozen=True)
class Timeouts:
    total_s: float = 600.0
    silent_s: float = 180.0
    after_panic_s: float = 3.0
    # One phase (the first part of a result's name: boot, grow, kexec_load_reboot, ...) may
    # take this long from its first result to the next phase's; a kexec reboot or a dump
    # under TCG takes well under a minute (measured), so this is a hang, not slowness.
    phase_s: float = 240.0
    heartbeat_s: float = 30.0


@dataclass(frozen=True)
class Problem:
    kind: str
    line: str


@dataclass(frozen=True)
class GuestRun:
    command: str
    exit_code: int | None
    duration_s: float
    console: str
    results: str
    problems: tuple[Problem, ...]
    timed_out: str | None
    events: tuple[str, ...]
    qemu_stderr: str
    console_log: str = ""

    @property
    def console_tail(self) -> str:
        return "\n".join(self.console.splitlines()[-40:])


# What a sick kernel prints on its console, most severe first.
PROBLEM_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("kernel panic", re.compile(r"Kernel panic - not syncing.*")),
    ("kernel BUG", re.compile(r"kernel BUG at .*|BUG: .*")),
    ("Oops", re.compile(r"Oops: .*|general protection fault.*")),
    ("WARNING", re.compile(r"WARNING: CPU: .*")),
    ("hung task", re.compile(r"INFO: task .* blocked for more than .*")),
    ("RCU stall", re.compile(r"rcu: INFO: .* detected stalls.*")),
)
REQUEST_RE = re.compile(r"^# vmtest-request: (\S+)=(\S+)\s*$")
# A KTAP result line's phase: "ok 7 grow.iomem_virtio_mem" -> grow.
RESULT_PHASE_RE = re.compile(r"^(?:not )?ok \d+ ([A-Za-z0-9_]+)\.")
CONSOLE_TAIL_LINES = 5
LOG = logging.getLogger("kseries")
PANIC = "Kernel panic - not syncing"
# The panic a guest asks for ("# vmtest-request: crash=PHASE", then sysrq-c): kdump's trigger.
ANNOUNCED_PANIC_RE = re.compile(r"Kernel panic - not syncing: sysrq triggered crash")
CRASH_EVENT = "the guest crashes on purpose:"

RequestHandler = Callable[[str, str, "Qmp"], str]


def qemu_command(guest: Guest, console: Path, results: Path, qmp: Path) -> list[str]:
    m = guest.machine
    cmd = [m.qemu, *m.machine_args, "-accel", guest.accel, "-nodefaults", "-display", "none",
           "-no-reboot", "-m", f"{guest.memory // MIB}M,maxmem={guest.maxmem // MIB}M,slots=1",
           "-kernel", str(guest.kernel), "-initrd", str(guest.initrd), "-append", guest.append,
           "-serial", f"file:{console}", *results_channel(m, results),
           "-qmp", f"unix:{qmp},server=on,wait=off"]
    if guest.virtio_mem is not None:
        vm = guest.virtio_mem
        backend = (f"memory-backend-file,mem-path={vm.backing},share=on" if vm.backing
                   else "memory-backend-ram")
        cmd += ["-object", f"{backend},id={vm.device_id}-mem,size={vm.region // MIB}M",
                "-device", f"{m.memory_device},id={vm.device_id},memdev={vm.device_id}-mem,"
                           f"requested-size={vm.requested // MIB}M,"
                           f"block-size={vm.block_size // MIB}M"]
    return cmd


def results_channel(m: Machine, results: Path) -> list[str]:
    """The guest's results port as a file on the host: a second serial port, or a virtio
    console where the machine has one UART."""
    if m.results_port.startswith("hvc"):
        return ["-device", "virtio-serial-pci,id=vmtest-serial",
                "-chardev", f"file,id=vmtest-results,path={results}",
                "-device", "virtconsole,chardev=vmtest-results"]
    return ["-serial", f"file:{results}"]


class Qmp:
    """A minimal QMP client on a unix socket: one command at a time, events skipped."""

    def __init__(self, path: Path, timeout_s: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        self.sock.connect(str(path))
        self.buffer = b""
        self._message()  # greeting
        self.execute("qmp_capabilities")

    def _message(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise KseriesError("QEMU closed the QMP connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, **arguments: Any) -> Any:
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            reply = self._message()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise KseriesError(f"QMP {command} failed: {reply['error'].get('desc')}")

    def close(self) -> None:
        self.sock.close()


def connect_qmp(path: Path, proc: subprocess.Popen[bytes], wait_s: float = 15.0) -> Qmp | None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists():
            try:
                return Qmp(path)
            except OSError:
                pass
        time.sleep(0.05)
    return None


def unannounced(problems: tuple[Problem, ...], events: list[str]) -> tuple[Problem, ...]:
    """PROBLEMS without the panics the guest announced (one per crash it asked for)."""
    expected = sum(1 for e in events if e.startswith(CRASH_EVENT))
    kept = []
    for problem in problems:
        if expected and problem.kind == "kernel panic" and ANNOUNCED_PANIC_RE.search(problem.line):
            expected -= 1
            continue
        kept.append(problem)
    return tuple(kept)


def find_problems(console: str) -> tuple[Problem, ...]:
    found = []
    for line in console.splitlines():
        for kind, pattern in PROBLEM_PATTERNS:
            if match := pattern.search(line):
                found.append(Problem(kind, match.group(0).strip()))
                break
    return tuple(found)


class _Tail:
    """Reads what a file gained since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.text = ""

    def read(self) -> str:
        try:
            with self.path.open("rb") as stream:
                stream.seek(self.offset)
                data = stream.read()
        except FileNotFoundError:
            return ""
        self.offset += len(data)
        new = data.decode(errors="replace").replace("\r", "")
        self.text += new
        return new


def run_guest(guest: Guest, logs: Path, timeouts: Timeouts,
              on_request: RequestHandler | None = None) -> GuestRun:
    """Boot GUEST until it powers off (or is killed), serving its requests; logs go to LOGS."""
    require_arch_program(guest.machine.qemu)
    logs.mkdir(parents=True, exist_ok=True)
    console_path, results_path = logs / "console.log", logs / "results.tap"
    for path in (console_path, results_path):
        path.unlink(missing_ok=True)
    sockdir = Path(tempfile.mkdtemp(prefix="kseries-qmp-"))
    qmp_path = sockdir / "qmp.sock"
    cmd = qemu_command(guest, console_path, results_path, qmp_path)
    (logs / "qemu-command.txt").write_text(command_line(cmd) + "\n")
    stderr_path = logs / "qemu-stderr.log"
    events: list[str] = []
    timed_out: str | None = None
    start = time.monotonic()
    with stderr_path.open("wb") as stderr, \
            run_events.span("guest", arch=guest.machine.arch, logs=str(logs)) as done:
        # Not proc.run: the guest is watched while it runs (QMP requests, a silence
        # timeout as well as a total one, see _watch), and stopped by _stop.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        try:
            qmp = connect_qmp(qmp_path, proc)
            timed_out = _watch(proc, qmp, _Tail(console_path), _Tail(results_path), timeouts,
                               on_request, events, start)
            if qmp is not None:
                qmp.close()
        finally:
            _stop(proc)
            shutil.rmtree(sockdir, ignore_errors=True)
        done.update(exit_code=proc.returncode, timed_out=timed_out)
    duration = round(time.monotonic() - start, 3)
    console = _read(console_path)
    return GuestRun(command_line(cmd), None if timed_out else proc.returncode, duration, console,
                    _read(results_path), unannounced(find_problems(console), events),
                    timed_out, tuple(events),
                    _read(stderr_path), str(console_path))


@dataclass
class _Watch:
    """What _watch keeps track of while the guest runs."""

    start: float
    last_output: float
    phase: str = "boot"
    phase_since: float = 0.0
    last_beat: float = 0.0
    panicked_at: float | None = None
    announced: int = 0  # crashes the guest asked for (kdump): their panics are not a problem
    pending: str = ""
    results_seen: int = 0


def _watch(proc: subprocess.Popen[bytes], qmp: Qmp | None, console: _Tail, results: _Tail,
           timeouts: Timeouts, on_request: RequestHandler | None, events: list[str],
           start: float) -> str | None:
    """Poll until QEMU exits; the reason it had to be stopped (with the console's last
    lines), or None."""
    state = _Watch(start, start, phase_since=start, last_beat=start)
    while proc.poll() is None:
        now = time.monotonic()
        new_console, new_results = console.read(), results.read()
        if new_console or new_results:
            state.last_output = now
        state.pending += new_results
        *lines, state.pending = state.pending.split("\n")
        for line in lines:
            qmp = _serve(line, qmp, on_request, events, state)
            _follow_phase(line, state, now)
        if state.panicked_at is None and console.text.count(PANIC) > state.announced:
            state.panicked_at = now
        stopped = _stop_reason(state, timeouts, now)
        if stopped:
            return f"{stopped}; console tail: {console_tail(console.text)}"
        if now - state.last_beat >= timeouts.heartbeat_s:
            state.last_beat = now
            LOG.info(f"guest: {now - start:.0f} s, phase {state.phase}; console: "
                     f"{console_tail(console.text, 1)}")
        time.sleep(0.1)
    console.read()
    results.read()
    _phase_event(state, None, time.monotonic())
    return None


def _phase_event(state: _Watch, following: str | None, now: float) -> None:
    """The phase that just ended, how long it took (from its first result, or from the
    start for boot) and when, for --events and make bench."""
    run_events.emit("guest-phase", phase=state.phase, duration_s=round(now - state.phase_since, 3),
                    ended_at_s=round(now - state.start, 3), next=following)


def _serve(line: str, qmp: Qmp | None, on_request: RequestHandler | None, events: list[str],
           state: _Watch) -> Qmp | None:
    """Act on a guest request line (a crash it announces, a QMP request); the QMP link,
    or None once QEMU went away."""
    request = REQUEST_RE.match(line.strip())
    if request and request.group(1) == "crash":
        state.announced += 1
        events.append(f"{CRASH_EVENT} {request.group(2)}")
    elif request and on_request is not None:
        if qmp is None:
            events.append(f"cannot serve '{line.strip()}': no QMP connection")
            return None
        try:
            events.append(on_request(request.group(1), request.group(2), qmp))
        except (OSError, KseriesError) as err:  # QEMU went away meanwhile
            events.append(f"cannot serve '{line.strip()}': {err}")
            return None
    return qmp


def _follow_phase(line: str, state: _Watch, now: float) -> None:
    found = RESULT_PHASE_RE.match(line.strip())
    if found and not state.results_seen:
        run_events.emit("guest-first-result", at_s=round(now - state.start, 3),
                        result=line.strip())
    state.results_seen += 1 if found else 0
    if found and found.group(1) != state.phase:
        _phase_event(state, found.group(1), now)
        state.phase, state.phase_since = found.group(1), now


def _stop_reason(state: _Watch, timeouts: Timeouts, now: float) -> str | None:
    if state.panicked_at is not None and now - state.panicked_at > timeouts.after_panic_s:
        return "kernel panic (QEMU did not exit)"
    if now - state.start > timeouts.total_s:
        return f"no power-off within {timeouts.total_s:.0f} s"
    if now - state.last_output > timeouts.silent_s:
        return f"guest hung: no output for {timeouts.silent_s:.0f} s (phase {state.phase})"
    if now - state.phase_since > timeouts.phase_s:
        return f"guest hung in phase {state.phase}: over {timeouts.phase_s:.0f} s in it"
    return None


def console_tail(text: str, count: int = CONSOLE_TAIL_LINES) -> str:
    """The last COUNT non-empty console lines, joined with ' | ' (one line for a report)."""
    lines = [line.strip() for line in text.replace("\r", "").splitlines() if line.strip()]
    return " | ".join(lines[-count:]) if lines else "(no console output)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").replace("\r", "")
    except FileNotFoundError:
        return ""


def resize_virtio_mem(device: VirtioMem, wait_s: float = 5.0) -> RequestHandler:
    """A request handler: requested-size=BYTES sets the device's requested-size via QMP and
    waits a little (WAIT_S) for the device to report that much plugged, so the event says
    what happened. The guest waits for its driver itself; while this handler waits the host
    reads nothing, so the wait stays short (a broken driver may never follow)."""

    def handle(key: str, value: str, qmp: Qmp) -> str:
        if key != "requested-size" or not value.isdigit():
            return f"ignored unknown request {key}={value}"
        qmp.execute("qom-set", path=device.qom_path, property="requested-size",
                    value=int(value))
        deadline = time.monotonic() + wait_s
        size = qmp.execute("qom-get", path=device.qom_path, property="size")
        while size != int(value) and time.monotonic() < deadline:
            time.sleep(0.2)
            size = qmp.execute("qom-get", path=device.qom_path, property="size")
        state = "plugged" if size == int(value) else "still plugged"
        return (f"qom-set {device.qom_path} requested-size={int(value) // MIB} MiB: "
                f"device {state} {size // MIB} MiB")

    return handle


@dataclass(frozen=True)
class Usage:
    """The device's backing memory at one moment: what its file has allocated (what the guest
    touched since it was plugged) and what the device says is plugged."""

    label: str
    allocated: int
    plugged: int


class DeviceRequests:
    """The request handler for a guest with a virtio-mem device: requested-size (resize, see
    resize_virtio_mem) and backend-usage=LABEL (measure the backing file, remembered in
    .usages; needs VirtioMem.backing)."""

    def __init__(self, device: VirtioMem, wait_s: float = 5.0) -> None:
        self.device = device
        self.resize = resize_virtio_mem(device, wait_s)
        self.usages: list[Usage] = []

    def __call__(self, key: str, value: str, qmp: Qmp) -> str:
        if key != "backend-usage":
            return self.resize(key, value, qmp)
        if self.device.backing is None:
            return f"cannot measure backend-usage={value}: the device has no file backing"
        allocated = self.device.backing.stat().st_blocks * 512
        plugged = int(qmp.execute("qom-get", path=self.device.qom_path, property="size"))
        self.usages.append(Usage(value, allocated, plugged))
        return (f"backend-usage {value}: {allocated // MIB} MiB of the device's memory "
                f"allocated, {plugged // MIB} MiB plugged")


def qemu_version(binary: str) -> str:
    proc = run([require_arch_program(binary), "--version"], timeout_s=60, check=False)
    return proc.stdout.splitlines()[0] if proc.stdout else "unknown"


def memory_device_support(m: Machine) -> tuple[bool, str]:
    """Does this QEMU map a virtio-mem device on M's machine? Asked of QEMU itself (-S, QMP)."""
    binary = require_arch_program(m.qemu)
    cmd = [binary, *m.machine_args, "-accel", "tcg", "-nodefaults", "-display", "none", "-S",
           "-m", "512M,maxmem=4G,slots=1", "-object", "memory-backend-ram,id=probe-mem,size=1G",
           "-device", f"{m.memory_device},id=probe,memdev=probe-mem,requested-size=0",
           "-qmp", "stdio"]
    script = "".join(json.dumps({"execute": c}) + "\n"
                     for c in ("qmp_capabilities", "query-memory-devices", "quit"))
    try:
        proc = run(cmd, input_text=script, timeout_s=60, check=False)
    except ToolTimeout:
        return False, f"{m.qemu} did not answer a QMP probe within 60 s"
    for line in proc.stdout.splitlines():
        reply = json.loads(line) if line.startswith("{") else {}
        for device in reply.get("return", []) if isinstance(reply.get("return"), list) else []:
            data = device.get("data", {})
            if device.get("type") == "virtio-mem" and data.get("memaddr"):
                return True, (f"{qemu_version(m.qemu)} maps {m.memory_device} on "
                              f"'{' '.join(m.machine_args)}' at {data['memaddr']:#x}")
    error = (proc.stderr.strip().splitlines() or ["no virtio-mem memory device"])[-1]
    return False, f"{qemu_version(m.qemu)}: {m.memory_device} on {m.machine_args[1]}: {error}"
