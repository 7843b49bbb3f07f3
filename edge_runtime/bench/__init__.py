"""Benchmarking, on a device or a workstation: ``deconv-edge bench``.

The parent process: :mod:`.config` (options and case specs), :mod:`.runner` (the whole benchmark: resolve the
cases, run the groups, the report), :mod:`.schedule` (interleaving), :mod:`.ipc` (talking to a worker),
:mod:`.results` (statistics, ratios, MAC-rate limits), :mod:`.fingerprint` (the device), :mod:`.output`
(tables, CSV, JSON) and :mod:`.cli` (the subcommand). Each case runs in a worker process: :mod:`.protocol`
(its side of the JSON-lines protocol), :mod:`.worker` (the runners), :mod:`.graph` (MACs, ops, coverage) and
:mod:`.references` (the MAC-rate references per precision).
"""
