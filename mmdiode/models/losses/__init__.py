"""Distillation losses; importing registers them into mmdet's ``MODELS``."""
from .detr_kd import *  # noqa: F401,F403
from .feature_kd import *  # noqa: F401,F403
from .hgd import *  # noqa: F401,F403
from .output_kd import *  # noqa: F401,F403
