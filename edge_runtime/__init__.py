"""Device side of deconv-edge: run converted SR artifacts on pictures, videos and cameras.

    >>> from edge_runtime import Enhancer
    >>> big = Enhancer("model_x2.tflite")(cv2.imread("small.png"))   # uint8 BGR in, 2x uint8 BGR out

Imports stay light (no TensorFlow, ever); :class:`Enhancer` is loaded on first use.
"""


def __getattr__(name):
    if name == "Enhancer":
        from .inference.enhance import Enhancer

        return Enhancer
    raise AttributeError(f"module 'edge_runtime' has no attribute '{name}'")


__all__ = ["Enhancer"]
