"""Target labels drawn from the teacher's own class similarities.

A layout sampler draws the boxes of an image and a class for each; the
classes may be balanced (every class as often in every image) or
independent. Multi-Object Impressions (Nayak et al., 2021) instead puts
objects in one image that the teacher finds plausible together, and the
only knowledge of class relations a teacher holds without its data is its
classifier. :class:`ClassCoOccurrence` turns the classifier rows into a
class-given-class distribution and relabels layouts with it (boxes kept).

It is MOI's label choice and an option of :class:`DeepInversion`
(``label_sampler``), so DIODE's BN-prior recipe can use it too. Decisions:

- the prototypes are the first ``num_classes`` rows of the named weight,
  ``num_classes`` read from the closest module above it: the weight must
  have ``num_classes`` rows or one more (Faster R-CNN's ``fc_cls``, whose
  background row is dropped); any other weight is an error, not a guess
  (YOLOv3's prediction convs mix boxes, objectness and classes; an anchor
  head's conv holds one block of classes per anchor);
- the first object of an image gets a uniformly drawn class, so every
  class leads as many images; the others come from the similarity row of
  the first, with replacement (repeats of one class are likely, as in real
  images);
- every draw uses the caller's generator, before any other draw of the
  synthesis, so a seeded run gives the same labels and images.
"""
from typing import List, Optional, Sequence

import torch
from mmdet.registry import TASK_UTILS
from torch import Tensor, nn

from .deep_inversion import LayoutLike


@TASK_UTILS.register_module()
class ClassCoOccurrence:
    """Relabels layouts so that similar classes share an image.

    With ``S`` the cosine similarity of the class prototypes and
    ``P = softmax(S / temperature)`` row-wise, an image's first object gets
    a uniformly drawn class ``c`` and the others are drawn from ``P[c]``.

    Args:
        teacher (nn.Module): Built mmdet detector holding the classifier.
        classifier_weight (str): Dotted name of the teacher's classification
            weight, a (C or C + 1, ...) parameter whose first C rows belong
            to the C classes (C the ``num_classes`` of its head). Defaults
            to 'roi_head.bbox_head.fc_cls.weight' (Faster R-CNN and the
            other ``StandardRoIHead`` detectors).
        temperature (float): Softmax temperature over cosine similarities;
            lower favours the most similar classes more. Defaults to 0.1
            (a class 0.3 less similar is about e^3 = 20 times less likely).
    """

    def __init__(self,
                 teacher: nn.Module,
                 classifier_weight: str = 'roi_head.bbox_head.fc_cls.weight',
                 temperature: float = 0.1) -> None:
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.classifier_weight = classifier_weight
        self.temperature = temperature
        self.probs = self.co_occurrence(
            class_prototypes(teacher, classifier_weight), temperature)

    @staticmethod
    def co_occurrence(prototypes: Tensor, temperature: float) -> Tensor:
        """Row-stochastic class-given-class probabilities.

        Args:
            prototypes (Tensor): (C, D) class weight rows.
            temperature (float): Softmax temperature.

        Returns:
            Tensor: (C, C), row ``c`` is ``softmax(cos(w_c, w_.) / T)``.
        """
        unit = torch.nn.functional.normalize(prototypes, dim=1)
        return torch.softmax(unit @ unit.t() / temperature, dim=1)

    def relabel(
            self,
            layouts: Sequence[LayoutLike],
            generator: Optional[torch.Generator] = None) -> List[LayoutLike]:
        """New labels for the objects of each layout.

        Args:
            layouts (Sequence[tuple[Tensor, Tensor]]): Per image (K, 4)
                boxes and (K,) labels (the labels are replaced).
            generator (torch.Generator, optional): CPU generator. Defaults
                to torch's global generator.

        Returns:
            list[tuple[Tensor, Tensor]]: The same boxes with (K,) int64
            labels on the device of the old ones: the first uniform over the
            classes, the others drawn from the similarity row of the first.
        """
        return [(boxes, self._draw(len(labels), generator).to(
            torch.as_tensor(labels).device)) for boxes, labels in layouts]

    def _draw(self, k: int, generator: Optional[torch.Generator]) -> Tensor:
        """(k,) labels of one image."""
        labels = torch.empty(k, dtype=torch.int64)
        if k == 0:
            return labels
        first = torch.randint(len(self.probs), (1, ), generator=generator)
        labels[0] = first
        if k > 1:
            labels[1:] = torch.multinomial(
                self.probs[int(first)],
                k - 1,
                replacement=True,
                generator=generator)
        return labels


def class_prototypes(teacher: nn.Module, name: str) -> Tensor:
    """The classifier rows of a teacher's object classes.

    Args:
        teacher (nn.Module): Built mmdet detector.
        name (str): Dotted name of a parameter of at least 2 dimensions
            whose first ``num_classes`` rows belong to the classes.

    Returns:
        Tensor: (C, D) float32 rows on the CPU, D the flattened rest.
    """
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
    rows = len(weight)
    if num_classes is None or rows not in (num_classes, num_classes + 1):
        raise ValueError(
            f'Cannot tell the classes of {name!r} ({rows} rows, '
            f'num_classes {num_classes} on its path): name the weight of a '
            'per-class classifier, with num_classes rows or one more for a '
            "background class, e.g. 'roi_head.bbox_head.fc_cls.weight'")
    # Rows past num_classes (e.g. Faster R-CNN's background) are dropped.
    return weight.detach()[:num_classes].flatten(1).float().cpu()


def _owner_num_classes(model: nn.Module, param_name: str) -> Optional[int]:
    """``num_classes`` of the closest module above a parameter, if any."""
    parts = param_name.split('.')[:-1]
    for depth in range(len(parts), -1, -1):
        module = model.get_submodule('.'.join(parts[:depth]))
        num_classes = getattr(module, 'num_classes', None)
        if isinstance(num_classes, int):
            return num_classes
    return None
