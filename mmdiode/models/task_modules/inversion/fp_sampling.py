"""DIODE's false-positive sampling: confident teacher detections join targets.

While images are optimised towards their target boxes, the teacher starts to
see further objects in them (context the BN prior and the task loss bring
out). Turning the confident ones into targets lets the images grow more
objects instead of having the task loss suppress them.
"""
from typing import List, Sequence, Tuple

import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData
from torch import Tensor, nn


class FalsePositiveSampler:
    """Adds the teacher's own confident, new detections to the targets.

    At the due iterations the teacher's ``predict()`` runs on the current
    (un-augmented) images. A detection becomes a new target of its image if

    - its score is above ``score_thr``,
    - its largest IoU with the image's existing targets is below ``iou_thr``,
    - its area divided by the image area is in (``min_area``, ``max_area``).

    Args:
        enable (bool): Whether to sample at all. Defaults to True.
        start (int): First (global, 0-based) iteration that samples.
            Defaults to 800 (DIODE's warm-up).
        end (int): Last iteration that may sample (inclusive). Defaults to
            2800 (DIODE's early exit).
        interval (int): Sample every ``interval`` iterations from ``start``.
            Defaults to 100.
        score_thr (float): Minimal detection score. Defaults to 0.2 (DIODE).
        iou_thr (float): Detections overlapping an existing target this much
            or more are ignored. Defaults to 0.35 (DIODE).
        min_area (float): Lower bound (exclusive) of the normalised area.
            Defaults to 0.01 (DIODE).
        max_area (float): Upper bound (exclusive) of the normalised area.
            Defaults to 0.85 (DIODE).
    """

    def __init__(self,
                 enable: bool = True,
                 start: int = 800,
                 end: int = 2800,
                 interval: int = 100,
                 score_thr: float = 0.2,
                 iou_thr: float = 0.35,
                 min_area: float = 0.01,
                 max_area: float = 0.85) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if not 0.0 <= min_area < max_area:
            raise ValueError('Need 0 <= min_area < max_area, got '
                             f'{min_area}, {max_area}')
        self.enable = enable
        self.start = start
        self.end = end
        self.interval = interval
        self.score_thr = score_thr
        self.iou_thr = iou_thr
        self.min_area = min_area
        self.max_area = max_area

    def is_due(self, iteration: int) -> bool:
        """Whether to sample at this global iteration."""
        return (self.enable and self.start <= iteration <= self.end
                and (iteration - self.start) % self.interval == 0)

    @torch.no_grad()
    def sample(self, teacher: nn.Module, images: Tensor,
               data_samples: Sequence, boxes: List[Tensor],
               labels: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Runs the teacher and returns the targets with new ones appended.

        Args:
            teacher (nn.Module): mmdet detector (eval mode).
            images (Tensor): (N, C, H, W) current images in model space.
            data_samples (Sequence[DetDataSample]): Per image metainfo
                (img_shape etc.) for ``predict()``.
            boxes (list[Tensor]): Per image (K_i, 4) xyxy target boxes.
            labels (list[Tensor]): Per image (K_i,) target labels.

        Returns:
            tuple[list[Tensor], list[Tensor]]: Per image (K_i + F_i, 4) boxes
            and (K_i + F_i,) labels; the new targets come last.
        """
        img_shape = tuple(images.shape[-2:])
        preds = predict_instances(teacher, images, data_samples)
        new_boxes, new_labels = [], []
        for pred, tgt_boxes, tgt_labels in zip(preds, boxes, labels):
            found = self.select(pred, tgt_boxes, img_shape)
            new_boxes.append(
                torch.cat([tgt_boxes, found.bboxes.to(tgt_boxes)]))
            new_labels.append(
                torch.cat([tgt_labels, found.labels.to(tgt_labels)]))
        return new_boxes, new_labels

    def select(self, preds: InstanceData, targets: Tensor,
               img_shape: Tuple[int, int]) -> InstanceData:
        """The predictions of one image that qualify as new targets.

        Args:
            preds (InstanceData): ``bboxes`` (P, 4) xyxy, ``scores`` (P,),
                ``labels`` (P,).
            targets (Tensor): (K, 4) xyxy boxes of the existing targets.
            img_shape (tuple[int, int]): (h, w) of the image.

        Returns:
            InstanceData: The qualifying subset of ``preds``, with boxes
            clipped to the image (some heads do not clip).
        """
        h, w = img_shape
        preds = preds[preds.scores > self.score_thr]
        bboxes = preds.bboxes.float().clamp(
            min=preds.bboxes.new_zeros(4).float(),
            max=preds.bboxes.new_tensor([w, h, w, h]).float())
        preds.bboxes = bboxes
        area = ((bboxes[:, 2] - bboxes[:, 0]) *
                (bboxes[:, 3] - bboxes[:, 1])) / (
                    h * w)
        keep = (area > self.min_area) & (area < self.max_area)
        if len(targets) and len(bboxes):
            max_iou = bbox_overlaps(bboxes, targets.to(bboxes)).max(1).values
            keep &= max_iou < self.iou_thr
        return preds[keep]


@torch.no_grad()
def predict_instances(teacher: nn.Module, images: Tensor,
                      data_samples: Sequence) -> List[InstanceData]:
    """The teacher's detections on synthesized images, in their pixels.

    Shared by the false-positive sampling and the early exit
    (``early_exit.py``). The caller keeps the teacher in eval mode and
    switches off what must not see this forward pass (the BN prior's
    recording).

    Args:
        teacher (nn.Module): mmdet detector (eval mode).
        images (Tensor): (N, C, H, W) images in model space.
        data_samples (Sequence[DetDataSample]): Per image metainfo
            (img_shape etc.) for ``predict()``.

    Returns:
        list[InstanceData]: Per image ``bboxes`` (P_i, 4) xyxy in pixels of
        ``images`` (not rescaled), ``scores`` (P_i,) and ``labels`` (P_i,).
    """
    results = teacher.predict(images, list(data_samples), rescale=False)
    return [result.pred_instances for result in results]
