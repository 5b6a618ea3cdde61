"""The validation loop of the data-free configs: teacher agreement on a
held-out synthetic set that the loop makes itself on first use.

A data-free run has no validation images, so its ``val_dataloader`` reads a
set synthesized from the teacher alone and annotated with the teacher's own
detections (:mod:`mmdiode.evaluation.teacher_agreement`), and its
``val_evaluator`` (mmdet's ``CocoMetric`` with ``prefix='agreement'``)
scores the student against them. :class:`TeacherAgreementValLoop` is
mmengine's ``ValLoop`` that first makes sure that set exists: when the
teacher's annotations are missing from the val dataset's ``data_root``, it
runs the synthesis job of ``synthesis_config`` into that folder with the
training config's teacher, then builds the dataloader and the metric as
``ValLoop`` does.

Decisions:

* **Where.** The Runner builds the val loop inside ``Runner.train()``
  before any hook's ``before_run``, and the val dataset and ``CocoMetric``
  read their annotation files when they are built, so neither a hook nor a
  dataset wrapper could make the set in time. The loop's constructor is
  the last point before they are built, has the Runner (hence the model's
  teacher, the device and the process group), and works with any training
  script that builds mmengine's Runner (mmdet's ``tools/train.py`` too).
* **Which teacher.** The synthesis config gives the recipe (layouts,
  synthesizer, seed, size, score threshold); its ``teacher`` is replaced by
  the training config's ``model.teacher``, so that the set always comes from
  the teacher being distilled. The loop records that teacher beside the
  set (``teacher.json``), and a set recorded for another checkpoint is
  refused rather than silently scored against.
* **Once per teacher.** A finished set is reused by every later run that
  points at it; an interrupted one resumes (the synthesis job's own resume).
  The teacher is recorded before the first image is written, so a set is
  never resumed, or scored against, with another teacher's images.
  Under a distributed launch rank 0 decides whether the set is ready, to
  be made or refused and tells the other ranks (so that all raise or all
  synthesize); every rank synthesizes its share of the batches and rank 0
  writes the annotations, as ``tools/dist_synthesize.sh`` does.
* **No side effects on the training.** The synthesis runs under forked
  random states and logs to the Runner's logger, so a run that had to make
  the set trains exactly as one that found it made.
"""
import os
import os.path as osp
import random
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import numpy as np
import torch
from mmdet.registry import LOOPS
from mmengine.dist import barrier, broadcast_object_list, get_rank
from mmengine.evaluator import Evaluator
from mmengine.fileio import load
from mmengine.runner import ValLoop
from torch.utils.data import DataLoader

from ...evaluation.teacher_agreement import TEACHER_ANN_FILE
from ...utils import ConfigError
from ...utils.fileio import dump_json_atomic

#: The file beside an agreement set that names the teacher it was made from.
TEACHER_RECORD = 'teacher.json'


@LOOPS.register_module()
class TeacherAgreementValLoop(ValLoop):
    """``ValLoop`` on a teacher-agreement set, synthesized on first use.

    Args:
        runner (Runner): The Runner. Its config's ``model.teacher``
            (``config``, ``checkpoint``, as ``KDDetector`` takes it) makes
            the set, on the device of the Runner's model.
        dataloader (dict | DataLoader): The val dataloader; its dataset's
            ``data_root`` is the folder the set is written to and read from.
        evaluator (dict | list | Evaluator): The val evaluator, e.g. mmdet's
            ``CocoMetric`` on ``DATA_ROOT/teacher_annotations.json``.
        synthesis_config (str): A ``tools/synthesize.py`` config whose
            ``synthesis.teacher_labels`` is set (the ``*_synth-agreement_*``
            configs): how the set is made.
        fp16 (bool): Validate in float16 autocast. Defaults to False.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List],
                 synthesis_config: str,
                 fp16: bool = False) -> None:
        if not isinstance(dataloader, DataLoader):
            data_root = agreement_root(dataloader)
            ensure_agreement_set(runner, synthesis_config, data_root)
        super().__init__(runner, dataloader, evaluator, fp16=fp16)


def agreement_root(dataloader_cfg: Dict) -> str:
    """The folder of the agreement set: the val dataset's ``data_root``.

    Args:
        dataloader_cfg (dict): The ``val_dataloader`` config.

    Raises:
        ConfigError: The dataset has no ``data_root``, or reads another
            annotation file than the teacher's detections the loop writes.
    """
    dataset = dataloader_cfg.get('dataset', {})
    data_root = dataset.get('data_root')
    if not data_root:
        raise ConfigError('TeacherAgreementValLoop: val_dataloader.dataset '
                          'needs data_root, the folder of the agreement set')
    ann_file = dataset.get('ann_file', TEACHER_ANN_FILE)
    if osp.normpath(ann_file) != TEACHER_ANN_FILE:
        raise ConfigError(
            f'TeacherAgreementValLoop: val_dataloader.dataset.ann_file is '
            f'{ann_file!r}, but the loop writes and checks the teacher\'s '
            f'detections in {TEACHER_ANN_FILE!r} under data_root; set '
            f'ann_file={TEACHER_ANN_FILE!r}')
    return data_root


def ensure_agreement_set(runner, synthesis_config: str,
                         data_root: str) -> None:
    """Synthesizes the agreement set into ``data_root`` unless it is there.

    Rank 0 decides (the set is ready, is to be made, or is refused) and
    tells the other ranks, so that all of them raise or synthesize together.
    The teacher is recorded before the first image is written, so that an
    interrupted set resumes only with the teacher it was started with. The
    synthesis runs under forked random states and logs to the Runner's
    logger: the training after it draws the same numbers, and logs to the
    same place, as when the set already existed.

    Args:
        runner (Runner): The Runner whose config's teacher makes the set.
        synthesis_config (str): The synthesis config (recipe of the set).
        data_root (str): The set's folder.

    Raises:
        ConfigError: The config cannot make an agreement set, the training
            config names no teacher, or the folder holds a set (finished or
            not) made from another teacher.
    """
    teacher_cfg = runner.cfg.get('model', {}).get('teacher')
    if not isinstance(teacher_cfg, dict) or 'config' not in teacher_cfg:
        raise ConfigError('TeacherAgreementValLoop: the training config '
                          'needs model.teacher=dict(config=..., '
                          'checkpoint=...), the teacher the set is made from')
    decision = broadcast_decision(
        lambda: agreement_set_state(data_root, teacher_cfg))
    if isinstance(decision, ConfigError):
        raise decision
    if decision == 'ready':
        return
    cfg = agreement_synthesis_config(synthesis_config, teacher_cfg)
    runner.logger.info(
        f'teacher agreement: synthesizing the validation set '
        f'({cfg.synthesis.num_images} images, {synthesis_config}) into '
        f'{data_root}; later runs reuse it')
    if get_rank() == 0:
        os.makedirs(data_root, exist_ok=True)
        dump_json_atomic(cfg.teacher.to_dict(),
                         osp.join(data_root, TEACHER_RECORD), default=str)
    from ...apis.synthesis import SynthesisJob
    with forked_random_state():
        try:
            job = SynthesisJob(cfg, data_root,
                               osp.join(runner.work_dir,
                                        'agreement_synthesis'),
                               next(runner.model.parameters()).device,
                               logger=runner.logger)
        except ValueError as e:  # e.g. a folder of other synthesis settings
            raise ConfigError(
                f'TeacherAgreementValLoop: cannot synthesize the agreement '
                f'set into {data_root}: {e}') from e
        job.run()
    barrier()  # the other ranks wait for rank 0's annotations


def agreement_set_state(data_root: str, teacher_cfg: Dict):
    """``'ready'`` (the annotations are there), ``'make'`` (they are not),
    or the ConfigError of a folder recorded for another teacher."""
    try:
        check_set_teacher(data_root, teacher_cfg)
    except ConfigError as e:
        return e
    if osp.isfile(osp.join(data_root, TEACHER_ANN_FILE)):
        return 'ready'
    return 'make'


def broadcast_decision(decide: Callable[[], Any]) -> Any:
    """Runs ``decide`` on rank 0 and returns its result on every rank."""
    box = [decide() if get_rank() == 0 else None]
    broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def forked_random_state() -> Iterator[None]:
    """Restores Python's, NumPy's and torch's (CPU and CUDA) random states
    on exit."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) \
        if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def agreement_synthesis_config(path: str, teacher_cfg: Dict):
    """The synthesis config of an agreement set, with the training teacher.

    Args:
        path (str): A ``tools/synthesize.py`` config.
        teacher_cfg (dict): The training config's ``model.teacher``.

    Returns:
        Config: The loaded config, ``teacher`` replaced and the synthesis
        defaults filled in.

    Raises:
        ConfigError: The config does not annotate its images with the
            teacher's detections (``synthesis.teacher_labels``).
    """
    from ...apis.synthesis import load_synthesis_config
    cfg = load_synthesis_config(path)
    if not cfg.synthesis.get('teacher_labels'):
        raise ConfigError(
            f'TeacherAgreementValLoop: {path} does not set '
            'synthesis.teacher_labels=dict(score_thr=...), so it would write '
            'no teacher annotations; use a *_synth-agreement_* config')
    cfg.teacher = dict(teacher_cfg)
    return cfg


def check_set_teacher(data_root: str, teacher_cfg: Dict) -> None:
    """Refuses a set recorded for another teacher checkpoint than
    ``teacher_cfg``'s (a set without a record, e.g. one written by
    ``tools/synthesize.py``, is accepted).

    Raises:
        ConfigError: Naming both checkpoints and the way out.
    """
    record = osp.join(data_root, TEACHER_RECORD)
    if not osp.isfile(record):
        return
    recorded = load(record).get('checkpoint')
    wanted = teacher_cfg.get('checkpoint')
    if same_file(recorded, wanted):
        return
    raise ConfigError(
        f'the teacher-agreement set {data_root} was made from the teacher '
        f'{recorded}, not {wanted}; delete the folder (it is made again on '
        'the next run) or point val_dataloader.dataset.data_root and '
        'val_evaluator.ann_file at another one')


def same_file(a: Optional[str], b: Optional[str]) -> bool:
    """Whether two checkpoint paths (or URLs) name the same file."""
    if a is None or b is None or '://' in a or '://' in b:
        return a == b
    return osp.realpath(a) == osp.realpath(b)
