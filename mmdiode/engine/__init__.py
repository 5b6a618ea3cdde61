"""mmdiode.engine: training-loop components (components register on
import)."""
from .hooks import DeepInversionHook, TeacherEvalHook
from .runner import TeacherAgreementValLoop

__all__ = ['DeepInversionHook', 'TeacherEvalHook', 'TeacherAgreementValLoop']
