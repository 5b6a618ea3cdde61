"""Timing harnesses of ``tools/benchmark.py``: the distillation overhead of
a KD step (:mod:`.kd`) and the synthesis loop against a bare teacher step
(:mod:`.synthesis`); both report memory through :mod:`.memory`."""
