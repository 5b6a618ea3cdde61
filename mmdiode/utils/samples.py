"""Detection data samples built from box layouts (no dataset involved)."""


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
        s = DetDataSample(
            metainfo=dict(img_shape=(img_size, img_size),
                          ori_shape=(img_size, img_size),
                          pad_shape=(img_size, img_size),
                          batch_input_shape=(img_size, img_size),
                          scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(bboxes=boxes.float(),
                                      labels=labels.long())
        samples.append(s)
    return samples
