"""tools/analysis_tools/screen_recipe.py on a tiny epoch-based run: the
change and the schedule folded into the config, both splits scored from the
same checkpoint, a stopped training resumed, a finished one not repeated,
and bad options refused with one error line."""
import json
import os
import os.path as osp
import subprocess
import sys

from mmengine.config import Config

from mmdiode.testing import tiny_yolov3

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(__file__)), 'models'))
from kd_helpers import CLASSES, make_tiny_coco, runner_config  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'screen_recipe.py')


def _config(tmp_path) -> str:
    coco = make_tiny_coco(str(tmp_path / 'coco'), num_images=4)
    model = tiny_yolov3(num_classes=len(CLASSES))
    # A two-epoch tiny model is not confident: without these thresholds it
    # returns no boxes and CocoMetric prints no bbox_mAP_copypaste line.
    model.test_cfg.update(score_thr=0.0, conf_thr=0.0)
    cfg = runner_config(model, coco, str(tmp_path / 'work'))
    cfg.update(
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=5,
                       val_interval=5),
        param_scheduler=[dict(type='CosineAnnealingLR', T_max=5, begin=0,
                              end=5, by_epoch=True)],
        log_level='INFO')
    cfg['default_hooks']['checkpoint'] = dict(type='CheckpointHook',
                                              interval=5)
    path = str(tmp_path / 'run.py')
    Config(cfg).dump(path)
    return path


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_screens_resumes_and_skips_a_finished_training(tmp_path):
    config = _config(tmp_path)
    val = make_tiny_coco(str(tmp_path / 'val'), num_images=3, seed=1)
    work = tmp_path / 'screen'
    args = [config, '--work-dir', str(work), '--epochs', '2',
            '--checkpoint-interval', '1', '--val-ann-file', val['ann_file'],
            '--cfg-options', 'optim_wrapper.optimizer.lr=0.002']
    r = _run(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'training from the start' in r.stdout
    screened = Config.fromfile(str(work / 'config.py'))
    assert screened.train_cfg.max_epochs == 2
    assert screened.param_scheduler[0].T_max == 2
    assert screened.optim_wrapper.optimizer.lr == 0.002
    result = json.loads((work / 'screen.json').read_text())
    assert result['epochs'] == 2
    assert result['checkpoint'].endswith('epoch_2.pth')
    assert set(result['val']) == set(result['test']) == {
        'map', 'map50', 'map75', 'map_s', 'map_m', 'map_l'}
    assert r.stdout.strip().splitlines()[-1] == (
        f"screen val_map={result['val']['map']:.3f} "
        f"val_map50={result['val']['map50']:.3f} "
        f"test_map={result['test']['map']:.3f} "
        f"test_map50={result['test']['map50']:.3f}")
    # Each split's run read its own annotations (the logged config).
    assert val['ann_file'] in (work / 'val.out').read_text()
    assert val['ann_file'] not in (work / 'test.out').read_text()

    # Stopped after epoch 1: the run continues from there, epoch 1 kept.
    os.remove(work / 'train' / 'epoch_2.pth')
    first = work / 'train' / 'epoch_1.pth'
    (work / 'train' / 'last_checkpoint').write_text(str(first))
    mtime = first.stat().st_mtime_ns
    r = _run(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'training from ' + str(first) in r.stdout
    assert (work / 'train' / 'epoch_2.pth').is_file()
    assert first.stat().st_mtime_ns == mtime
    assert 'resumed epoch: 1' in (work / 'train.out').read_text()

    # Another change in the same work dir is refused, nothing rewritten.
    config_text = (work / 'config.py').read_text()
    r = _run(*args[:-1], 'optim_wrapper.optimizer.lr=0.004')
    assert r.returncode == 2
    assert r.stderr.startswith(f'error: {work} holds a screen of other '
                               'settings')
    assert (work / 'config.py').read_text() == config_text

    # Finished: scored again, not retrained.
    size = (work / 'train.out').stat().st_size
    r = _run(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'training done' in r.stdout
    assert (work / 'train.out').stat().st_size == size


def test_unknown_option_is_one_error_line(tmp_path):
    r = _run(_config(tmp_path), '--work-dir', str(tmp_path / 'screen'),
             '--cfg-options', 'train_cfg.max_epoch=3')
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f'error: unknown --cfg-options key "train_cfg.max_epoch": it is not '
        f'in the config {tmp_path / "run.py"}']
    assert not (tmp_path / 'screen').exists()


def test_epochs_need_an_epoch_based_loop(tmp_path):
    coco = make_tiny_coco(str(tmp_path / 'coco'), num_images=2)
    path = str(tmp_path / 'iters.py')
    Config(runner_config(tiny_yolov3(num_classes=len(CLASSES)), coco,
                         str(tmp_path / 'work'))).dump(path)
    r = _run(path, '--work-dir', str(tmp_path / 'screen'), '--epochs', '2')
    assert r.returncode == 2
    assert r.stderr.startswith('error: --epochs and --checkpoint-interval '
                               'need an epoch-based train_cfg')
