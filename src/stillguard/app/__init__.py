"""The application layer: files, presets and runs.

Modules: :mod:`.outputs` (save a :class:`~stillguard.loop.Protected` as PNG + JSON sidecar),
:mod:`.config` and :mod:`.presets` (run configuration), :mod:`.inputs` (what to protect, where the
outputs go), :mod:`.manifest` and :mod:`.batch` (resumable batches), :mod:`.models` (is the model on this
machine; loading it offline), :mod:`.demo`.
Fronts (:mod:`stillguard.cli`) call these; the core never imports them.
"""
