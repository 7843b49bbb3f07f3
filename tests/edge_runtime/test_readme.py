"""The README's quick start works as written: its Python snippet from another folder, its commands' names."""

from __future__ import annotations

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from .conftest import REPO, cli, cli_env

README = (REPO / "README.md").read_text()


def _python_blocks() -> list:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_snippet_runs_from_another_folder(tmp_path):
    snippet = next((b for b in _python_blocks() if "Enhancer(" in b), None)
    assert snippet is not None, "the README has no Enhancer snippet"
    cv2.imwrite(str(tmp_path / "small.png"), np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8))
    r = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    big = cv2.imread(str(tmp_path / "big.png"))
    assert big is not None and big.shape == (48, 64, 3)


def test_readme_starts_with_the_two_quick_starts():
    heads = re.findall(r"^## (.+)$", README, re.M)
    assert heads[0].startswith("Quick start: on a device") and heads[1].startswith("Quick start: training")


@pytest.mark.parametrize("sub", sorted(set(re.findall(r"^deconv-edge ([a-z-]+)", README, re.M))))
def test_every_readme_subcommand_exists(sub):
    r = cli(sub, "--help")
    assert r.returncode == 0, r.stderr


def test_readme_speaks_to_users():
    """Written for users: no notes about sessions or issue numbers."""
    for phrase in (r"this session", r"first session", r"first-session", r"\bIssue \d+", r"fine-tuned this"):
        found = re.findall(rf".{{0,40}}{phrase}.{{0,40}}", README, re.I)
        assert not found, f"README speaks to maintainers: {found}"


def test_benchmark_figures_come_from_the_one_named_run():
    """Every benchmark result the README cites, and the shipped manifests' reference latency, come from a run
    the README names (a file left over from another run would be a table that is not that run's): one full
    ``run_all`` run, and any smaller run the README names by its own id."""
    import json

    run_ids = set(re.findall(r"`(\d{8}T\d{6}Z-run_all)`", README))
    assert len(run_ids) == 1, f"the README should name one benchmark run, names {sorted(run_ids)}"
    (run_id,) = run_ids
    named = set(re.findall(r"`(\d{8}T\d{6}Z-[a-z0-9_]+)`", README))
    cited = set()
    for m in re.findall(r"benchmarks/results/([A-Za-z0-9_{},]+)\.(json|md)", README):
        stem, ext = m
        brace = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", stem)
        names = [brace[1] + v + brace[3] for v in brace[2].split(",")] if brace else [stem]
        cited |= {f"{n}.{ext}" for n in names}
    cited.discard("soak.json")  # a measurement of its own, with its own command and date in the README
    assert {"summary.md", "speed.json", "shipped.md"} <= cited
    for name in sorted(cited):
        text = (REPO / "benchmarks" / "results" / name).read_text()
        if name.endswith(".json"):
            of = json.loads(text).get("run_id")
        else:
            of = next((r for r in named if r in text), None)
        expected = {run_id} if name in {"summary.md", "speed.json", "shipped.md"} else named
        assert of in expected, f"{name} is from run {of}, which the README does not name"
    stamped = [json.loads(p.read_text()).get("reference_latency") for p in (REPO / "edge_runtime" / "models").glob("*.json")]
    stamped = [s for s in stamped if s]
    assert stamped and all(s.get("run_id") == run_id for s in stamped)


def test_every_speed_table_names_the_cpu_kind():
    """A speed figure holds for the CPU kind it was measured on: the text just above every table of times
    names the ISA (int8 speed hangs on VNNI / AMX on x86, dotprod / i8mm on Arm)."""
    lines = README.splitlines()
    isa = re.compile(r"AVX|VNNI|AMX|asimd|dotprod|i8mm", re.I)
    timed = re.compile(r"\bms\b|GMAC/s|s / MP|\b\dT\b")
    tables = 0
    for i, line in enumerate(lines):
        starts_table = line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[ :|-]+\|$", lines[i + 1])
        if starts_table and (i == 0 or not lines[i - 1].startswith("|")) and timed.search(line):
            tables += 1
            above = "\n".join(lines[max(0, i - 14):i])
            assert isa.search(above), f"the speed table at README line {i + 1} does not name the CPU's ISA: {line}"
    assert tables >= 5
