"""mmdiode.evaluation: how well a synthesized data set matches its targets."""
from .fidelity import fidelity_report

__all__ = ['fidelity_report']
