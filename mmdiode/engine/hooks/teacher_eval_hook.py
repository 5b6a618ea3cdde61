"""Evaluating the teacher of a :class:`KDDetector` once, beside the student.

Validation of a ``KDDetector`` evaluates the student (its ``predict`` is the
student's). Add ``custom_hooks = [dict(type='TeacherEvalHook')]`` to also get
the teacher's metrics, computed once (after the first validation epoch) with
the same dataloader and evaluator, logged as ``teacher/<metric>`` (e.g.
``teacher/coco/bbox_mAP``) next to the student's. The teacher is frozen, so
one evaluation is enough.
"""
from typing import Dict, Optional

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


@HOOKS.register_module()
class TeacherEvalHook(Hook):
    """Evaluates a KD wrapper's teacher once on the validation set.

    Runs after mmengine's ``RuntimeInfoHook`` and before the ``LoggerHook``
    so the teacher's metrics appear in the first validation log line (and in
    every later one, where they keep their value).

    Args:
        prefix (str): Prefix of the logged metric names. Defaults to
            ``'teacher'``.
    """

    priority = 'HIGH'

    def __init__(self, prefix: str = 'teacher') -> None:
        self.prefix = prefix
        self._done = False

    def after_val_epoch(self,
                        runner,
                        metrics: Optional[Dict[str, float]] = None) -> None:
        """Evaluates the teacher the first time validation ends."""
        if self._done:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not hasattr(model, 'predict_teacher'):
            raise TypeError('TeacherEvalHook needs a model with a teacher '
                            f'(KDDetector), got {type(model).__name__}')
        loop = runner.val_loop
        for data_batch in loop.dataloader:
            with torch.no_grad():
                data = model.data_preprocessor(data_batch, False)
                outputs = model.predict_teacher(data['inputs'],
                                                data['data_samples'])
            loop.evaluator.process(data_samples=outputs, data_batch=data_batch)
        teacher_metrics = loop.evaluator.evaluate(len(loop.dataloader.dataset))
        for key, value in teacher_metrics.items():
            if isinstance(value, (int, float)):
                runner.message_hub.update_scalar(f'val/{self.prefix}/{key}',
                                                 value)
        runner.logger.info(f'{self.prefix} metrics: {teacher_metrics}')
        self._done = True
