"""High-level jobs built from mmdiode's components."""
from .synthesis import SynthesisJob, build_teacher, scale_schedule

__all__ = ['SynthesisJob', 'build_teacher', 'scale_schedule']
