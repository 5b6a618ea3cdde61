# The run settings of the synthesis configs (tools/synthesize.py), on CPUs:
# each of them inherits this file (or coco.py) and one recipe of this
# folder, and adds its teacher and layouts. 1000 images in batches of 16;
# seed 0, from which (with the image index) layouts and initial noise
# follow; images that come out non-finite are made again with fresh seeds,
# twice at most; logs for TensorBoard too.
custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
default_scope = 'mmdet'

synthesis = dict(num_images=1000, batch_size=16, seed=0, max_retries=2)
vis_backends = [dict(type='LocalVisBackend'),
                dict(type='TensorboardVisBackend')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
