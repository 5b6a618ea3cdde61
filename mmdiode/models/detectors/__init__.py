"""The KD detector wrapper; importing registers it (and its hook)."""
from .kd_detector import KDDetector
from .teacher_eval_hook import TeacherEvalHook

__all__ = ['KDDetector', 'TeacherEvalHook']
