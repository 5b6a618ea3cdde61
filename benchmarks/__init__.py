"""Benchmarks of mmdiode, kept outside the installable package: the bundled
digits-on-photos benchmark (:mod:`benchmarks.digits`), the timing
harnesses of ``tools/benchmark.py`` (:mod:`benchmarks.profiling`), and the
commit their results record (:mod:`benchmarks.provenance`). They run from a
checkout (``python tools/...`` puts the repository on ``sys.path``).
"""
