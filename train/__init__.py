"""Training side of deconv-edge: Keras deconvolution SR models, data, evaluation."""

__version__ = "0.1.0"
