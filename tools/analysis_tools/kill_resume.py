#!/usr/bin/env python
"""Kill the long jobs with SIGKILL at random moments, resume, check the files.

For each job (``--job train``: ``tools/train.py`` on-the-fly data-free
training with ``DeepInversionHook``; ``--job synthesize``:
``tools/synthesize.py``), on the tiny runs of :mod:`mmdiode.testing`::

    python tools/analysis_tools/kill_resume.py --job both --runs 10 \\
        --seed 0 --work-dir /tmp/kill_resume

1. an uninterrupted reference run is timed (its wall time ``T``, start-up
   included) and kept as the expected result;
2. each of ``--runs`` runs starts the same job in a fresh folder, sends it
   SIGKILL at a moment drawn uniformly from ``[0, T)`` (so kills land in
   start-up, initial synthesis, training, synthesis rounds and checkpoint
   saves in proportion to their duration), records what is on disk, then
   runs the same command again (``--resume`` for training) to completion;
3. the files are checked:

   * ``train``: the resumed run exits 0 and its final checkpoint loads;
     every json of the pool parses; every image its index names exists and
     is a valid PNG of the recorded size, and no other image or temporary
     file of the rank is left; the pool holds every image it held at the
     kill (so all of those of the last checkpoint) unchanged, plus whole new
     batches (numbered on from the kill); the final layout counter is the
     one the checkpoint it resumed from (or the progress record, when it
     was killed before the first checkpoint) leads to;
   * ``synthesize``: the resumed run exits 0; ``annotations.json`` equals
     the reference run's (images and annotations); every image exists and
     verifies; the batch records and images present at the kill are
     unchanged; no temporary file is left.

One line is printed per run, then one summary line per job and, last,
``kill_resume: runs=N resumed=N corrupt=0 missing=0 problems=0``. The exit
code is 0 when every run resumed with no corrupt or missing file and no other
problem, else 1.

Decisions: the jobs are real subprocesses of the real tools, one CPU thread
each; a kill is ``Popen.kill()`` (SIGKILL, no clean-up handler runs); a run
that finished before its kill moment is resumed and checked all the same
(its line says ``finished before the kill``). "corrupt" counts unreadable
PNGs or json and files changed after the kill; "missing" counts files a json
names that are not on disk and images of the kill-time pool or records that
are gone.
"""
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import random
import signal
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from mmdiode.utils.cli import ArgumentParser  # noqa: E402

JOBS = ('train', 'synthesize')


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--job', choices=JOBS + ('both', ), default='both',
                        help='which long job to kill (default: both)')
    parser.add_argument('--runs', type=int, default=10,
                        help='killed runs per job (default: 10)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the kill moments (default: 0)')
    parser.add_argument('--work-dir', required=True,
                        help='folder of the runs (created; kept afterwards)')
    parser.add_argument('--iters', type=int, default=12,
                        help='training iterations of the train job '
                        '(synthesis every 2, a checkpoint every 3)')
    parser.add_argument('--images', type=int, default=16,
                        help='images of the synthesize job (batches of 2)')
    parser.add_argument('--timeout', type=float, default=900,
                        help='seconds one tool run may take (default: 900)')
    args = parser.parse_args(argv)
    if args.runs < 1 or args.iters < 1 or args.images < 1:
        parser.error('--runs, --iters and --images must be >= 1')
    return args


# --------------------------------------------------------------------------
# Files


def sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def read_json(path: str, report: 'Report') -> Optional[dict]:
    """The parsed json, or None (counted as corrupt or missing)."""
    if not osp.isfile(path):
        report.missing.append(path)
        return None
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except ValueError:
        report.corrupt.append(path)
        return None


def read_jsons(folder: str, names: Sequence[str],
               report: 'Report') -> Optional[dict]:
    """Reads the json files ``names`` in ``folder`` (:func:`read_json`);
    the first one's content."""
    return [read_json(osp.join(folder, name), report) for name in names][0]


def png_ok(path: str, size: Optional[tuple] = None) -> bool:
    """A complete PNG (PIL's verify, then a full decode) of ``size``
    (width, height) if given."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            img.load()
            return img.format == 'PNG' and (size is None or img.size == size)
    except Exception:
        return False


def temporaries(folder: str) -> List[str]:
    return glob.glob(osp.join(folder, '**', '.*.tmp'), recursive=True)


def check_png(path: str, size: tuple, report: 'Report') -> None:
    """Counts the image at ``path`` as missing, or as corrupt unless it is a
    complete PNG of ``size`` (width, height)."""
    if not osp.isfile(path):
        report.missing.append(path)
    elif not png_ok(path, size):
        report.corrupt.append(path)


class Report:
    """What the checks of one run found."""

    def __init__(self) -> None:
        self.corrupt: List[str] = []
        self.missing: List[str] = []
        self.problems: List[str] = []

    @property
    def ok(self) -> bool:
        return not (self.corrupt or self.missing or self.problems)

    def summary(self) -> str:
        first = (self.corrupt + self.missing + self.problems)[:1]
        return (f'corrupt={len(self.corrupt)} missing={len(self.missing)} '
                f'problems={len(self.problems)}' +
                (f' first: {first[0]}' if first else ''))


# --------------------------------------------------------------------------
# Running the tools


def tool_command(name: str, args: List[str]) -> List[str]:
    return [sys.executable, osp.join(ROOT, 'tools', name)] + args


def child_env() -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONUNBUFFERED='1')
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                 'MASTER_PORT'):
        env.pop(name, None)
    return env


def run(cmd: List[str], log: str, timeout: float) -> int:
    """Runs ``cmd`` to completion; output to ``log``. Exit code."""
    with open(log, 'ab') as out:
        try:
            return subprocess.run(cmd, stdout=out, stderr=out,
                                  env=child_env(), timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return -signal.SIGKILL


def run_and_kill(cmd: List[str], log: str, delay: float) -> bool:
    """Starts ``cmd``, SIGKILLs it after ``delay`` s. Whether it was still
    running (False: it finished first)."""
    with open(log, 'ab') as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=child_env())
        try:
            proc.wait(timeout=delay)
            return False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return True


# --------------------------------------------------------------------------
# The jobs


class Job:
    """A tool run that is killed and resumed: its command, what is on disk
    after a kill (``state``, ``phase``) and the checks of the resumed run."""

    def check(self, folder: str, killed: Optional[dict], code: int,
              reference: Optional[dict]) -> Report:
        """What the resumed run, which exited with ``code``, left in
        ``folder``, against the ``killed`` run's state and the
        ``reference`` (uninterrupted) run's result."""
        report = Report()
        if code != 0:
            report.problems.append(f'the resumed run exited with {code}')
        else:
            self.check_outputs(folder, killed, reference, report)
        return report

    def check_outputs(self, folder: str, killed: Optional[dict],
                      reference: Optional[dict], report: Report) -> None:
        raise NotImplementedError


class TrainJob(Job):
    """``tools/train.py`` with ``DeepInversionHook`` on the tiny data-free
    config: rounds every 2 iterations, a checkpoint every 3."""

    name = 'train'
    interval, checkpoint_interval, initial_batches, batch_size = 2, 3, 2, 2

    def __init__(self, root: str, teacher: str, iters: int) -> None:
        self.root, self.teacher, self.iters = root, teacher, iters

    def command(self, folder: str, resume: bool) -> List[str]:
        from mmdiode.testing import write_tiny_datafree_config
        cfg = osp.join(folder, 'datafree.py')
        if not osp.exists(cfg):
            write_tiny_datafree_config(
                cfg, folder, self.teacher, max_iters=self.iters,
                interval=self.interval,
                checkpoint_interval=self.checkpoint_interval,
                initial_batches=self.initial_batches,
                batch_size=self.batch_size, iterations=8)
        return tool_command('train.py', [cfg, '--work-dir',
                                         osp.join(folder, 'work')] +
                            (['--resume'] if resume else []))

    # -- state -------------------------------------------------------------

    @staticmethod
    def _last_checkpoint(folder: str) -> Optional[str]:
        path = osp.join(folder, 'work', 'last_checkpoint')
        if not osp.isfile(path):
            return None
        with open(path) as f:
            return f.read().strip() or None

    def _hook_state(self, ckpt: str) -> dict:
        from mmdiode.engine.hooks.deep_inversion_hook import CHECKPOINT_KEY
        from mmdiode.utils import load_checkpoint_file
        return load_checkpoint_file(ckpt)[CHECKPOINT_KEY]

    def state(self, folder: str) -> dict:
        """What is on disk after a kill."""
        pool = osp.join(folder, 'pool')
        index_path = osp.join(pool, 'index_rank0.json')
        index = json.load(open(index_path)) if osp.isfile(
            index_path) else dict(next_id=0, images=[])
        progress_path = osp.join(pool, 'hook_state_rank0.json')
        progress = json.load(open(progress_path)) if osp.isfile(
            progress_path) else None
        ckpt = self._last_checkpoint(folder)
        images = {
            item['file_name']: sha256(osp.join(pool, item['file_name']))
            for item in index['images']
            if osp.isfile(osp.join(pool, item['file_name']))
        }
        saved = sorted(glob.glob(osp.join(folder, 'work', 'iter_*.pth')),
                       key=osp.getmtime)
        return dict(index=index, progress=progress, checkpoint=ckpt,
                    hook=self._hook_state(ckpt) if ckpt else None,
                    images=images,
                    in_save=bool(saved) and saved[-1] != ckpt,
                    in_pool_write=bool(temporaries(pool)))

    def phase(self, state: dict) -> str:
        if state['in_save']:
            return 'during a checkpoint save'
        if state['in_pool_write']:
            return 'during a pool write'
        if state['checkpoint']:
            return (f'training after {osp.basename(state["checkpoint"])}, '
                    f'pool {len(state["index"]["images"])} images')
        done = (state['progress'] or {}).get('initial_done', 0)
        if done >= self.initial_batches:
            return 'training before the first checkpoint'
        if done or state['index']['images']:
            return f'initial batch {done + 1}/{self.initial_batches}'
        return 'start-up or initial batch 1'

    def expected_counter(self, state: Optional[dict]) -> int:
        """The layout counter the resumed run must end with."""
        rounds = lambda lo: sum(  # noqa: E731
            1 for i in range(lo + 1, self.iters + 1) if i % self.interval == 0)
        b = self.batch_size
        if state and state['hook']:
            done = int(osp.basename(state['checkpoint'])[5:-4])
            return state['hook']['counter'] + b * rounds(done)
        progress = (state or {}).get('progress') or dict(counter=0,
                                                         initial_done=0)
        return progress['counter'] + b * (
            self.initial_batches - progress['initial_done'] + rounds(0))

    # -- checks ------------------------------------------------------------

    def check_outputs(self, folder: str, killed: Optional[dict],
                      reference: Optional[dict], report: Report) -> None:
        pool = osp.join(folder, 'pool')
        index = read_jsons(
            pool, ('index_rank0.json', 'meta.json', 'hook_state_rank0.json'),
            report)
        final = osp.join(folder, 'work', f'iter_{self.iters}.pth')
        if self._last_checkpoint(folder) != final:
            report.problems.append(f'last_checkpoint is not {final}')
        try:
            hook = self._hook_state(final)
        except Exception as e:  # a checkpoint that does not load
            report.corrupt.append(f'{final} ({e})')
            return
        if index is None:
            return
        self._check_images(pool, index, report)
        ids = [item['id'] for item in index['images']]
        if ids != list(range(index['next_id'])):
            report.problems.append(f'pool ids {ids} are not 0..next_id-1')
        if hook['pool']['next_ids'].get('0', hook['pool']['next_ids'].get(
                0)) != index['next_id']:
            report.problems.append('the final checkpoint\'s pool counter '
                                   f'{hook["pool"]} != {index["next_id"]}')
        expected = self.expected_counter(killed)
        if hook['counter'] != expected:
            report.problems.append(f'layout counter {hook["counter"]}, '
                                   f'expected {expected}')
        if killed is not None:
            self._check_kept(pool, index, killed, report)

    def _check_images(self, pool: str, index: dict, report: Report) -> None:
        names = set()
        for item in index['images']:
            path = osp.join(pool, item['file_name'])
            names.add(osp.basename(path))
            check_png(path, (item['width'], item['height']), report)
        stray = [n for n in os.listdir(osp.join(pool, 'images'))
                 if n not in names] + temporaries(pool)
        if stray:
            report.problems.append(f'stray files in the pool: {stray[:3]}')

    def _check_kept(self, pool: str, index: dict, killed: dict,
                    report: Report) -> None:
        """The kill-time images (those of the last checkpoint among them)
        are still there, unchanged, and the rest are whole batches."""
        at_kill = killed['index']['images']
        now = {item['file_name']: item for item in index['images']}
        at_ckpt = (killed['hook'] or dict(pool=dict(next_ids={})))['pool']
        ckpt_next = int(dict(at_ckpt['next_ids']).get(
            '0', dict(at_ckpt['next_ids']).get(0, 0)))
        if len([i for i in at_kill if i['id'] < ckpt_next]) != ckpt_next:
            report.missing.append(f'images of the last checkpoint (ids < '
                                  f'{ckpt_next}) were gone at the kill')
        for item in at_kill:
            path = osp.join(pool, item['file_name'])
            if item['file_name'] not in now:
                report.missing.append(path)
            elif killed['images'].get(item['file_name']) != (
                    sha256(path) if osp.isfile(path) else None):
                report.corrupt.append(f'{path} (changed after the kill)')
        new = len(index['images']) - len(at_kill)
        if new < 0 or new % self.batch_size:
            report.problems.append(f'{new} images since the kill: not whole '
                                   f'batches of {self.batch_size}')


class SynthesizeJob(Job):
    """``tools/synthesize.py`` on the tiny synthesis config."""

    name = 'synthesize'

    def __init__(self, root: str, teacher: str, images: int) -> None:
        from mmdiode.testing import write_tiny_synthesis_config
        self.cfg = write_tiny_synthesis_config(
            osp.join(root, 'synth.py'), teacher, num_images=images,
            batch_size=2)

    def command(self, folder: str, resume: bool) -> List[str]:
        return tool_command('synthesize.py', [
            self.cfg, '--out', osp.join(folder, 'out'), '--work-dir',
            osp.join(folder, 'work'), '--device', 'cpu'])

    def state(self, folder: str) -> dict:
        out = osp.join(folder, 'out')
        records = {}
        for path in glob.glob(osp.join(out, 'shards', 'rank*', '*.json')):
            try:
                with open(path) as f:
                    record = json.load(f)
            except ValueError:
                record = dict(images=[])
            records[path] = (sha256(path), {
                img['file_name']: sha256(osp.join(out, img['file_name']))
                for img in record['images']
                if osp.isfile(osp.join(out, img['file_name']))
            })
        return dict(records=records,
                    merged=osp.isfile(osp.join(out, 'annotations.json')))

    def phase(self, state: dict) -> str:
        batches = sum(1 for p in state['records']
                      if osp.basename(p).startswith('batch_'))
        if state['merged']:
            return 'after the merge'
        return f'{batches} batches recorded' if batches else 'start-up'

    def check_outputs(self, folder: str, killed: Optional[dict],
                      reference: Optional[dict], report: Report) -> None:
        out = osp.join(folder, 'out')
        coco = read_jsons(out, ('annotations.json', 'meta.json',
                                'fidelity.json'), report)
        if coco is None:
            return
        for img in coco['images']:
            check_png(osp.join(out, img['file_name']),
                      (img['width'], img['height']), report)
        if reference is not None and (
                coco['images'] != reference['images']
                or coco['annotations'] != reference['annotations']):
            report.problems.append('annotations.json differs from the '
                                   'uninterrupted run\'s')
        if temporaries(out):
            report.problems.append(f'temporaries left: {temporaries(out)}')
        for path, (digest, images) in (killed or {}).get('records',
                                                         {}).items():
            if not osp.isfile(path):
                report.missing.append(path)
            elif sha256(path) != digest:
                report.corrupt.append(f'{path} (changed after the kill)')
            for name, image_digest in images.items():
                image = osp.join(out, name)
                if not osp.isfile(image):
                    report.missing.append(image)
                elif sha256(image) != image_digest:
                    report.corrupt.append(f'{image} (changed after the kill)')


# --------------------------------------------------------------------------


class Outcome(NamedTuple):
    resumed: bool
    report: Report


def reference_of(job, folder: str, timeout: float) -> tuple:
    """Times an uninterrupted run; (seconds, expected result or None)."""
    os.makedirs(folder)
    start = time.perf_counter()
    code = run(job.command(folder, resume=False),
               osp.join(folder, 'run.log'), timeout)
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f'kill_resume: the uninterrupted {job.name} run '
                         f'failed ({code}); see {folder}/run.log')
    expected = None
    if job.name == 'synthesize':
        with open(osp.join(folder, 'out', 'annotations.json')) as f:
            expected = json.load(f)
    return seconds, expected


def killed_run(job, folder: str, delay: float, duration: float,
               reference: Optional[dict], timeout: float, k: int) -> Outcome:
    os.makedirs(folder)
    log = osp.join(folder, 'run.log')
    killed = run_and_kill(job.command(folder, resume=False), log, delay)
    state = job.state(folder)
    phase = job.phase(state) if killed else 'finished before the kill'
    code = run(job.command(folder, resume=True), log, timeout)
    report = job.check(folder, state, code, reference)
    print(f'kill_resume: job={job.name} run={k} killed_at={delay:.2f}s/'
          f'{duration:.2f}s ({phase}) resumed={"yes" if code == 0 else "no"} '
          f'{report.summary()}', flush=True)
    return Outcome(code == 0, report)


def summary_line(outcomes: List[Outcome], prefix: str = '') -> str:
    return (f'kill_resume: {prefix}runs={len(outcomes)} '
            f'resumed={sum(o.resumed for o in outcomes)} '
            f'corrupt={sum(len(o.report.corrupt) for o in outcomes)} '
            f'missing={sum(len(o.report.missing) for o in outcomes)} '
            f'problems={sum(len(o.report.problems) for o in outcomes)}')


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmdiode.testing import save_tiny_teacher
    os.makedirs(args.work_dir, exist_ok=True)
    root = osp.abspath(args.work_dir)
    teacher = osp.join(root, 'teacher.pth')
    if not osp.isfile(teacher):
        save_tiny_teacher(teacher)
    rng = random.Random(args.seed)
    jobs = JOBS if args.job == 'both' else (args.job, )
    stamp = time.strftime('%Y%m%d_%H%M%S')
    everything: List[Outcome] = []
    for name in jobs:
        job = TrainJob(root, teacher, args.iters) if name == 'train' else \
            SynthesizeJob(root, teacher, args.images)
        base = osp.join(root, f'{name}_{stamp}')
        duration, reference = reference_of(job, osp.join(base, 'reference'),
                                           args.timeout)
        print(f'kill_resume: job={name} uninterrupted run {duration:.2f}s',
              flush=True)
        outcomes = [
            killed_run(job, osp.join(base, f'run{k}'),
                       rng.uniform(0, duration), duration, reference,
                       args.timeout, k) for k in range(1, args.runs + 1)
        ]
        if len(jobs) > 1:
            print(summary_line(outcomes, f'job={name} '), flush=True)
        everything += outcomes
    print(summary_line(everything), flush=True)
    good = all(o.resumed and o.report.ok for o in everything)
    return 0 if good else 1


if __name__ == '__main__':
    sys.exit(main())
