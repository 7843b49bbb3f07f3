"""The train/evaluate command line: help, results, and one-line errors for user mistakes."""

from __future__ import annotations

import json

import pytest

from edge_runtime.cli import main

from ..conftest import write_images


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    return err


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "evaluate" in out


def test_evaluate_bicubic_prints_and_writes_json(tmp_path, capsys):
    pytest.importorskip("skimage")
    data = write_images(tmp_path / "d", n=2)
    assert main(["evaluate", "--model", "bicubic", "--data", str(data), "--scale", "2", "--json",
                 str(tmp_path / "r.json")]) == 0
    assert "PSNR" in capsys.readouterr().out
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["scale"] == 2 and len(res["per_image"]) == 2


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["evaluate", "--model", "bicubic", "--data", "{tmp}/nope", "--scale", "2"], "does not exist"),
        (["evaluate", "--model", "bicubic", "--data", "{data}", "--scale", "5"], "2, 3, 4"),
        (["evaluate", "--model", "bicubic", "--data", "{data}"], "--scale is required"),
        (["evaluate", "--model", "{tmp}/missing.keras", "--data", "{data}"], "does not exist"),
        (["evaluate", "--model", "{tmp}/corrupt.keras", "--data", "{data}"], "corrupt"),
        (["train", "--data", "{data}", "--out", "{tmp}/o", "--steps", "1", "--model", "srgan"], "valid: fsrcnn"),
        (["train", "--data", "{data}", "--out", "{tmp}/o", "--steps", "1", "--scale", "8"], "2, 3, 4"),
        (["train", "--data", "{data}", "--out", "{tmp}/o"], "--steps N or --minutes M"),
        (["train", "--data", "{tmp}/empty", "--out", "{tmp}/o", "--steps", "1"], "holds no image"),
        (["train", "--data", "{data}", "--out", "{tmp}/o", "--steps", "0"], "must be positive"),
        (["bogus"], "invalid choice"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    pytest.importorskip("keras")
    data = write_images(tmp_path / "d", n=1)
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 definitely not a zip")
    argv = [a.format(tmp=tmp_path, data=data) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse-level errors
        code = exc.code
    assert code == 2
    assert needle in _one_line_error(capsys)
