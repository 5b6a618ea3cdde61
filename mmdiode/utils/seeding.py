"""Seeds derived from a base seed and integer keys (batch, rank, retry)."""
import numpy as np


def derive_seed(*keys: int) -> int:
    """A 32-bit seed that is a pure function of ``keys``.

    Resumed and sharded jobs regenerate exactly the same random choices for
    the same keys, and different keys give independent streams
    (``numpy.random.SeedSequence`` hashing).
    """
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])
