"""What the checks stage reads from checkpatch, kernel-doc and get_maintainer, and how it
judges it (outputs in the scripts' own formats, as Linux 6.12's print them)."""

from __future__ import annotations

import pytest

from kseries.kernel import maintainers as get_maintainer
from kseries.stages.checks import checkpatch, kerneldoc, maintainers
from kseries.stages.checks.inputs import Recipients

CLEAN = """total: 0 errors, 0 warnings, 0 checks, 42 lines checked

Your patch has no obvious style problems and is ready for submission.
"""
DIRTY = """WARNING: Missing commit description - Add an appropriate one

CHECK: Alignment should match open parenthesis
#31: FILE: mm/memory_hotplug.c:1402:
+static int foo(int a,
+	int b)

ERROR: code indent should use tabs where possible
#40: FILE: include/linux/memory_hotplug.h:12:
+        int x;$

total: 1 errors, 1 warnings, 1 checks, 50 lines checked
"""


def test_checkpatch_clean_passes() -> None:
    result = checkpatch.parse(CLEAN)
    assert result is not None and result.status == "pass" and not result.findings
    assert result.summary() == "0 errors, 0 warnings, 0 checks"


def test_checkpatch_findings_with_their_place() -> None:
    result = checkpatch.parse(DIRTY)
    assert result is not None
    assert (result.errors, result.warnings, result.checks) == (1, 1, 1)
    assert [f.where for f in result.findings] == ["", "mm/memory_hotplug.c:1402",
                                                  "include/linux/memory_hotplug.h:12"]
    assert result.status == "fail"
    assert result.summary() == ("1 errors, 1 warnings, 1 checks; first: WARNING: Missing commit "
                                "description - Add an appropriate one")


@pytest.mark.parametrize(("text", "status"), [
    ("CHECK: x\n\ntotal: 0 errors, 0 warnings, 1 checks, 5 lines checked\n", "warn"),
    ("WARNING: x\n\ntotal: 0 errors, 1 warnings, 0 checks, 5 lines checked\n", "warn"),
    # Without --strict there is no checks count.
    ("total: 0 errors, 1 warnings, 5 lines checked\n", "warn"),
])
def test_checkpatch_warnings_and_checks_warn(text: str, status: str) -> None:
    result = checkpatch.parse(text)
    assert result is not None and result.status == status


def test_checkpatch_without_a_total_line_is_unparsed() -> None:
    assert checkpatch.parse("Can't locate Foo.pm in @INC\n") is None


def test_kernel_doc_messages_lose_their_place() -> None:
    assert kerneldoc.normalize("/tmp/x/head/mm/a.c:120: warning: Function parameter or struct "
                               "member 'flags' not described in 'add_memory'") == (
        "warning: Function parameter or struct member 'flags' not described in 'add_memory'")
    assert kerneldoc.normalize("mm/a.c:9: warning: Cannot understand  * @x on line 9 - I "
                               "thought it was a doc line") == (
        "warning: Cannot understand  * @x on line N - I thought it was a doc line")
    assert kerneldoc.normalize("mm/a.c:3: error: Cannot parse struct or union!") == (
        "error: Cannot parse struct or union!")
    assert kerneldoc.normalize("$ perl scripts/kernel-doc -none mm/a.c") is None


def side(*messages: str, exists: bool = True) -> kerneldoc.Side:
    return kerneldoc.Side(frozenset(messages), exists)


def test_kernel_doc_reports_only_new_warnings() -> None:
    old, new = "warning: old one", "warning: Function parameter 'flags' not described"
    assert kerneldoc.verdict("mm/a.c", side(old), side(old))[0] == "pass"
    status, summary, added = kerneldoc.verdict("mm/a.c", side(old), side(old, new))
    assert (status, added) == ("warn", [new])
    assert summary == (f"mm/a.c: 1 new kernel-doc warnings (1 at the base); first: {new}")
    status, summary, _ = kerneldoc.verdict("mm/b.h", side(exists=False), side(new))
    assert status == "warn" and "(a new file)" in summary
    assert kerneldoc.verdict("mm/a.c", side(old), side("error: Cannot parse"))[0] == "fail"


GET_MAINTAINER = """David Hildenbrand <david@redhat.com> (maintainer:MEMORY HOT(UN)PLUG)
"Michael S. Tsirkin" <mst@redhat.com> (maintainer:VIRTIO CORE AND NET DRIVERS)
Oscar Salvador <osalvador@suse.de> (reviewer:MEMORY HOT(UN)PLUG)
linux-mm@kvack.org (open list:MEMORY HOT(UN)PLUG)
virtualization@lists.linux.dev (open list:VIRTIO CORE AND NET DRIVERS)
LKML <Linux-Kernel@vger.kernel.org>
"""


def test_get_maintainer_answer_is_parsed_with_roles() -> None:
    named = get_maintainer.parse(GET_MAINTAINER)
    assert [n.address for n in named] == [
        "david@redhat.com", "mst@redhat.com", "osalvador@suse.de", "linux-mm@kvack.org",
        "virtualization@lists.linux.dev", "linux-kernel@vger.kernel.org"]
    assert named[0].describe() == "David Hildenbrand <david@redhat.com> (maintainer:MEMORY " \
                                  "HOT(UN)PLUG)"
    assert named[1].who == '"Michael S. Tsirkin" <mst@redhat.com>'
    assert named[3].role == "open list:MEMORY HOT(UN)PLUG" and named[5].role == ""


def test_recipients_against_get_maintainer() -> None:
    named = get_maintainer.parse(GET_MAINTAINER)
    everyone = Recipients(frozenset(n.address for n in named))
    assert maintainers.verdict(named, everyone)[0] == "pass"
    # The mutant: the mail left out the reviewer and a list.
    short = Recipients(everyone.addresses - {"osalvador@suse.de", "linux-mm@kvack.org"})
    status, summary = maintainers.verdict(named, short)
    assert status == "warn"
    assert summary == ("2 of 6 named by get_maintainer not in To/Cc: Oscar Salvador "
                       "<osalvador@suse.de>, linux-mm@kvack.org")
    unknown = maintainers.verdict(named, Recipients(frozenset(), "no To/Cc"))
    assert unknown[0] == "warn" and unknown[1].startswith("recipients unknown: no To/Cc")
    assert maintainers.verdict([], short)[0] == "pass"


UNKNOWN_IDS = """WARNING: Unknown commit id '7b7b27214bba', maybe rebased or not pulled?
#20:
format was chosen in commit 7b7b27214bba ("mm/memory_hotplug: introduce

WARNING: Prefer a maximum 75 chars per line (possible unwrapped commit description?)
#31:
a long line

total: 0 errors, 2 warnings, 0 checks, 162 lines checked
"""


def test_unknown_commit_ids_are_dropped_and_counted_only_where_asked() -> None:
    result = checkpatch.parse(UNKNOWN_IDS)
    assert result is not None and result.warnings == 2
    kept, dropped = checkpatch.without_unknown_ids(result)
    assert dropped == 1 and kept.warnings == 1 and kept.status == "warn"
    assert kept.summary().endswith("first: WARNING: Prefer a maximum 75 chars per line "
                                   "(possible unwrapped commit description?)")
    only_ids = checkpatch.parse(UNKNOWN_IDS.replace("2 warnings", "1 warnings")
                                .split("WARNING: Prefer")[0] +
                                "total: 0 errors, 1 warnings, 0 checks, 9 lines checked\n")
    assert only_ids is not None and only_ids.status == "warn"
    assert checkpatch.without_unknown_ids(only_ids)[0].status == "pass"
