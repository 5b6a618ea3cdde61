"""Timing harnesses of ``tools/benchmark.py``: the distillation overhead of
a KD step (:mod:`.kd`), the synthesis loop against a bare teacher step
(:mod:`.synthesis`), both reporting memory through :mod:`.memory`, and two
synthesis recipes side by side, speed and quality (:mod:`.synthesis_quality`).
"""
