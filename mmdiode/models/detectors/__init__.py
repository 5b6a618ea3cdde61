"""The KD detector wrapper; importing registers it."""
from .kd_detector import KDDetector

__all__ = ['KDDetector']
