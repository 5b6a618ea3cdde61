"""A sweep of bad inputs through the real tools: each one is one error line.

For every case the tool must exit with code 2, print exactly one line
starting with ``error:`` on stderr that names the problem, print no Python
traceback, and leave every file that existed before the call (its inputs, an
earlier run's work dir, the shared fixtures) as it was: same bytes, same
modification time.

Decisions:

* In-process: every tool is called through its ``main(argv)`` (the tools
  are scripts; they are imported from ``tools/`` by path), stderr is read
  with ``capsys`` and argparse's ``SystemExit`` is caught. torch and mmdet
  are imported once for the whole sweep, which keeps it within its time
  budget; a subprocess is used nowhere.
* The inputs are the repository's own configs and checkpoint, and the tiny
  runs of :mod:`mmdiode.testing` (a random tiny teacher, a tiny synthesis
  config, a tiny on-the-fly data-free config). One finished synthesis and
  one finished data-free run are made once per module; cases that start from
  them get copies. The working directory is a folder holding a stand-in
  ``data/digits`` (its annotation files, no images: every case fails before
  an image is read), so the digits configs find their data.
* A disk that fills up is simulated in-process: PIL's ``Image.save`` (every
  PNG the tools write) raises ``OSError(ENOSPC)``.
* Every case runs with a clean launcher environment (no ``RANK`` etc.,
  ``LOCAL_RANK=0``); the distributed cases set their own variables.
"""
import errno
import hashlib
import json
import os
import os.path as osp
import shutil
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import pytest
import torch
from tool_loader import load_tool

from mmdiode.testing import (save_tiny_teacher, write_tiny_datafree_config,
                             write_tiny_synthesis_config)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
YOLO_CKPT = osp.join(ROOT, 'checkpoints', 'digits_yolov3_teacher_fp16.pth')
LAUNCH_VARS = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT',
               'LOCAL_WORLD_SIZE', 'SLURM_PROCID', 'SLURM_NTASKS',
               'SLURM_NODELIST', 'OMPI_COMM_WORLD_RANK',
               'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK')
# No data loader worker processes in the tools' runs.
NO_WORKERS = ['test_dataloader.num_workers=0',
              'test_dataloader.persistent_workers=False']


# The digits benchmark's configs, relative to configs/.
YOLOV3_TEACHER = 'detectors/yolov3-mv2_24e_digits.py'
YOLOV3_STUDENT = 'detectors/yolov3-mv2-x0.5_24e_digits.py'
FRCNN_TEACHER = 'detectors/faster-rcnn-r18_8e_digits.py'
YOLOV3_HGD = 'hgd/hgd_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py'
FRCNN_HGD = 'hgd/hgd_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py'


def digits(name: str) -> str:
    return osp.join(ROOT, 'configs', name)


_TOOLS: Dict[str, object] = {}


def tool(name: str):
    """``tools/<name>.py`` imported as a module (once)."""
    if name not in _TOOLS:
        _TOOLS[name] = load_tool(name)
    return _TOOLS[name]


def run_tool(name: str, argv: List[str], capsys) -> Tuple[int, str, str]:
    """``main(argv)`` of a tool: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = tool(name).main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(*roots) -> Dict[str, Tuple[int, int, str]]:
    """Size, modification time and SHA-256 of every file under ``roots``
    (folders or files)."""
    paths = []
    for root in map(str, roots):
        paths += [root] if osp.isfile(root) else [
            osp.join(folder, name) for folder, _, names in os.walk(root)
            for name in names
        ]
    files = {}
    for path in paths:
        with open(path, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        st = os.stat(path)
        files[path] = (st.st_size, st.st_mtime_ns, digest)
    return files


# --------------------------------------------------------------------------
# Fixtures


class Fixtures(NamedTuple):
    """Inputs shared by the cases (never written by them)."""
    root: Path
    teacher: str  # tiny random teacher checkpoint
    synth_cfg: str  # tiny synthesis config (4 images, batches of 2)
    synth_out: Path  # its finished output
    datafree_run: Path  # a finished tiny data-free run: pool/, work/
    workspace: Path  # the working directory: data/digits (a stand-in)

    def inputs(self) -> list:
        """The shared files the cases read (not the runs' logs: in one
        process, mmengine's loggers of the same name are reused)."""
        return [self.teacher, self.synth_cfg, self.synth_out,
                self.datafree_run / 'pool', self.workspace / 'data']


def stand_in_digits(root: Path) -> None:
    """``data/digits`` as the digits configs read it: annotation files of
    the ten digit classes (one image entry each) and the split folders."""
    for split in ('train', 'val', 'test'):
        (root / split).mkdir(parents=True)
        (root / 'annotations').mkdir(exist_ok=True)
        (root / 'annotations' / f'{split}.json').write_text(json.dumps(dict(
            images=[dict(id=1, file_name=f'{split}/000000.png', width=128,
                         height=128)],
            annotations=[],
            categories=[dict(id=d + 1, name=str(d)) for d in range(10)])))


@pytest.fixture(scope='module')
def fx(tmp_path_factory) -> Fixtures:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('bad_inputs_fx')
    teacher = save_tiny_teacher(str(root / 'teacher.pth'))
    synth_cfg = write_tiny_synthesis_config(str(root / 'synth.py'), teacher,
                                            num_images=4)
    workspace = root / 'workspace'
    stand_in_digits(workspace / 'data' / 'digits')
    return Fixtures(root, teacher, synth_cfg, root / 'synth_out',
                    root / 'datafree', workspace)


@pytest.fixture(scope='module')
def finished(fx: Fixtures) -> Fixtures:
    """The fixtures with their finished runs made (in-process)."""
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()) as err:
        code = tool('synthesize').main([
            fx.synth_cfg, '--out', str(fx.synth_out), '--work-dir',
            str(fx.root / 'synth_work'), '--device', 'cpu'
        ])
        assert code == 0, err.getvalue()[-3000:]
        cfg = write_tiny_datafree_config(str(fx.root / 'finished_df.py'),
                                         str(fx.datafree_run), fx.teacher,
                                         max_iters=2)
        code = tool('train').main(
            [cfg, '--work-dir', str(fx.datafree_run / 'work')])
        assert code == 0, err.getvalue()[-3000:]
    return fx


class Ctx(NamedTuple):
    """What a case builds its inputs from."""
    ws: Path  # the case's own folder
    fx: Fixtures
    monkeypatch: pytest.MonkeyPatch

    @property
    def work(self) -> Path:
        """An earlier run's work dir (pre-filled: must stay as it is)."""
        return self.ws / 'work'

    def file(self, name: str, content) -> str:
        path = self.ws / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return str(path)

    def datafree(self, pool: str = 'new', **kwargs) -> str:
        """A tiny data-free config whose pool is ``<ws>/pool``: empty
        (``'new'``) or a copy of the finished run's (``'copy'``)."""
        if pool == 'copy':
            shutil.copytree(self.fx.datafree_run / 'pool', self.ws / 'pool')
        return write_tiny_datafree_config(str(self.ws / 'datafree.py'),
                                          str(self.ws), self.fx.teacher,
                                          **kwargs)

    def synth_out(self, batches: int) -> str:
        """A copy of the finished synthesis as it was after ``batches``
        batches (a run stopped there)."""
        out = self.ws / 'synth_out'
        src = self.fx.synth_out
        (out / 'shards' / 'rank0').mkdir(parents=True)
        (out / 'images').mkdir()
        shutil.copy2(src / 'shards' / 'job.json', out / 'shards')
        for b in range(batches):
            name = f'batch_{b:06d}.json'
            shutil.copy2(src / 'shards' / 'rank0' / name,
                         out / 'shards' / 'rank0')
            for i in (2 * b, 2 * b + 1):
                shutil.copy2(src / 'images' / f'{i:06d}.png', out / 'images')
        return str(out)

    def disk_full(self) -> None:
        """Every PNG write fails as on a full disk."""
        from PIL import Image

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self.monkeypatch.setattr(Image.Image, 'save', full)


def synth(ctx: Ctx, *extra, out: Optional[str] = None) -> List[str]:
    """Arguments of a tiny synthesis run."""
    return [ctx.fx.synth_cfg, '--out', out or str(ctx.ws / 'out'),
            '--work-dir', str(ctx.work), '--device', 'cpu'] + list(extra)


def train_datafree(ctx: Ctx, *options, pool: str = 'new',
                   **kwargs) -> List[str]:
    """Arguments of a tiny data-free training run."""
    args = [ctx.datafree(pool, **kwargs), '--work-dir', str(ctx.work)]
    return args + (['--cfg-options'] + list(options) if options else [])


def eval_teacher(ctx: Ctx, *extra, checkpoint=YOLO_CKPT) -> List[str]:
    """Arguments of tools/test.py on the digits YOLOv3 teacher's config."""
    return [digits(YOLOV3_TEACHER), checkpoint, '--work-dir', ctx.work
            ] + list(extra)


def train_teacher(ctx: Ctx, *extra) -> List[str]:
    """Arguments of tools/train.py on the digits YOLOv3 teacher's config."""
    return [digits(YOLOV3_TEACHER), '--work-dir', ctx.work] + list(extra)


def warm_start_set(ctx: Ctx, categories, images=()) -> str:
    """A synthesized set's annotations.json (no image files needed)."""
    return osp.dirname(ctx.file(
        'warm/annotations.json',
        json.dumps(dict(images=list(images), annotations=[],
                        categories=[dict(id=i + 1, name=n)
                                    for i, n in enumerate(categories)]))))


def coco_of_zebras(ctx: Ctx) -> List[str]:
    """A test split whose json names no digit (its boxes would be
    dropped)."""
    ctx.file('zebras/images/000000.png', b'')
    ann = ctx.file('zebras/ann.json', json.dumps(dict(
        images=[dict(id=1, file_name='000000.png', width=8, height=8)],
        annotations=[], categories=[dict(id=1, name='zebra')])))
    root = str(ctx.ws / 'zebras') + '/'
    return [f'test_dataloader.dataset.data_root={root}',
            'test_dataloader.dataset.ann_file=ann.json',
            'test_dataloader.dataset.data_prefix.img=images/',
            f'test_evaluator.ann_file={ann}']


class _RunsCode:
    """Unpickling this would call os.system."""

    def __reduce__(self):
        return (os.system, ('echo pwned', ))


def evil_checkpoint(ctx: Ctx) -> str:
    path = ctx.ws / 'evil.pth'
    torch.save(dict(state_dict=_RunsCode()), path)
    return str(path)


def truncated_checkpoint(ctx: Ctx) -> str:
    data = Path(YOLO_CKPT).read_bytes()
    return ctx.file('cut.pth', data[:len(data) // 2])


def list_checkpoint(ctx: Ctx) -> str:
    path = ctx.ws / 'list.pth'
    torch.save([1, 2, 3], path)
    return str(path)


def corrupt_pool_file(name: str, text: str):

    def build(ctx: Ctx) -> List[str]:
        args = train_datafree(ctx, pool='copy')
        (ctx.ws / 'pool' / name).write_text(text)
        return args

    return build


def pool_without_images(ctx: Ctx) -> List[str]:
    args = train_datafree(ctx, pool='copy')
    for png in (ctx.ws / 'pool' / 'images').iterdir():
        png.unlink()
    return args


def corrupt_record(ctx: Ctx) -> List[str]:
    out = ctx.synth_out(batches=1)
    Path(out, 'shards', 'rank0', 'batch_000000.json').write_text('{"ba')
    return synth(ctx, out=out)


def other_profile_results(ctx: Ctx) -> List[str]:
    out = ctx.file('results.json', json.dumps(dict(profile='quick',
                                                   pairs={})))
    return ['--profile', 'full', '--out', out, '--work-dir',
            str(ctx.ws / 'bench'), '--pairs', 'yolov3', '--rows', 'teacher']


def digits_built_otherwise(ctx: Ctx) -> List[str]:
    out = ctx.ws / 'digits'
    shutil.copytree(ctx.fx.workspace / 'data' / 'digits', out)
    ctx.file('digits/meta.json', json.dumps(dict(seed=1)))
    return ['--out', str(out), '--num-train', '3']


def torchrun_env(**values) -> Dict[str, str]:
    env = dict(RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT='29555', LOCAL_RANK='0')
    env.update(values)
    return env


class Case(NamedTuple):
    tool: str
    argv: Callable[[Ctx], List[str]]
    expect: str  # a substring of the error line
    env: Optional[Dict[str, str]] = None
    disk_full: bool = False


def misspelt_option(tool: str, args: Callable[..., List[str]],
                    item: str) -> Case:
    """The case of ``--cfg-options ITEM`` (``KEY=VALUE``) whose key the
    config does not have, given to a tool after the arguments of ``args``
    (:func:`train_teacher`, :func:`eval_teacher` or :func:`synth`)."""
    key = item.split('=')[0]
    return Case(tool, lambda c: args(c, '--cfg-options', item),
                f'unknown --cfg-options key "{key}"')


CASES = {
    # --- configs and options
    'train-config-missing': Case(
        'train', lambda c: [c.ws / 'nope.py', '--work-dir', c.work],
        'config file not found'),
    'train-config-syntax-error': Case(
        'train', lambda c: [c.file('broken.py', 'model = dict(\n'),
                            '--work-dir', c.work],
        'SyntaxError'),
    'test-config-not-python': Case(
        'test', lambda c: [c.file('config.txt', 'model = 1'), YOLO_CKPT,
                           '--work-dir', c.work],
        'Only py/yml/yaml/json'),
    'test-config-base-missing': Case(
        'test', lambda c: [c.file('child.py', "_base_ = ['./gone.py']\n"),
                           YOLO_CKPT, '--work-dir', c.work],
        'gone.py'),
    'synth-config-not-a-synthesis-config': Case(
        'synthesize', lambda c: [digits(YOLOV3_TEACHER)] + synth(c)[1:],
        'is not a synthesis config'),
    'train-cfg-option-misspelt': misspelt_option(
        'train', train_teacher, 'train_cfg.max_epoch=3'),
    'test-cfg-option-misspelt': misspelt_option(
        'test', eval_teacher, 'test_dataloader.batchsize=2'),
    'synth-cfg-option-misspelt': misspelt_option(
        'synthesize', synth, 'synthesis.num_image=3'),
    'train-cfg-option-without-value': Case(
        'train', lambda c: train_teacher(c, '--cfg-options',
                                         'train_cfg.max_epochs'),
        "expected KEY=VALUE items, got 'train_cfg.max_epochs'"),
    # --- checkpoints
    'test-checkpoint-missing': Case(
        'test', lambda c: eval_teacher(c, checkpoint=c.ws / 'gone.pth'),
        'checkpoint not found'),
    'test-checkpoint-truncated': Case(
        'test', lambda c: eval_teacher(
            c, checkpoint=truncated_checkpoint(c)),
        'truncated or corrupt'),
    'test-checkpoint-text-file': Case(
        'test', lambda c: eval_teacher(
            c, checkpoint=c.file('notes.pth', 'not a checkpoint')),
        'not a torch checkpoint'),
    'test-checkpoint-runs-code': Case(
        'test', lambda c: eval_teacher(c, checkpoint=evil_checkpoint(c)),
        'system, which a checkpoint may not hold'),
    'test-checkpoint-not-a-dict': Case(
        'test', lambda c: eval_teacher(c, checkpoint=list_checkpoint(c)),
        'holds a list, not a dict'),
    'test-checkpoint-of-another-model': Case(
        'test', lambda c: [digits(FRCNN_TEACHER), YOLO_CKPT,
                           '--work-dir', c.work, '--cfg-options'] +
        NO_WORKERS, 'fits 0 of the model'),
    'train-resume-missing': Case(
        'train', lambda c: train_teacher(c, '--resume', c.ws / 'gone.pth'),
        '--resume checkpoint not found'),
    'train-load-from-another-model': Case(
        'train', lambda c: [digits(FRCNN_TEACHER), '--work-dir',
                            c.work, '--cfg-options', f'load_from={YOLO_CKPT}'],
        f'load_from {YOLO_CKPT} fits 0 of the model'),
    'train-kd-teacher-of-another-model': Case(
        'train', lambda c: [digits(FRCNN_HGD), '--work-dir',
                            c.work, '--cfg-options',
                            f'model.teacher.checkpoint={YOLO_CKPT}'],
        'fits 0 of the model'),
    'synth-teacher-of-another-model': Case(
        'synthesize', lambda c: synth(c, '--teacher-ckpt', YOLO_CKPT),
        'checkpoint of another model'),
    'synth-teacher-checkpoint-missing': Case(
        'synthesize', lambda c: synth(c, '--teacher-ckpt', c.ws / 'gone.pth'),
        'teacher checkpoint not found'),
    'extract-student-of-a-plain-checkpoint': Case(
        'extract_student', lambda c: [YOLO_CKPT, c.ws / 'student.pth'],
        'not a KDDetector checkpoint'),
    'extract-student-out-is-a-folder': Case(
        'extract_student', lambda c: [YOLO_CKPT, c.work],
        'is a folder'),
    'publish-out-is-a-folder': Case(
        'publish_checkpoint', lambda c: [YOLO_CKPT, c.work], 'is a folder'),
    # --- data sets
    'train-data-set-missing': Case(
        'train', lambda c: train_teacher(
            c, '--cfg-options',
            f'train_dataloader.dataset.data_root={c.ws}/no/'),
        'annotations/train.json not found'),
    'test-data-set-missing': Case(
        'test', lambda c: eval_teacher(
            c, '--cfg-options',
            f'test_dataloader.dataset.data_root={c.ws}/no/'),
        'annotations/test.json not found'),
    'test-image-folder-missing': Case(
        'test', lambda c: eval_teacher(
            c, '--cfg-options',
            'test_dataloader.dataset.data_prefix.img=gone/'),
        'image folder data/digits/gone/ not found'),
    'test-coco-json-of-unknown-categories': Case(
        'test', lambda c: eval_teacher(c, '--cfg-options', *coco_of_zebras(c)),
        "has no category named ['0'"),
    'train-warm-start-of-unknown-categories': Case(
        'train', lambda c: train_datafree(
            c, 'custom_hooks.0.warm_start=' + warm_start_set(c, ['zebra'])),
        "category 'zebra' is not one of the pool's classes"),
    'train-warm-start-missing': Case(
        'train', lambda c: train_datafree(
            c, f'custom_hooks.0.warm_start={c.ws}/gone'),
        'annotations.json not found'),
    'train-warm-start-empty': Case(
        'train', lambda c: train_datafree(
            c, 'custom_hooks.0.warm_start=' + warm_start_set(c, ['a'])),
        'holds no image for rank 0'),
    # --- layouts and schedules
    'synth-inverted-box-sizes': Case(
        'synthesize', lambda c: synth(c, '--cfg-options',
                                      'layout_sampler.min_size=0.9',
                                      'layout_sampler.max_size=0.4'),
        'need 0 < min_size <= max_size <= 1'),
    'train-inverted-box-sizes': Case(
        'train', lambda c: train_datafree(
            c, 'train_dataloader.dataset.layout_sampler.min_size=0.9',
            'train_dataloader.dataset.layout_sampler.max_size=0.4'),
        'need 0 < min_size <= max_size <= 1'),
    'synth-competition-without-student': Case(
        'synthesize', lambda c: [c.file(
            'synth_adi.py', f"_base_ = ['{c.fx.synth_cfg}']\n"
            "synthesizer = dict(competition=dict(weight=1.0, loss=dict("
            "type='YOLOv3OutputKDLoss')))\n")] + synth(c)[1:],
        'only DeepInversionHook'),
    'synth-zero-images': Case(
        'synthesize', lambda c: synth(c, '--num-images', '0'),
        '--num-images must be >= 1'),
    'train-zero-samples': Case(
        'train', lambda c: train_datafree(
            c, 'train_dataloader.dataset.num_samples=0'),
        'num_samples must be >= 1'),
    'synth-negative-iterations': Case(
        'synthesize', lambda c: synth(c, '--iterations', '-3'),
        '--iterations must be >= 1'),
    'synth-stage-of-negative-iterations': Case(
        'synthesize', lambda c: synth(c, '--cfg-options',
                                      'synthesizer.stages.0.iterations=-1'),
        'iterations must be >= 1'),
    'train-negative-epochs': Case(
        'train', lambda c: train_teacher(c, '--cfg-options',
                                         'train_cfg.max_epochs=-1'),
        'train_cfg.max_epochs must be an integer >= 1'),
    'train-zero-iterations': Case(
        'train', lambda c: train_datafree(c, 'train_cfg.max_iters=0'),
        'train_cfg.max_iters must be an integer >= 1'),
    'train-hook-negative-interval': Case(
        'train', lambda c: train_datafree(c, 'custom_hooks.0.interval=-1'),
        'DeepInversionHook interval must be >= 1'),
    'train-hook-image-size-mismatch': Case(
        'train', lambda c: train_datafree(
            c, 'custom_hooks.0.synthesizer.stages.0.size=64'),
        "the train set's img_size is 32"),
    'synth-image-size-mismatch': Case(
        'synthesize', lambda c: synth(c, '--cfg-options',
                                      'layout_sampler.img_size=32'),
        'layout_sampler.img_size=32 but'),
    # --- distributed arguments
    'train-launcher-unknown': Case(
        'train', lambda c: [digits(YOLOV3_TEACHER), '--launcher',
                            'bogus'],
        "invalid choice: 'bogus'"),
    'synth-local-rank-not-a-number': Case(
        'synthesize', lambda c: synth(c, '--local_rank', 'first'),
        "invalid int value: 'first'"),
    'test-LOCAL_RANK-not-a-number': Case(
        'test', eval_teacher,
        "LOCAL_RANK='abc' must be an integer >= 0", env=dict(
            LOCAL_RANK='abc')),
    'train-pytorch-launcher-without-torchrun': Case(
        'train', lambda c: train_teacher(c, '--launcher', 'pytorch'),
        '(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set)'),
    'synth-pytorch-launcher-without-torchrun': Case(
        'synthesize', lambda c: synth(c, '--launcher', 'pytorch'),
        'RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set'),
    'test-rank-outside-the-world': Case(
        'test', lambda c: eval_teacher(c, '--launcher', 'pytorch'),
        'RANK=3 is outside the WORLD_SIZE=2', env=torchrun_env(
            RANK='3', WORLD_SIZE='2')),
    'train-slurm-launcher-outside-slurm': Case(
        'train', lambda c: train_datafree(c) + ['--launcher', 'slurm'],
        '--launcher slurm'),
    # --- synthesis that diverges
    'synth-infinite-learning-rate': Case(
        'synthesize', lambda c: synth(c, '--cfg-options',
                                      'synthesizer.stages.0.lr=inf',
                                      'synthesizer.stages.1.lr=inf'),
        'batch 0: DeepInversion: non-finite loss terms'),
    'train-hook-infinite-prior-weight': Case(
        'train', lambda c: train_datafree(
            c, 'custom_hooks.0.synthesizer.bn_prior.weight=inf'),
        'no synthesis step had a finite loss'),
    # --- replay pools and synthesis outputs
    # A pool file (name) overwritten with text.
    **{
        f'train-pool-{what}': Case('train', corrupt_pool_file(name, text),
                                   message)
        for what, name, text, message in [
            ('index-corrupt', 'index_rank0.json', '{"rank": 0, "ne',
             'index_rank0.json is not valid json'),
            ('meta-not-an-object', 'meta.json', '["a", "b", "c"]',
             'meta.json holds a list'),
            ('progress-corrupt', 'hook_state_rank0.json', '{}',
             "hook_state_rank0.json is not the hook's progress record"),
            ('of-other-classes', 'meta.json', '{"classes": ["x", "y"]}',
             "holds images of the classes ['x', 'y'], not ['a', 'b', 'c']"),
        ]
    },
    'train-pool-of-other-image-size': Case(
        'train', lambda c: train_datafree(
            c, 'train_dataloader.dataset.img_size=64',
            'custom_hooks.0.synthesizer.stages.0.size=64', pool='copy'),
        'holds 32x32 images, not 64x64'),
    'train-pool-images-deleted': Case(
        'train', pool_without_images, 'misses 4 of its 4 indexed images'),
    'synth-out-of-another-job': Case(
        'synthesize', lambda c: synth(c, '--num-images', '6',
                                      out=c.synth_out(batches=1)),
        'holds a generation job with other settings (num_images differ'),
    'synth-record-corrupt': Case(
        'synthesize', corrupt_record,
        'batch_000000.json is not a json record of SyntheticCocoWriter'),
    'synth-out-is-a-file': Case(
        'synthesize', lambda c: synth(c, out=c.file('taken.txt', 'keep')),
        'is a file, not a folder'),
    # --- a full disk
    'synth-disk-full': Case(
        'synthesize', lambda c: synth(c, out=c.synth_out(batches=1)),
        'no space left on the device', disk_full=True),
    'train-hook-disk-full': Case(
        'train', lambda c: train_datafree(c, pool='copy'),
        'no space left on the device', disk_full=True),
    # --- the benchmark and analysis tools
    'benchmark-datafree-results-corrupt': Case(
        'benchmark_datafree', lambda c: [
            '--out', c.file('results.json', '{"pairs": '), '--work-dir',
            c.ws / 'bench', '--pairs', 'yolov3', '--rows', 'teacher'],
        'results.json is not a results json'),
    'benchmark-datafree-results-of-another-profile': Case(
        'benchmark_datafree', other_profile_results,
        "the earlier results are of profile 'quick'"),
    'benchmark-datafree-unknown-row': Case(
        'benchmark_datafree', lambda c: ['--rows', 'bogus'],
        "argument --rows: invalid choice: 'bogus'"),
    'benchmark-kd-zero-iterations': Case(
        'benchmark', lambda c: ['kd', '--config', digits(YOLOV3_HGD),
                                '--iters', '0'],
        'argument --iters: must be >= 1, got 0'),
    'checkpoint-agreement-set-missing': Case(
        'analysis_tools/checkpoint_agreement', lambda c: [
            digits(YOLOV3_STUDENT), c.work, '--agreement',
            c.ws / 'gone', '--pair', 'yolov3', '--out',
            c.ws / 'agreement.json'],
        'teacher_annotations.json not found'),
    'make-digits-over-a-set-built-otherwise': Case(
        'make_digits_dataset', digits_built_otherwise,
        'was not built with these parameters'),
}


@pytest.fixture(autouse=True)
def _clean_launch_env(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('LOCAL_RANK', '0')  # restored (removed) afterwards


@pytest.mark.parametrize('name', list(CASES))
def test_bad_input_is_one_error_line(name, finished, tmp_path, monkeypatch,
                                     capsys):
    case = CASES[name]
    monkeypatch.chdir(finished.workspace)
    ctx = Ctx(tmp_path, finished, monkeypatch)
    # An earlier run's outputs, which a failing run must leave alone.
    ctx.file('work/20240101_000000.log', 'an earlier run\n')
    ctx.file('work/epoch_1.pth', b'earlier weights')
    argv = case.argv(ctx)
    for key, value in (case.env or {}).items():
        monkeypatch.setenv(key, value)
    if case.disk_full:
        ctx.disk_full()
    before = snapshot(tmp_path, *finished.inputs())

    code, out, err = run_tool(case.tool, argv, capsys)

    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert code == 2, (code, err[-3000:])
    assert len(errors) == 1, err[-3000:]
    assert case.expect in errors[0], errors[0]
    assert 'Traceback' not in err + out, err[-3000:]
    after = snapshot(tmp_path, *finished.inputs())
    changed = [path for path, state in before.items()
               if after.get(path) != state]
    assert changed == [], changed
    if case.disk_full:  # the failed write left no temporary behind
        assert not [p for p in after if p.endswith('.tmp')]


def test_the_sweep_is_large_enough():
    assert len(CASES) >= 30
    assert {case.tool for case in CASES.values()} >= {
        'train', 'test', 'synthesize', 'extract_student',
        'benchmark_datafree', 'analysis_tools/checkpoint_agreement'}
