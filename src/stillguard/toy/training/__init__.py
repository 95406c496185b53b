"""Training the toy model: synthetic data, stages, the training command and quality measurement.

Never imported at run time (only by ``python -m stillguard.toy.training.train``, the toy-quality
benchmark and tests).
"""
