"""Helpers of the data set tests."""


def load_coco_dataset(root, classes):
    """The COCO set written into ``root`` (``annotations.json``, image paths
    relative to ``root``) as mmdet's ``CocoDataset`` loads it, without a
    pipeline."""
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    return DATASETS.build(
        dict(
            type='CocoDataset',
            data_root=str(root),
            ann_file='annotations.json',
            data_prefix=dict(img=''),
            metainfo=dict(classes=classes),
            test_mode=True,
            pipeline=[]))
