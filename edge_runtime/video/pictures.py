"""Reading one picture from outside: size checked from its header first, a cut-short file refused, decoders quiet."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.quiet import muted_stderr
from edge_runtime.inference.limits import check_picture_file, check_pixels, picture_problem


def read_picture(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode ``path`` with OpenCV, refusing what would be unsafe or wrong to use.

    Refused before decoding: a header claiming more pixels than ``--max-pixels`` allows, and a JPEG or PNG
    without its end marker (decoders return a half-grey picture for those and only complain on stderr).

    Raises:
        UserError: with the reason, one line.
    """
    path = Path(path)
    check_picture_file(path)
    problem = picture_problem(path)
    if problem:
        raise UserError(f"picture '{path}' is {problem}")
    # libpng and libjpeg print their own warnings on fd 2 ("libpng error: ...", "Corrupt JPEG data").
    with muted_stderr():
        img = cv2.imread(str(path), flags)
    if img is None:
        raise UserError(f"cannot read picture '{path}': damaged, empty, or not a picture format OpenCV decodes")
    check_pixels(img.shape[0], img.shape[1], f"picture '{path}'")
    return img
