"""The application layer: files, presets and runs.

Modules: :mod:`.outputs` (save a :class:`~stillguard.loop.Protected` as PNG + JSON sidecar; check an
output folder), :mod:`.config` and :mod:`.presets` (run configuration), :mod:`.run` (the one batch
path: names and resume, the unit of work, the manifest, the local and Ray executors), :mod:`.models`
(is the model on this machine; loading it offline), :mod:`.fit` (``--gpu-memory``), :mod:`.demo`.
Fronts (:mod:`stillguard.cli`, :mod:`stillguard.web`) call these; the core never imports them.
``batch``, ``ray_runner``, ``ray_actor``, ``inputs``, ``manifest`` and ``results`` are old paths
kept for one release (:mod:`._moved`).
"""
