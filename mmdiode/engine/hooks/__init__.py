"""Hooks: synthesis during training and the teacher's own evaluation."""
from .deep_inversion_hook import DeepInversionHook
from .teacher_eval_hook import TeacherEvalHook

__all__ = ['DeepInversionHook', 'TeacherEvalHook']
