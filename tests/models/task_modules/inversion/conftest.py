"""Fixtures of the inversion tests: registries, one thread, tiny teachers."""
import pytest
import torch


@pytest.fixture(scope='session', autouse=True)
def _registered():
    """mmdet's and mmdiode's modules in the registries, one torch thread."""
    torch.set_num_threads(1)
    from mmdet.utils import register_all_modules
    register_all_modules()
    import mmdiode  # noqa: F401


def build_teacher(name: str, seed: int = 0, **kwargs):
    """A tiny real mmdet detector from ``mmdiode.testing`` (eval mode).

    The config is wrapped in a ``ConfigDict`` as ``Config.fromfile`` would
    do: mmdet's heads read ``test_cfg`` by attribute.
    """
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict

    from mmdiode import testing
    torch.manual_seed(seed)
    cfg = getattr(testing, f'tiny_{name}')(**kwargs)
    return MODELS.build(ConfigDict(cfg)).eval()


def two_layouts():
    """Targets of two 64 px images: one box of class 1; boxes of classes 0
    and 2 (the layouts the engine tests synthesize)."""
    return [(torch.tensor([[8., 8., 40., 48.]]), torch.tensor([1])),
            (torch.tensor([[4., 30., 30., 60.], [34., 4., 62.,
                                                 28.]]), torch.tensor([0, 2]))]


def gn_teacher(name: str):
    """A tiny detector without any BatchNorm layer (GroupNorm backbone)."""
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict

    from mmdiode import testing
    cfg = getattr(testing, f'tiny_{name}')()
    cfg['backbone']['norm_cfg'] = dict(
        type='GN', num_groups=4, requires_grad=True)
    return MODELS.build(ConfigDict(cfg)).eval()


@pytest.fixture(scope='session')
def teachers(_registered):
    """One tiny YOLOv3, Faster R-CNN and RetinaNet teacher each."""
    return {
        name: build_teacher(name)
        for name in ('yolov3', 'faster_rcnn', 'retinanet')
    }


def set_classifier(teacher):
    """Sets a tiny Faster R-CNN's ``fc_cls``: classes 0 and 1 share a
    direction, class 2 points the other way."""
    weight = teacher.roi_head.bbox_head.fc_cls.weight
    assert weight.shape[0] == 4  # 3 classes + background
    with torch.no_grad():
        weight.zero_()
        weight[0, 0] = weight[1, 0] = 1.0
        weight[1, 1] = 0.1
        weight[2, 0] = -1.0
        weight[3, 5] = 1.0  # background row: must be ignored


def three_boxes(n: int = 2, k: int = 3):
    """``n`` layouts of 64 px images with the same first ``k`` of three
    boxes, all of class 0 (for label samplers to replace)."""
    boxes = torch.tensor([[4., 4., 20., 20.], [30., 30., 60., 60.],
                          [4., 40., 24., 62.]])[:k]
    return [(boxes, torch.zeros(k, dtype=torch.long)) for _ in range(n)]
