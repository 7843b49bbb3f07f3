"""``python -m benchmarks.references``: make the MAC-rate reference files that ``deconv-edge bench`` ships.

Writes ``edge_runtime/bench/reference/conv3x3_c64_{int8,fp32}.tflite``: one 3x3 convolution, 64 to 64
channels, on a 128x128 input (:data:`edge_runtime.bench.references.CONV_INPUT_SHAPE`), int8 in, weights and
out for the int8 file (calibrated on seeded noise: the cost of an int8 convolution does not depend on the
values), float32 for the other. Needs the ``[train]`` extra. The files are deterministic for a given
TensorFlow version; regenerate them only when the reference should change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_runtime.bench.references import CONV_INPUT_SHAPE, CONV_KERNEL, CONV_REFERENCES, REFERENCE_DIR


def build_model():
    """The reference convolution as a Keras model with seeded weights."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    x = keras.Input(CONV_INPUT_SHAPE[1:], name="x")
    conv = keras.layers.Conv2D(CONV_KERNEL[3], CONV_KERNEL[:2], padding="same", name="conv")
    model = keras.Model(x, conv(x))
    rng = np.random.default_rng(0)
    conv.set_weights([rng.normal(0, 0.05, CONV_KERNEL).astype(np.float32),
                      rng.normal(0, 0.01, CONV_KERNEL[3]).astype(np.float32)])
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.references", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REFERENCE_DIR))
    args = p.parse_args(argv)

    import numpy as np

    from deconv_edge_convert import tflite_tools
    from deconv_edge_train.quiet import import_tensorflow

    import_tensorflow()
    model = build_model()
    rng = np.random.default_rng(1)

    def representative():
        for _ in range(8):
            yield [rng.normal(0, 1, CONV_INPUT_SHAPE).astype(np.float32)]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for precision, file, _label in CONV_REFERENCES:
        if precision == "int8":
            data = tflite_tools.convert(model, CONV_INPUT_SHAPE, mode="int8", representative=representative,
                                        io_dtype="int8")
        else:
            data = tflite_tools.convert(model, CONV_INPUT_SHAPE, mode="fp32")
        (out / file).write_bytes(data)
        print(f"wrote {out / file} ({len(data)} bytes; ops {', '.join(tflite_tools.op_names(data))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
