"""A detector wrapper that trains a student with a frozen teacher.

``KDDetector`` wraps any mmdet detector (the student) and any mmdet detector
(the teacher, built from its own config and checkpoint). Training runs the
student's own ``loss()`` on the batch's targets (ground truth and/or the
teacher's pseudo-labels) and adds the distillation losses of
``distill_losses`` (see :mod:`mmdiode.models.distill_base`). Prediction and
``tensor`` mode are the student's alone, with the student's data
preprocessor, so mmdet's test tools evaluate the student unchanged.

The teacher is a plain attribute, not a registered submodule: it does not
appear in ``parameters()``, ``state_dict()`` or DDP's parameter list, is
always in eval mode with ``requires_grad=False``, and follows the wrapper's
device and dtype changes. The teacher sees the images through its own
preprocessor's normalisation (see :mod:`.teacher_input`).

Example config::

    model = dict(
        type='KDDetector',
        student=dict(type='YOLOV3', ...),
        teacher=dict(config='configs/detectors/yolov3-mv2_24e_digits.py',
                     checkpoint='work_dirs/yolov3_teacher/epoch_24.pth'),
        distill_losses=dict(
            out=dict(type='OutputMSELoss', module='bbox_head')),
        det_loss_weight=0.0)
"""
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.models.detectors.single_stage import SingleStageDetector
from mmdet.models.detectors.two_stage import TwoStageDetector
from mmdet.models.utils import (filter_gt_instances, rename_loss_dict,
                                reweight_loss_dict)
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdiode.utils.cli import ConfigError
from ..distill_base import BaseDistillLoss, DistillContext
from ..utils.recorder import (INPUT_SUFFIX, check_recording_names, record,
                              split_recording_name)
from ..utils.teacher import build_frozen_teacher, head_num_classes
from ..utils.teacher_input import (PixelNormalisation, map_to_teacher_inputs,
                                   teacher_data_samples)

# Recorded teacher modules under these top-level names only need
# ``extract_feat``; dense heads (see ``dense_heads``) need their own forward
# on those features; anything else needs the full ``_forward``.
_FEATURE_MODULES = ('backbone', 'neck')
_PSEUDO_LABEL_DEFAULTS = dict(score_thr=0.3, replace_gt=False)


def dense_heads(detector: nn.Module) -> Tuple[str, ...]:
    """Heads that the detector runs directly on ``extract_feat``'s output.

    ``head(extract_feat(x))`` is then exactly the first thing the detector
    computes with that head: a single-stage detector's ``bbox_head`` (all of
    its ``_forward``) and a two-stage detector's ``rpn_head`` (before its
    proposal decoding and NMS).
    """
    if isinstance(detector, SingleStageDetector):
        return ('bbox_head', )
    if isinstance(detector, TwoStageDetector) and detector.with_rpn:
        return ('rpn_head', )
    return ()


@MODELS.register_module()
class KDDetector(BaseDetector):
    """Knowledge distillation from a frozen teacher detector to a student.

    One training step:

    1. The student's batch is re-normalised for the teacher (exact, see
       :mod:`.teacher_input`) and the teacher runs without gradients:
       ``predict()`` when pseudo-labels are on, else only as far as the
       recorded teacher modules need (``extract_feat`` for backbone/neck,
       plus the head's forward for a single-stage ``bbox_head`` or a
       two-stage ``rpn_head``, otherwise ``_forward``).
    2. With ``pseudo_label``, the teacher's detections (after its NMS) with
       score > ``score_thr`` become ``gt_instances``: of every image when
       ``replace_gt=True``, else only of images that carry no ground truth
       (ground truth beats the teacher's guess).
    3. The student runs its own ``loss()`` on those targets, weighted by
       ``det_loss_weight``; with ``det_loss_weight=0`` (data-free, no targets)
       it runs ``_forward`` instead and no detection loss is computed.
    4. Every distillation loss gets a :class:`DistillContext` with the
       recorded outputs; its terms are added as ``'<name>.<term>'``.

    Args:
        student (dict): The student's mmdet detector config, including its
            ``data_preprocessor``, which becomes the wrapper's.
        teacher (dict): ``config`` (model or full config dict, file path or
            ``'mmdet::...'`` path), ``checkpoint`` (local path, URL, or
            None for the config's initial weights) and optional ``classes``
            (see :mod:`mmdiode.models.utils.teacher`).
        distill_losses (dict, optional): Name -> config of a
            :class:`BaseDistillLoss` registered in ``MODELS``. Names must not
            contain dots. Defaults to None (no distillation loss).
        pseudo_label (dict, optional): ``score_thr`` (float, 0.3) and
            ``replace_gt`` (bool, False), see step 2. Defaults to None (the
            batch's own targets only).
        det_loss_weight (float): Weight of the student's own detection loss
            on its targets, whichever they are: the batch's ground truth or
            the teacher's pseudo-labels. 0 for distillation without targets.
            Defaults to 1.0.
        classes (Sequence[str], optional): The student's class names
            (usually the training set's ``metainfo['classes']``); compared
            with the teacher's classes from its checkpoint meta or config
            when those are known. Defaults to None.
        data_preprocessor (dict, optional): The student's data
            preprocessor when its config has none (mmengine's Runner
            passes a config's top-level ``data_preprocessor`` here).
            Defaults to None.
        gt_loss_weight (float, optional): Deprecated name of
            ``det_loss_weight`` (it also weighs the loss on pseudo-labels);
            when given, it is used with a warning. Defaults to None.
    """

    def __init__(self,
                 student: dict,
                 teacher: dict,
                 distill_losses: Optional[Dict[str, dict]] = None,
                 pseudo_label: Optional[dict] = None,
                 det_loss_weight: float = 1.0,
                 classes: Optional[Sequence[str]] = None,
                 data_preprocessor: Optional[dict] = None,
                 gt_loss_weight: Optional[float] = None) -> None:
        super().__init__()
        if gt_loss_weight is not None:
            warnings.warn(
                'KDDetector: gt_loss_weight is renamed det_loss_weight (it '
                'weighs the detection loss on ground truth and on '
                'pseudo-labels alike); rename it in the config',
                DeprecationWarning)
            det_loss_weight = gt_loss_weight
        student = ConfigDict(student)
        # mmengine's Runner passes a config's top-level `data_preprocessor`
        # (mmdet's YOLO configs define one) to the model it builds: it is
        # the student's unless the student config names its own.
        if (data_preprocessor is not None
                and 'data_preprocessor' not in student):
            student.data_preprocessor = data_preprocessor
        # ConfigDict: mmdet's heads read train/test cfgs by attribute.
        self.student = MODELS.build(student)
        # The student's preprocessor prepares every batch: predict/tensor
        # modes are then exactly the student's.
        self.data_preprocessor = self.student.data_preprocessor
        self.teacher = self._build_teacher(teacher, classes)
        self.distill_losses = nn.ModuleDict()
        for name, cfg in (distill_losses or {}).items():
            self.distill_losses[name] = self._build_distill_loss(name, cfg)
        self.pseudo_label = self._check_pseudo_label(pseudo_label)
        if det_loss_weight < 0:
            raise ValueError(f'det_loss_weight must be >= 0, got '
                             f'{det_loss_weight}')
        if det_loss_weight == 0 and self.pseudo_label is not None:
            raise ValueError('pseudo_label needs det_loss_weight > 0: the '
                             'pseudo-labels are targets of the student\'s '
                             'detection loss, which det_loss_weight weights')
        if det_loss_weight == 0 and not self.distill_losses:
            raise ValueError('nothing to train: det_loss_weight is 0 and no '
                             'distill_losses are given')
        self.det_loss_weight = det_loss_weight
        self._student_names = self._recording_names('student_modules')
        self._teacher_names = self._recording_names('teacher_modules')
        # Before the names: a loss says why a pair does not fit it (e.g.
        # output losses between different heads) and how to fix the config.
        for distill_loss in self.distill_losses.values():
            distill_loss.check_pair(self.student, self.teacher)
        check_recording_names(self.student, self._student_names, 'student')
        check_recording_names(self.teacher, self._teacher_names, 'teacher')

    # --- construction -----------------------------------------------------

    def _build_teacher(self, teacher: dict,
                       student_classes: Optional[Sequence[str]]) -> nn.Module:
        """Builds, loads, checks and freezes the teacher."""
        model, teacher_classes = build_frozen_teacher(teacher)
        self._check_classes(model, teacher_classes, student_classes)
        return model

    def _check_classes(self, teacher: nn.Module,
                       teacher_classes: Optional[list],
                       student_classes: Optional[Sequence[str]]) -> None:
        """Refuses a teacher that predicts other classes than the student."""
        n_student = head_num_classes(self.student)
        n_teacher = head_num_classes(teacher)
        if None not in (n_student, n_teacher) and n_student != n_teacher:
            raise ConfigError(
                f'class count mismatch: the student head has {n_student} '
                f'classes, the teacher head {n_teacher}; give both models '
                'the same classes (num_classes of their heads)')
        if teacher_classes and student_classes and \
                list(student_classes) != list(teacher_classes):
            raise ConfigError(
                f'class name mismatch: student classes {list(student_classes)}'
                f' != teacher classes {list(teacher_classes)}')

    @staticmethod
    def _build_distill_loss(name: str, cfg: dict) -> BaseDistillLoss:
        if '.' in name or not name:
            raise ValueError(f'distill loss name "{name}" must be non-empty '
                             'and contain no dots')
        loss = MODELS.build(cfg)
        if not isinstance(loss, BaseDistillLoss):
            raise TypeError(f'distill loss "{name}" ({type(loss).__name__}) '
                            'is not a BaseDistillLoss')
        return loss

    @staticmethod
    def _check_pseudo_label(cfg: Optional[dict]) -> Optional[dict]:
        if cfg is None:
            return None
        unknown = set(cfg) - set(_PSEUDO_LABEL_DEFAULTS)
        if unknown:
            raise ValueError(f'unknown pseudo_label keys {sorted(unknown)}; '
                             f'allowed: {sorted(_PSEUDO_LABEL_DEFAULTS)}')
        return {**_PSEUDO_LABEL_DEFAULTS, **cfg}

    def _recording_names(self, attr: str) -> List[str]:
        names = [
            n for loss in self.distill_losses.values()
            for n in getattr(loss, attr)
        ]
        return list(dict.fromkeys(names))

    # --- the hidden teacher -----------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        # A plain attribute: the teacher stays out of parameters(),
        # state_dict(), children() and therefore out of DDP and optimizers.
        if name == 'teacher':
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _apply(self, fn, *args, **kwargs):
        # to()/cuda()/cpu()/half() all go through _apply.
        self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> 'KDDetector':
        """Sets the student's mode; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.train(False)
        return self

    # --- teacher inputs and predictions -----------------------------------

    def teacher_inputs(self, batch_inputs: Tensor,
                       batch_data_samples: OptSampleList) -> Tensor:
        """The student batch re-normalised for the teacher, (N, C, H', W')."""
        return map_to_teacher_inputs(
            batch_inputs, batch_data_samples,
            PixelNormalisation.of(self.data_preprocessor),
            PixelNormalisation.of(self.teacher.data_preprocessor))

    def _teacher_batch(
            self, batch_inputs: Tensor,
            batch_data_samples: SampleList) -> Tuple[Tensor, SampleList]:
        inputs = self.teacher_inputs(batch_inputs, batch_data_samples)
        divisor = PixelNormalisation.of(
            self.teacher.data_preprocessor).pad_size_divisor
        return inputs, teacher_data_samples(batch_data_samples, inputs,
                                            divisor)

    @torch.no_grad()
    def predict_teacher(self,
                        batch_inputs: Tensor,
                        batch_data_samples: SampleList,
                        rescale: bool = True) -> SampleList:
        """The teacher's detections on a student batch.

        Args:
            batch_inputs (Tensor): Student-normalised batch, (N, C, H, W).
            batch_data_samples (list[DetDataSample]): The batch's samples;
                they receive the teacher's ``pred_instances``.
            rescale (bool): Rescale boxes to the original image size.

        Returns:
            list[DetDataSample]: ``batch_data_samples`` with predictions.
        """
        inputs, samples = self._teacher_batch(batch_inputs, batch_data_samples)
        results = self.teacher.predict(inputs, samples, rescale=rescale)
        for sample, result in zip(batch_data_samples, results):
            sample.pred_instances = result.pred_instances
        return batch_data_samples

    # --- training -----------------------------------------------------------

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Student detection loss plus the distillation losses.

        Args:
            batch_inputs (Tensor): Student-normalised batch, (N, C, H, W).
            batch_data_samples (list[DetDataSample]): Samples with
                ``gt_instances`` (may be empty with pseudo-labels or
                ``det_loss_weight=0``).

        Returns:
            dict[str, Tensor]: The student's weighted loss terms and
            ``'<distill name>.<term>'`` for every distillation term.
        """
        teacher_inputs, teacher_outs, teacher_results = self.forward_teacher(
            batch_inputs, batch_data_samples)
        if self.pseudo_label is not None:
            self._set_pseudo_labels(batch_data_samples, teacher_results)
        with record(self.student, self._student_names) as student_outs:
            losses = self._student_losses(batch_inputs, batch_data_samples)
        ctx = self.distill_context(batch_inputs, teacher_inputs,
                                   batch_data_samples, student_outs,
                                   teacher_outs)
        self.forward_teacher_on_student(ctx)
        for name, distill_loss in self.distill_losses.items():
            terms = rename_loss_dict(f'{name}.', distill_loss(ctx))
            clash = set(terms) & set(losses)
            if clash:
                raise KeyError(f'distill loss "{name}" returns terms that '
                               f'already exist: {sorted(clash)}')
            losses.update(terms)
        return losses

    def distill_context(self, student_inputs: Tensor, teacher_inputs: Tensor,
                        data_samples: SampleList,
                        student_outs: Dict[str, Any],
                        teacher_outs: Dict[str, Any]) -> DistillContext:
        """The losses' view of one step: both models, both normalised
        batches, (N, C, H, W) and (N, C, H', W'), and the recordings."""
        return DistillContext(
            student_outs=student_outs,
            teacher_outs=teacher_outs,
            data_samples=data_samples,
            student=self.student,
            teacher=self.teacher,
            student_inputs=student_inputs,
            teacher_inputs=teacher_inputs)

    @torch.no_grad()
    def forward_teacher_on_student(self, ctx: DistillContext) -> None:
        """The losses' teacher computations that need the student's
        outputs (e.g. the teacher's RoI head on the student's RoIs)."""
        for distill_loss in self.distill_losses.values():
            distill_loss.teacher_forward(ctx)

    @torch.no_grad()
    def forward_teacher(
        self, batch_inputs: Tensor, batch_data_samples: SampleList
    ) -> Tuple[Tensor, Dict[str, Any], Optional[SampleList]]:
        """Runs the teacher on a student batch as a training step needs it.

        The teacher runs as far as the distillation losses' recordings and
        the pseudo-labels need (step 1 of the class docstring).

        Args:
            batch_inputs (Tensor): Student-normalised batch, (N, C, H, W).
            batch_data_samples (list[DetDataSample]): The batch's samples.

        Returns:
            tuple: The teacher-normalised batch (N, C, H', W'), the
            recorded teacher outputs by recording name, and the teacher's
            predictions (None unless pseudo-labels are on).
        """
        inputs, samples = self._teacher_batch(batch_inputs, batch_data_samples)
        with record(self.teacher, self._teacher_names) as teacher_outs:
            results = self._run_teacher(inputs, samples, teacher_outs)
        return inputs, teacher_outs, results

    def _run_teacher(self, inputs: Tensor, samples: SampleList,
                     outs: Dict[str, Any]) -> Optional[SampleList]:
        """Runs the teacher as far as needed; returns its predictions when
        pseudo-labels are on."""
        if self.pseudo_label is not None:
            return self.teacher.predict(inputs, samples, rescale=False)
        if not self._teacher_names:
            return None
        roots = {
            split_recording_name(n)[0].split('.')[0]
            for n in self._teacher_names
        }
        heads = dense_heads(self.teacher)
        if roots <= set(_FEATURE_MODULES + heads):
            # E.g. a two-stage teacher's RPN maps without its RoI head on
            # its own proposals, which no recording would read.
            feats = self.teacher.extract_feat(inputs)
            for head in heads:
                input_name = head + INPUT_SUFFIX
                if any(n != input_name and n.split('.')[0] == head
                       for n in self._teacher_names):
                    getattr(self.teacher, head)(feats)
                elif input_name in self._teacher_names:
                    # Only the head's input is read (e.g. DenseHeadKDLoss
                    # runs the head itself): the features.
                    outs[input_name] = (feats, )
        else:
            self.teacher._forward(inputs, samples)
        return None

    def _set_pseudo_labels(self, samples: SampleList,
                           results: SampleList) -> None:
        """Writes the teacher's confident detections into ``gt_instances``.

        Boxes are clipped to the image and empty ones dropped: heads that
        do not clip their detections (YOLOX's) may predict boxes far
        outside the image, which no detection loss takes as a target.
        """
        relabelled = []
        for sample, result in zip(samples, results):
            has_gt = 'gt_instances' in sample and len(sample.gt_instances)
            if has_gt and not self.pseudo_label['replace_gt']:
                continue
            pred = result.pred_instances
            boxes = HorizontalBoxes(pred.bboxes.detach().clone())
            boxes.clip_(sample.metainfo['img_shape'])
            sample.gt_instances = InstanceData(
                bboxes=boxes.tensor, labels=pred.labels,
                scores=pred.scores.detach())
            relabelled.append(sample)
        # mmdet's semi-supervised filter: confident, non-empty boxes.
        filter_gt_instances(relabelled, self.pseudo_label['score_thr'],
                            wh_thr=(0, 0))
        for sample in relabelled:  # targets are boxes and labels only
            del sample.gt_instances.scores

    def _student_losses(self, inputs: Tensor,
                        samples: SampleList) -> Dict[str, Tensor]:
        if self.det_loss_weight == 0:
            # Data-free: no targets; the forward only feeds the recordings.
            self.student._forward(inputs, samples)
            return {}
        return reweight_loss_dict(
            self.student.loss(inputs, samples), self.det_loss_weight)

    # --- inference: the student's -------------------------------------------

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """The student's ``predict``."""
        return self.student.predict(
            batch_inputs, batch_data_samples, rescale=rescale)

    def _forward(self,
                 batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None):
        """The student's ``_forward`` (``tensor`` mode)."""
        return self.student._forward(batch_inputs, batch_data_samples)

    def extract_feat(self, batch_inputs: Tensor):
        """The student's features."""
        return self.student.extract_feat(batch_inputs)
