"""A fix of mmdet 3.3.0 that mmdiode needs for one of its teacher families.

mmdet 3.3.0's ``SSDHead.predict()`` fails with ``AttributeError: 'SSDHead'
object has no attribute 'loss_cls'``: ``BaseDenseHead._predict_by_feat_single``
reads ``self.loss_cls`` (for v3det's custom class channels), which SSD's head,
computing its own cross-entropy, never sets (mmdet issues #11063, #11305 and
#11780; the fix of pull request #11524 is not released). Without it an SSD
teacher gives no detections (false-positive sampling, pseudo-labels) and an
SSD student cannot be evaluated.

:func:`patch_ssd_head` wraps ``SSDHead.__init__`` so that a head without a
``loss_cls`` gets ``loss_cls = None``, on which mmdet's check reads False
and takes the softmax branch SSD needs; a head that has one (a fixed mmdet)
is left alone. Importing :mod:`mmdiode.models` applies it once.
"""
import functools

from mmdet.models.dense_heads import SSDHead

__all__ = ['patch_ssd_head']


def patch_ssd_head() -> None:
    """Gives every new ``SSDHead`` a ``loss_cls`` (None) when it has none.

    Idempotent.
    """
    original = SSDHead.__init__
    if getattr(original, '_mmdiode_patched', False):
        return

    @functools.wraps(original)
    def __init__(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        if not hasattr(self, 'loss_cls'):
            self.loss_cls = None

    __init__._mmdiode_patched = True
    SSDHead.__init__ = __init__
