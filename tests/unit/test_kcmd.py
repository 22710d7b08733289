"""kernel/kcmd.py: kbuild's .cmd file of one object."""

from __future__ import annotations

from pathlib import Path

from kseries.kernel.kcmd import KbuildCmd, cmd_file, parse_cmd, read_cmd

CMD = """\
savedcmd_mm/memory_hotplug.o := gcc -Wp,-MMD,mm/.memory_hotplug.o.d -nostdinc \
-include /src/include/linux/kconfig.h -c -o mm/memory_hotplug.o /src/mm/memory_hotplug.c

source_mm/memory_hotplug.o := /src/mm/memory_hotplug.c

deps_mm/memory_hotplug.o := \\
  /src/include/linux/kconfig.h \\
    $(wildcard include/config/CPU_BIG_ENDIAN) \\
  include/generated/autoconf.h \\
  /src/include/linux/memory_hotplug.h \\

mm/memory_hotplug.o: $(deps_mm/memory_hotplug.o)

$(deps_mm/memory_hotplug.o):
"""


def test_parse_cmd_reads_command_source_and_files() -> None:
    cmd = parse_cmd(CMD)
    assert cmd.command.startswith("gcc -Wp,-MMD,mm/.memory_hotplug.o.d ")
    assert cmd.command.endswith(" /src/mm/memory_hotplug.c")
    assert cmd.source == "/src/mm/memory_hotplug.c"
    assert cmd.deps == ("/src/include/linux/kconfig.h", "include/generated/autoconf.h",
                        "/src/include/linux/memory_hotplug.h")


def test_read_cmd_finds_the_dot_file_of_a_target(tmp_path: Path) -> None:
    assert cmd_file(tmp_path, "mm/memory_hotplug.o") == tmp_path / "mm/.memory_hotplug.o.cmd"
    assert read_cmd(tmp_path, "mm/memory_hotplug.o") is None
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm/.memory_hotplug.o.cmd").write_text(CMD)
    assert read_cmd(tmp_path, "mm/memory_hotplug.o") == parse_cmd(CMD)
    assert parse_cmd("") == KbuildCmd("", None, ())
