from .teacher import (TEACHER_KEYS, build_frozen_teacher, check_teacher_cfg,
                      declared_teacher_classes, head_num_classes,
                      load_teacher_model_config, load_teacher_weights)

__all__ = [
    'TEACHER_KEYS', 'build_frozen_teacher', 'check_teacher_cfg',
    'declared_teacher_classes', 'head_num_classes',
    'load_teacher_model_config', 'load_teacher_weights'
]
