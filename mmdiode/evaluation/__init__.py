"""mmdiode.evaluation: how well a synthesized data set matches its targets,
and teacher agreement, the validation a data-free user can run."""
from .fidelity import fidelity_report
from .teacher_agreement import TEACHER_ANN_FILE, write_teacher_annotations

__all__ = ['fidelity_report', 'write_teacher_annotations', 'TEACHER_ANN_FILE']
