"""Multi-Object Impressions (MOI): inversion of a teacher without BatchNorm.

Zero-shot distillation for Faster R-CNN (Nayak et al., 2021) synthesizes a
transfer set from the teacher alone: no training data and no statistic of it
(such as BatchNorm running statistics) may be used.
"""
from typing import List, Optional, Sequence

import torch
from mmdet.registry import TASK_UTILS
from torch import Tensor, nn

from .deep_inversion import (DeepInversion, LayoutLike, LossCallback,
                             SynthesisResult, WarmSource)


@TASK_UTILS.register_module()
class MultiObjectImpressions(DeepInversion):
    """DeepInversion without data statistics, with similar-class objects.

    Design (the full paper was not available; choices documented here):

    - **No data statistic.** The BatchNorm-statistics prior is off (passing
      ``bn_prior`` is an error). Only the teacher's own behaviour drives the
      pixels; an image prior (TV) is allowed since it is a generic
      smoothness assumption, not a statistic of the training data. The
      teacher's input normalisation is part of the model and defines the
      space the pixels live in.
    - **Class choice from the classifier.** Objects that co-occur in one image
      should be plausible together. The only knowledge of class relations the
      teacher holds is its classifier: the rows of ``classifier_weight``
      (``roi_head.bbox_head.fc_cls.weight`` for Faster R-CNN, background row
      dropped) are class prototypes. With ``S`` their cosine similarity and
      ``P = softmax(S / temperature)`` row-wise, an image's first object
      gets a uniformly drawn class ``c``, the others are drawn from
      ``P[c]`` (so the same or similar classes are likely).
      :meth:`synthesize` relabels its layouts this way (boxes are kept).
    - **Pseudo-targets refreshed from the teacher.** At the ``fp_sampling``
      iterations the teacher's own confident detections on the current
      images that do not overlap a target join the targets, so the task loss
      stops suppressing objects the teacher already sees (the same
      :class:`FalsePositiveSampler` as DIODE).
    - **Full two-stage loss.** The teacher's whole ``loss()`` (RPN and RoI
      head terms) drives the pixels, weighted as in :class:`DeepInversion`.

    Args:
        teacher (nn.Module): Built mmdet detector, e.g. Faster R-CNN.
        classifier_weight (str): Dotted name of the teacher's classification
            weight, a (C or C + 1, D) parameter whose first C rows belong to
            the C classes. Defaults to 'roi_head.bbox_head.fc_cls.weight'.
        temperature (float): Softmax temperature over cosine similarities;
            lower favours the most similar classes more. Defaults to 0.1
            (a class 0.3 less similar is about e^3 = 20 times less likely).
        **kwargs: Further :class:`DeepInversion` arguments (not
            ``bn_prior``).
    """

    def __init__(self,
                 teacher: nn.Module,
                 classifier_weight: str = 'roi_head.bbox_head.fc_cls.weight',
                 temperature: float = 0.1,
                 **kwargs) -> None:
        if 'bn_prior' in kwargs:
            raise ValueError(
                'MultiObjectImpressions uses no data statistics: do not pass '
                'bn_prior (the BatchNorm-statistics prior is always off)')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        super().__init__(teacher, bn_prior=dict(weight=0.0), **kwargs)
        if self.uses_bn_prior:
            raise ValueError(
                'MultiObjectImpressions uses no data statistics: no stage may '
                'set bn_weight > 0')
        self.classifier_weight = classifier_weight
        self.temperature = temperature
        prototypes = self._class_prototypes(teacher, classifier_weight)
        self.class_probs = self.class_co_occurrence(prototypes, temperature)

    @staticmethod
    def _class_prototypes(teacher: nn.Module, name: str) -> Tensor:
        """The (C, D) classifier rows of the C object classes."""
        try:
            weight = teacher.get_parameter(name)
        except AttributeError as err:
            raise ValueError(
                f'classifier_weight {name!r} is not a parameter of the '
                f'teacher {type(teacher).__name__}: {err}') from err
        if weight.dim() < 2:
            raise ValueError(f'classifier_weight {name!r} must be at least '
                             f'2-D (classes, ...), got {tuple(weight.shape)}')
        num_classes = _owner_num_classes(teacher, name)
        if num_classes is None or num_classes > len(weight):
            raise ValueError(
                f'Cannot tell the classes of {name!r} '
                f'({len(weight)} rows): no module on its path has a '
                f'num_classes attribute <= {len(weight)}')
        # Rows past num_classes (e.g. Faster R-CNN's background) are dropped.
        return weight.detach()[:num_classes].flatten(1).float().cpu()

    @staticmethod
    def class_co_occurrence(prototypes: Tensor, temperature: float) -> Tensor:
        """Row-stochastic class-given-class probabilities.

        Args:
            prototypes (Tensor): (C, D) class weight rows.
            temperature (float): Softmax temperature.

        Returns:
            Tensor: (C, C), row ``c`` is ``softmax(cos(w_c, w_.) / T)``.
        """
        unit = torch.nn.functional.normalize(prototypes, dim=1)
        return torch.softmax(unit @ unit.t() / temperature, dim=1)

    def relabel_layouts(
            self,
            layouts: Sequence[LayoutLike],
            generator: Optional[torch.Generator] = None) -> List[LayoutLike]:
        """New labels for the objects of each layout from class similarity.

        Args:
            layouts (Sequence[tuple[Tensor, Tensor]]): Per image (K, 4)
                boxes and (K,) labels (the labels are replaced).
            generator (torch.Generator, optional): CPU generator. Defaults
                to torch's global generator.

        Returns:
            list[tuple[Tensor, Tensor]]: The same boxes with int64 labels:
            the first uniform over the classes, the others drawn from the
            similarity row of the first.
        """
        num_classes = len(self.class_probs)
        relabelled = []
        for boxes, labels in layouts:
            k = len(labels)
            new = torch.empty(k, dtype=torch.int64)
            if k:
                first = torch.randint(num_classes, (1, ), generator=generator)
                new[0] = first
                if k > 1:
                    new[1:] = torch.multinomial(
                        self.class_probs[int(first)],
                        k - 1,
                        replacement=True,
                        generator=generator)
            relabelled.append((boxes, new.to(torch.as_tensor(labels).device)))
        return relabelled

    def synthesize(self,
                   layouts: Sequence[LayoutLike],
                   generator: Optional[torch.Generator] = None,
                   callback: Optional[LossCallback] = None,
                   objects: Optional[WarmSource] = None) -> SynthesisResult:
        """Relabels the layouts (:meth:`relabel_layouts`), then synthesizes.

        See :meth:`DeepInversion.synthesize` for the arguments and result.
        """
        return super().synthesize(
            self.relabel_layouts(layouts, generator), generator, callback,
            objects)


def _owner_num_classes(model: nn.Module, param_name: str) -> Optional[int]:
    """``num_classes`` of the closest module above a parameter, if any."""
    parts = param_name.split('.')[:-1]
    for depth in range(len(parts), -1, -1):
        module = model.get_submodule('.'.join(parts[:depth]))
        num_classes = getattr(module, 'num_classes', None)
        if isinstance(num_classes, int):
            return num_classes
    return None
