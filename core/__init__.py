"""The shared kernel of deconv-edge: what ``train``, ``convert`` and ``edge_runtime`` all use.

Installed as ``deconv_edge_core``. It imports nothing else of this project (``tests/edge_runtime/test_layout.py``
checks) and only the standard library, so a device install carries it whole:

- :mod:`.manifest`: the artifact manifest, the one contract between the packages (``convert`` writes it, the
  runtime reads it);
- :mod:`.errors` (``UserError``), :mod:`.registry`, :mod:`.commands` (the subcommand registry),
  :mod:`.argtypes` (option parsers), :mod:`.fsutil` (atomic writes, hashes), :mod:`.quiet` (muting native
  stderr), :mod:`.text` (one-line errors, text tables), :mod:`.live` (the live status line on a terminal).
"""

__version__ = "0.1.0"
