"""Shipping, on the workstation: bundles of artifacts (:mod:`.bundle`) and deployments over SSH (:mod:`.deploy`,
one host's connection in :mod:`.ssh`, the printed tables in :mod:`.results`, Ansible fleets in :mod:`.ansible`),
with the ``bundle``, ``verify`` and ``deploy`` subcommands (:mod:`.cli`); this package's wheel (:mod:`.wheelhouse`)
and a device platform's offline wheelhouse (:mod:`.platform_wheels`)."""
