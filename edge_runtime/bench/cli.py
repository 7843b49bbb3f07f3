"""``deconv-edge bench``: on-device latency of one or more artifacts, interleaved (see :mod:`edge_runtime.bench.runner`).

Needs only the runtime install: numpy, OpenCV and a backend. ``rich`` draws the table and the progress bar
when it is installed; plain text otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from deconv_edge_core.commands import command


class _PlainProgress:
    """Progress as a few plain lines on stderr (no ``rich``, or output is not a terminal)."""

    def __init__(self):
        self.total, self.done, self._last = 0, 0, -1

    def begin(self, total: int) -> None:
        self.total = max(1, total)

    def advance(self, n: int = 1) -> None:
        self.done += n
        pct = int(100 * self.done / self.total) // 10 * 10
        if pct != self._last and pct % 20 == 0:
            self._last = pct
            print(f"  {pct:3d}%", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        # Logs get the loads only; the per-round notes are for the live bar.
        if message.startswith("loading"):
            print(f"  {message}", file=sys.stderr, flush=True)

    def end(self) -> None:
        pass


class _RichProgress:
    """A transient rich progress bar on stderr."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self._task = None

    def begin(self, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task("bench", total=total)

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def note(self, message: str) -> None:
        self._progress.update(self._task, description=message[:60])

    def end(self) -> None:
        self._progress.stop()


def make_progress(quiet: bool):
    from .schedule import NoProgress

    if quiet:
        return NoProgress()
    if sys.stderr.isatty():
        try:
            return _RichProgress()
        except ImportError:
            pass
    return _PlainProgress()


def print_report(report) -> None:
    """The table (rich when available), then the device line and warnings."""
    from .output import TERMINAL_COLUMNS, plain_table, table_rows

    rows = table_rows(report.results, TERMINAL_COLUMNS)
    cfg = report.config
    title = (f"deconv-edge bench: {cfg.input_hw[0]}x{cfg.input_hw[1]} frame (HxW), {cfg.runs} runs after "
             f"{cfg.warmup} warm-up, interleaved; times in ms (p50 unless named)")
    try:
        if not sys.stdout.isatty():
            raise ImportError("plain text for pipes and logs")
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, title_justify="left")
        for i, header in enumerate(rows[0]):
            table.add_column(header, justify="left" if i in (0, 1) else "right", no_wrap=i == 0, overflow="fold")
        for row in rows[1:]:
            table.add_row(*(Text(str(c)) for c in row))  # Text: labels such as "[litert]" are not markup
        console = Console()
        natural = sum(max(len(str(r[i])) for r in rows) + 3 for i in range(len(rows[0]))) + 1
        if natural > console.width:
            raise ImportError("narrow terminal: plain text wraps whole lines instead of folding numbers")
        console.print(table)

        def say(line: str) -> None:
            console.print(line, markup=False, highlight=False)
    except ImportError:
        print(title)
        print(plain_table(rows))
        say = print
    seen = set()
    for r in report.results:
        summary = (r.coverage or {}).get("summary")
        if summary and r.label not in seen:
            seen.add(r.label)
            say(f"coverage: {r.label}: {summary}")
    say(f"device: {report.device.short()}")
    for w in report.warnings:
        say(f"warning: {w}")


@command
class BenchCommand:
    name = "bench"
    help = "measure on-device latency of artifacts (interleaved, with a device fingerprint)"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("artifacts", nargs="*", metavar="ARTIFACT",
                       help="artifact files (their .json manifest beside them) or shipped names (x2, "
                            "fsrcnn_x3_int8, ...); ratios are against the first")
        p.add_argument("--pick", nargs="*", metavar="MODEL", default=None,
                       help="measure every file shipped for these models (default: all; names as 'deconv-edge "
                            "models' lists them) with the default threads and cache the fastest for this device: "
                            "the model's names then run it")
        p.add_argument("--backend", default="auto",
                       help="backend key, or a comma-separated list (litert, onnxruntime, edgetpu); "
                            "default: the one each manifest calls for")
        p.add_argument("--threads", default=None,
                       help="comma-separated thread counts, e.g. 1,2,4 (default: 1 and all usable cores)")
        p.add_argument("--input-size", default=None, metavar="HxW",
                       help="low-resolution frame, height x width (default 240x320); fixed-shape artifacts tile it")
        p.add_argument("--runs", type=int, default=None, help="measured iterations per case (default 50)")
        p.add_argument("--warmup", type=int, default=None, help="unmeasured iterations per case first (default 5)")
        p.add_argument("--bicubic", action="store_true", help="add plain OpenCV bicubic as a reference case")
        p.add_argument("--references", action="store_true",
                       help="add the MAC-rate references (int8 and fp32 convolutions through LiteRT, fp32 GEMM): "
                            "'%% limit' is each model's MAC rate over its precision's reference")
        p.add_argument("--json", metavar="FILE", help="write the full results as JSON")
        p.add_argument("--csv", metavar="FILE", help="write one row per case as CSV")
        p.add_argument("--md", metavar="FILE", help="write the table and device as Markdown")
        p.add_argument("--quiet", action="store_true", help="no progress while it runs")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from deconv_edge_core.errors import UserError
        from deconv_edge_core.outputs import check_output_file

        from ..inference.catalog import resolve
        from .config import (
            DEFAULT_INPUT_HW,
            DEFAULT_RUNS,
            DEFAULT_WARMUP,
            BenchConfig,
            default_threads,
            parse_input_size,
            parse_threads,
        )
        from .output import write_csv, write_json, write_markdown
        from .runner import run_bench

        for option, path in (("--json", args.json), ("--csv", args.csv), ("--md", args.md)):
            if path:
                check_output_file(path, option)  # before minutes of measuring, not after
        command_line = "deconv-edge bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
            if len(sys.argv) > 1 and sys.argv[1] == "bench" else "deconv-edge bench"
        if args.pick is not None:
            if args.artifacts:
                raise UserError("--pick takes model names, not artifacts: deconv-edge bench --pick [MODEL ...]")
            from ..inference.picks import pick_models

            pick_models(args.pick + list(args.artifacts),
                        parse_input_size(args.input_size) if args.input_size is not None else DEFAULT_INPUT_HW,
                        runs=20 if args.runs is None else args.runs, warmup=3 if args.warmup is None else args.warmup,
                        progress=make_progress(args.quiet), command=command_line)
            return 0
        if not args.artifacts:
            raise UserError("name at least one ARTIFACT (or a shipped model: x2, fast, ...), or use --pick")
        backends = tuple(dict.fromkeys(b.strip() for b in args.backend.split(",") if b.strip())) or ("auto",)
        config = BenchConfig(
            artifacts=tuple(str(resolve(a).path) for a in args.artifacts), backends=backends,
            threads=parse_threads(args.threads) if args.threads is not None else default_threads(),
            input_hw=parse_input_size(args.input_size) if args.input_size is not None else DEFAULT_INPUT_HW,
            runs=DEFAULT_RUNS if args.runs is None else args.runs,
            warmup=DEFAULT_WARMUP if args.warmup is None else args.warmup, bicubic=args.bicubic,
            references=args.references)
        report = run_bench(config, make_progress(args.quiet), command=command_line)
        print_report(report)
        for path, writer in ((args.json, write_json), (args.md, write_markdown)):
            if path:
                writer(path, report)
        if args.csv:
            write_csv(args.csv, report.results)
        written = [p for p in (args.json, args.csv, args.md) if p]
        if written:
            print(f"wrote {', '.join(written)}")
        failed = [r for r in report.results if r.error]
        if failed:
            print(f"error: {len(failed)} of {len(report.results)} bench case(s) failed; the first: {failed[0].error}",
                  file=sys.stderr)
            return 1
        return 0
