"""Multi-Object Impressions (MOI): inversion of a teacher without BatchNorm.

Zero-shot distillation for Faster R-CNN (Nayak et al., 2021) synthesizes a
transfer set from the teacher alone: no training data and no statistic of it
(such as BatchNorm running statistics) may be used.
"""
from mmdet.registry import TASK_UTILS
from torch import nn

from .deep_inversion import DeepInversion


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
      ``P[c]`` (so the same or similar classes are likely). The
      :class:`ClassCoOccurrence` label sampler relabels every batch's
      layouts this way (boxes are kept); DIODE's recipe can use it too
      (``DeepInversion``'s ``label_sampler``).
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
            ``bn_prior`` nor ``label_sampler``).
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
        if 'label_sampler' in kwargs:
            raise ValueError(
                'MultiObjectImpressions draws its labels with '
                'ClassCoOccurrence: set classifier_weight and temperature '
                'instead of label_sampler')
        super().__init__(
            teacher,
            bn_prior=dict(weight=0.0),
            label_sampler=dict(
                type='ClassCoOccurrence',
                classifier_weight=classifier_weight,
                temperature=temperature),
            **kwargs)
        if self.uses_bn_prior:
            raise ValueError(
                'MultiObjectImpressions uses no data statistics: no stage may '
                'set bn_weight > 0')
