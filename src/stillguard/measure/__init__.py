"""Measurement: generate clean and protected videos with the same seeds and compare them.

Knows tensors and videos; never reads presets or runs batches (that is :mod:`stillguard.app`).
Modules: :mod:`.evaluate` (the evaluation and its :class:`~.evaluate.Report`), :mod:`.verdict`
(thresholds and verdicts), :mod:`.metrics` and :mod:`.motion` (numbers), :mod:`.table` (text
tables), :mod:`.report` (HTML report), :mod:`.media` (frames, GIF, MP4).
"""
