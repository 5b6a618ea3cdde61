"""mmdiode.engine.runner: training loops (components register on import)."""
from .teacher_agreement_loop import TeacherAgreementValLoop

__all__ = ['TeacherAgreementValLoop']
