"""Every hostile case through the real CLI: refused cleanly, quickly, and without harm.

For each case (see ``cases.py``): a non-zero exit; exactly one ``error:`` line, matching what the case is
about; every other line on stderr one of ours (``warning:``, ``FAILED``), so no native FFmpeg/OpenCV/libpng
chatter and no traceback; an end within the case's time bound; every file that was there before unchanged
(good outputs are not destroyed); no temporary file left; no secret printed.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from .cases import CASES

#: stderr lines the CLI may print besides its one error line.
OWN_PREFIXES = ("error: ", "warning: ", "FAILED ", "interrupted")
#: Bounds of the suite itself: the issue asks for at least 150 generated cases.
MIN_CASES = 150


def test_enough_cases_over_every_command():
    assert len(CASES) >= MIN_CASES, f"only {len(CASES)} hostile cases"
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
    per_command = Counter(c.command for c in CASES)
    for command in ("enhance", "camera", "bench", "verify", "bundle", "deploy"):
        assert per_command[command] >= 5, per_command


@pytest.mark.parametrize("hostile_case", CASES, ids=[c.id for c in CASES])
def test_hostile_case(hostile_case, outcomes, shared):
    case = hostile_case
    if case.needs_readonly and shared.readonly is None:
        pytest.skip("no read-only folder here (needs root with mount, or a non-root user for chmod)")
    r = outcomes[case.id]
    everything = r.stdout + r.stderr
    context = f"\n--- rc {r.returncode} in {r.wall_s:.1f} s\n--- stdout:\n{r.stdout[-3000:]}\n--- stderr:\n{r.stderr[-3000:]}"
    assert not r.timed_out, f"hung past {case.timeout_s} s" + context
    assert r.wall_s < case.timeout_s
    assert "Traceback" not in everything, "traceback" + context
    assert r.returncode not in (0, None), "exit status 0 for a hostile input" + context
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, "expected exactly one 'error:' line" + context
    foreign = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith(OWN_PREFIXES)
               and not re.match(r"source '.*': .*reconnecting in", ln)]
    assert not foreign, f"native or unexpected lines on stderr: {foreign[:3]}" + context
    if case.expect:
        assert re.search(case.expect, errors[0]), f"error line does not match {case.expect!r}" + context
    for secret in case.forbidden:
        assert secret not in everything, f"'{secret}' printed" + context
    assert not r.changed, f"files destroyed or changed: {r.changed}" + context
    assert not r.leftovers, f"temporary files left: {r.leftovers}" + context
