"""``python -m benchmarks.campaign``: validation PSNR against training hours for every campaign run.

Reads the committed logs (``train/campaign/<run>/log.csv``: step, loss, learning rate, elapsed seconds of
training summed over sittings, Set5 PSNR at each checkpoint) and writes ``benchmarks/results/campaign.png``
and ``campaign.md``: per run its hours, steps, best and last validation PSNR, and the gain over its last two
hours (a run has converged for the campaign's purpose when that gain is under 0.02 dB; the SR runs end with a
two-hour tail at the final learning rate, after their decay, for that check).

The validation numbers are the float Keras model through the protocol (Set5, luma, ``scale`` pixels shaved),
which is the development set: held-out scores are measured elsewhere.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from deconv_edge_core.text import markdown_table

from .common import REPO, RESULTS_DIR, say

CAMPAIGN_DIR = REPO / "train" / "campaign"
PLATEAU_WINDOW_H = 2.0
PLATEAU_DB = 0.02


@dataclass(frozen=True)
class Curve:
    """One run's validation curve."""

    name: str
    hours: tuple
    psnr_db: tuple
    steps: int

    @property
    def gain_last_window_db(self) -> float | None:
        """PSNR gained over the last :data:`PLATEAU_WINDOW_H` hours (``None`` when the run is shorter)."""
        if not self.hours or self.hours[-1] < PLATEAU_WINDOW_H:
            return None
        start = self.hours[-1] - PLATEAU_WINDOW_H
        before = [p for h, p in zip(self.hours, self.psnr_db) if h <= start]
        return self.psnr_db[-1] - (before[-1] if before else self.psnr_db[0])


def read_curve(run_dir: Path) -> Curve | None:
    """The validation points of one run's ``log.csv`` (``None`` when it has none yet)."""
    log = run_dir / "log.csv"
    if not log.is_file():
        return None
    hours, psnr, steps = [], [], 0
    with open(log, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                steps = max(steps, int(row["step"]))
                if row.get("val_psnr_db"):
                    hours.append(float(row["elapsed_s"]) / 3600.0)
                    psnr.append(float(row["val_psnr_db"]))
            except (KeyError, ValueError):
                continue
    if not psnr:
        return None
    return Curve(run_dir.name, tuple(hours), tuple(psnr), steps)


def curves(root: Path = CAMPAIGN_DIR) -> list[Curve]:
    found = [read_curve(d) for d in sorted(root.iterdir()) if d.is_dir()] if root.is_dir() else []
    return [c for c in found if c is not None]


def _run(run_name: str):
    from deconv_edge_train.campaign import RUNS

    return next((r for r in RUNS if r.name == run_name), None)


def schedule_of(run_name: str) -> str:
    """Where the run's decay ends and its tail at the final learning rate ends, in training hours."""
    run = _run(run_name)
    if run is None:
        return "-"
    end = f"decay to {run.minutes / 60:g} h"
    return f"{end}, tail to {(run.minutes + run.tail_minutes) / 60:g} h" if run.tail_minutes else end


def validation_of(run_name: str) -> str:
    """What a run validates on, from the campaign's own list (SR runs: Set5; the denoiser: Set12 at sigma 25)."""
    run = _run(run_name)
    if run is None:
        return "val"
    name = Path(run.val_set).name.capitalize()
    return f"{name} sigma 25" if run.model.task == "denoise" else name


def summary_table(found: list[Curve]) -> str:
    rows = [["run", "validation", "schedule", "training h", "steps", "best dB", "last dB",
             f"gain over last {PLATEAU_WINDOW_H:g} h dB"]]
    for c in found:
        gain = c.gain_last_window_db
        rows.append([c.name, validation_of(c.name), schedule_of(c.name), f"{c.hours[-1]:.2f}", str(c.steps),
                     f"{max(c.psnr_db):.3f}", f"{c.psnr_db[-1]:.3f}", "-" if gain is None else f"{gain:+.3f}"])
    return markdown_table(rows, numbers_right_from=3)


def plot(found: list[Curve], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One panel per run: each validates on its own set (SR on Set5, the denoiser on Set12), on its own scale.
    fig, axes = plt.subplots(len(found), 1, figsize=(7, 2.8 * len(found)), dpi=110, squeeze=False)
    for ax, c in zip(axes[:, 0], found):
        ax.plot(c.hours, c.psnr_db, marker=".", label=f"{c.name} ({c.steps} steps)")
        run = _run(c.name)
        if run is not None and run.tail_minutes and c.hours[-1] >= run.minutes / 60:
            ax.axvline(run.minutes / 60, color="grey", linestyle="--", linewidth=0.8, label="decay ends, tail begins")
        ax.set_ylabel(f"{validation_of(c.name)} PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    axes[0, 0].set_title("Campaign validation curves (float model)")
    axes[-1, 0].set_xlabel("training time (hours, summed over sittings)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.campaign", description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(CAMPAIGN_DIR), help="campaign folder (train/campaign)")
    p.add_argument("--out", default=str(RESULTS_DIR), help="where campaign.png and campaign.md go")
    args = p.parse_args(argv)
    found = curves(Path(args.root))
    if not found:
        print(f"error: no campaign run with validation points in '{args.root}'", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(found, out / "campaign.png")
    table = summary_table(found)
    md = ("# Campaign validation curves\n\nCommand: `python -m benchmarks.campaign` (from the committed logs).\n\n"
          f"{table}\n\n![PSNR against training hours](campaign.png)\n")
    tmp = out / ".campaign.md.tmp"
    tmp.write_text(md)
    tmp.replace(out / "campaign.md")
    say(f"wrote {out / 'campaign.png'} and {out / 'campaign.md'}")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
