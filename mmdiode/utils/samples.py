"""Detection data samples built from box layouts (no dataset involved)."""


def unscaled_metainfo(height: int, width: int) -> dict:
    """Metainfo of an image fed to the detector at its own size.

    The image is its original (not resized, ``scale_factor`` 1) and is not
    padded, so every shape mmdet's heads read is ``(height, width)``.

    Args:
        height (int): Height of the image in pixels.
        width (int): Width of the image in pixels.

    Returns:
        dict: ``img_shape``, ``ori_shape``, ``pad_shape`` and
        ``batch_input_shape`` ``(height, width)``, ``scale_factor``
        ``(1.0, 1.0)``.
    """
    shape = (height, width)
    return dict(img_shape=shape,
                ori_shape=shape,
                pad_shape=shape,
                batch_input_shape=shape,
                scale_factor=(1.0, 1.0))


def make_data_samples(boxes_per_image, labels_per_image,
                      img_size: int) -> list:
    """DetDataSamples with gt_instances for a batch of (img_size)^2 images.

    Args:
        boxes_per_image (list[Tensor]): (K_i, 4) xyxy boxes in pixels.
        labels_per_image (list[Tensor]): (K_i,) int64 labels.
        img_size (int): Side of the square images.
    """
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    samples = []
    for boxes, labels in zip(boxes_per_image, labels_per_image):
        s = DetDataSample(metainfo=unscaled_metainfo(img_size, img_size))
        s.gt_instances = InstanceData(bboxes=boxes.float(),
                                      labels=labels.long())
        samples.append(s)
    return samples
