"""mmdiode.engine: training-loop components (components register on
import)."""
from .hooks import DeepInversionHook, TeacherEvalHook

__all__ = ['DeepInversionHook', 'TeacherEvalHook']
