"""The one door to the series as it was mailed (recipients, base-commit, the sender).

The apply stage fills ApplyResult.series with the series as b4 applied it; b4's output keeps
no To/Cc, so each patch's recipients are those of the message as it was sent (matched by
Message-Id). Every rule reads the mail side through this module only, and a missing piece is
a reasoned skip or warning in the rule, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses

from kseries.series.apply import ApplyResult
from kseries.series.mbox import Patch, Series


def mailed_series(applied: ApplyResult) -> Series | None:
    """The series as mailed, or None when the apply stage could not say."""
    return applied.series


def mailed_patch(series: Series | None, index: int) -> Patch | None:
    """Patch INDEX (1-based, as in [PATCH i/n]) of SERIES, or None."""
    if series is None:
        return None
    return next((p for p in series.patches if p.index == index), None)


@dataclass(frozen=True)
class Recipients:
    """Who got patch INDEX: its own To/Cc and the cover letter's (b4 and git send-email put
    the series-wide recipients on the cover), plus its sender (who needs no Cc)."""

    addresses: frozenset[str]
    # Why there are none, when there are none: the rule warns with this.
    unknown: str = ""


def addresses(entries: tuple[str, ...]) -> set[str]:
    """The e-mail addresses of "Name <addr>" / "addr" strings, lower-cased (mail is routed
    case-insensitively in practice)."""
    return {addr.lower() for _name, addr in getaddresses(list(entries)) if "@" in addr}


def recipients(series: Series | None, index: int) -> Recipients:
    patch = mailed_patch(series, index)
    if series is None or patch is None:
        return Recipients(frozenset(), "the series as mailed is not known (no To/Cc to read)")
    sent_to = addresses((*patch.to, *patch.cc, *series.cover_to, *series.cover_cc))
    if not sent_to:
        return Recipients(frozenset(), "the mails carry no To/Cc (neither the patch nor the "
                          "cover letter)")
    return Recipients(frozenset(sent_to | addresses((patch.author,))))
