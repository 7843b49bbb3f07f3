"""Training side of deconv-edge: Keras deconvolution SR models, data, evaluation."""

from deconv_edge_core import __version__  # noqa: F401  (one version for the whole project)
