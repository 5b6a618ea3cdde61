"""Helpers shared by the command-line tools: config loading, options, and
the one-line errors they end with.

Decisions:

* A bad input ends a tool with exit code 2 and exactly one line on stderr,
  ``error: <what is wrong; how to fix it>``, and no traceback. The tools
  catch :class:`ConfigError` (the user's config, options or the files and
  folders they name are wrong), ``CheckpointError`` and ``OSError`` (a full
  disk, a folder that cannot be written); components raise
  :class:`ConfigError` where a user setting enters them. Any other exception
  is a bug and keeps its traceback.
* :class:`ArgumentParser` reports argument errors in the same form (argparse
  prints a usage block and ``prog: error: ...``).
* Inputs are checked before anything is written: config files, option keys,
  and the annotation files and image folders of the data sets a run will
  read (:func:`check_data_files`), so that a typo costs no hours of
  training before the validation set turns out to be missing.
"""
import argparse
import errno
import json
import os
import os.path as osp
import sys
from typing import (Callable, Iterable, NoReturn, Optional, Sequence, Tuple,
                    TypeVar)

from mmengine.config import Config
from mmengine.config import DictAction as _MMEngineDictAction

#: What the job of :func:`run_runner_tool` returns.
T = TypeVar('T')

# Runner arguments that configs may leave out but --cfg-options may set.
RUNNER_KEYS = frozenset({
    'randomness', 'resume', 'load_from', 'work_dir', 'launcher', 'env_cfg',
    'experiment_name', 'default_hooks', 'custom_hooks', 'log_level',
    'visualizer', 'cfg', 'auto_scale_lr'
})


class ConfigError(ValueError):
    """A config, an option, or a file or folder they name is wrong."""


class DivergedError(ConfigError):
    """Synthesis produced non-finite losses or images under the config's
    settings (learning rate, loss weights)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one ``error:`` line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        """Prints ``error: <message>`` and exits with code 2."""
        print(f'error: {message} (see {self.prog} --help)', file=sys.stderr)
        sys.exit(2)


class DictAction(_MMEngineDictAction):
    """mmengine's ``--cfg-options`` action; an item without ``=`` is an
    argument error instead of a ``ValueError`` traceback."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            if '=' not in item:
                raise argparse.ArgumentError(
                    self, f'expected KEY=VALUE items, got {item!r}')
        super().__call__(parser, namespace, values, option_string)


def parse_launcher_args(parser: argparse.ArgumentParser,
                        argv: Optional[Sequence[str]] = None
                        ) -> argparse.Namespace:
    """Adds mmdet's ``--launcher`` and ``--local-rank`` to a tool's parser,
    parses ``argv`` and, as mmdet's tools do, exports ``--local-rank`` as
    ``LOCAL_RANK`` where the environment has none."""
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


#: What :func:`_node` returns for a path the config does not have.
_MISSING = object()


def _node(cfg: Config, dotted: str):
    """The value at a dotted path of the config (list items by index), or
    ``_MISSING``."""
    node = cfg.to_dict()
    for part in dotted.split('.') if dotted else []:
        if isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def _has_path(cfg: Config, dotted: str) -> bool:
    return _node(cfg, dotted) is not _MISSING


#: Constructor arguments that builders pass themselves, never the config:
#: an option naming one is refused like any unknown key.
_INJECTED_ARGS = frozenset(
    {'self', 'cls', 'runner', 'dataloader', 'evaluator'})


def _registered_classes(type_name) -> list:
    """The classes a config ``type`` names in mmdet's registries (and,
    through them, mmengine's): one per registry that knows the name."""
    if isinstance(type_name, type):
        return [type_name]
    if not isinstance(type_name, str):
        return []
    import mmdet.registry as registries
    from mmengine.registry import Registry
    found = []
    for registry in vars(registries).values():
        if not isinstance(registry, Registry):
            continue
        try:
            cls = registry.get(type_name)
        except Exception:  # e.g. a scope whose package is not installed
            continue
        if cls is not None:
            found.append(cls)
    return found


def _typed_parent_accepts(cfg: Config, dotted: str,
                          new_type: Optional[str] = None) -> bool:
    """Whether ``dotted`` names a keyword argument that the config dict
    above it (one with a ``type``) passes to its class: a setting left at
    its default in the file, e.g. ``test_evaluator.classwise`` of mmdet's
    ``CocoMetric``. Only named parameters count, not ``**kwargs``, and not
    the ones builders pass themselves (``runner``, ``dataloader``...).

    Args:
        cfg (Config): The config as loaded.
        dotted (str): The option's key.
        new_type (str, optional): The ``type`` the same options give the
            parent dict, which then decides instead of the file's.
    """
    import inspect
    parent, _, name = dotted.rpartition('.')
    node = _node(cfg, parent)
    if name in _INJECTED_ARGS or not isinstance(node, dict):
        return False
    type_name = new_type if new_type is not None else node.get('type')
    if type_name is None:
        return False
    for cls in _registered_classes(type_name):
        target = cls.__init__ if inspect.isclass(cls) else cls
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            continue
        if name in params and params[name].kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY):
            return True
    return False


def check_cfg_options(cfg: Config, options: Optional[dict]) -> None:
    """Refuses --cfg-options keys that do not exist in the config.

    mmengine would silently add a mistyped key (``train_cfg.max_epoch``);
    we refuse it unless the full path exists, its first part is one of the
    Runner's own arguments (``randomness.seed`` etc.), or it is a named
    constructor argument of the registered ``type`` of the dict above it
    (``test_evaluator.classwise``, ``synthesizer.amp``), which configs
    leave out when they keep its default. When the options also change
    that dict's ``type`` (``model.distill_losses.out.type=...``), the new
    class decides which arguments it accepts.

    Raises:
        ConfigError: Naming the first unknown key.
    """
    options = options or {}
    for key in options:
        new_type = options.get(key.rpartition('.')[0] + '.type')
        if key.split('.')[0] in RUNNER_KEYS or _has_path(cfg, key) or \
                _typed_parent_accepts(cfg, key, new_type):
            continue
        raise ConfigError(
            f'unknown --cfg-options key "{key}": it is not in the config '
            f'{cfg.filename}')


def load_config(path: str, options: Optional[dict] = None) -> Config:
    """Loads a config file and merges checked --cfg-options into it.

    Args:
        path (str): The config file.
        options (dict, optional): Parsed ``--cfg-options``.

    Raises:
        ConfigError: The file is missing, cannot be parsed or executed
            (syntax error, missing ``_base_``, unsupported format), or an
            option key is unknown.
    """
    if not osp.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    try:
        cfg = Config.fromfile(path)
    except Exception as e:  # the file is Python: it may raise anything
        raise ConfigError(
            f'cannot load config {path}: {_one_line(e)}') from e
    check_cfg_options(cfg, options)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def check_output_file(path: str) -> None:
    """Refuses an output file path that is an existing folder (the rename
    that ends an atomic write would fail after all the work is done).

    Args:
        path (str): The file a tool is about to write.

    Raises:
        ConfigError: ``path`` is a folder.
    """
    if osp.isdir(path):
        raise ConfigError(f'{path} is a folder: give the path of the file to '
                          'write')


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config name>``, as mmdet's tools do."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def build_runner(cfg: Config):
    """The Runner of a tool's run: the config's ``runner_type`` when it names
    one, mmengine's ``Runner`` otherwise (as mmdet's tools build it)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def _one_line(error: BaseException) -> str:
    """``Type: first line of the message`` (with the line of a syntax
    error)."""
    if isinstance(error, SyntaxError):
        return f'SyntaxError: {error.msg} (line {error.lineno})'
    text = str(error).strip().splitlines()
    return f'{type(error).__name__}: {text[0] if text else ""}'.rstrip(': ')


def os_error_message(error: OSError) -> str:
    """What an ``OSError`` of a tool's run means for the user, one line."""
    where = f' {error.filename}' if error.filename else ''
    reason = error.strerror or _one_line(error)
    if error.errno in (errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC)):
        return (f'no space left on the device ({reason}) while writing'
                f'{where or " the outputs"}: free some space and run the same '
                'command again; finished work is kept')
    return f'cannot access{where or " a file"}: {reason}'


def fail(error: BaseException) -> int:
    """Prints the one ``error:`` line of a tool; returns its exit code, 2.

    Args:
        error (BaseException): A :class:`ConfigError`, ``CheckpointError``
            or ``OSError``.
    """
    message = os_error_message(error) if isinstance(error, OSError) else \
        str(error)
    message = ' '.join(message.split())  # one line
    print(f'error: {message}', file=sys.stderr)
    return 2


def run_runner_tool(
    launcher: str, prepare: Callable[[], Tuple[Config, Callable[[], T]]]
) -> Tuple[int, Optional[T]]:
    """Runs the job of a tool that builds a Runner (``tools/train.py``,
    ``tools/test.py``), with the tools' one-line errors and their process
    group.

    In order: checks the launcher's environment, calls ``prepare`` (which
    loads the config, folds the tool's options into it and checks the
    inputs), starts the process group of a launch without CUDA, runs the
    job, and ends the process group whether the job succeeded or not.

    Args:
        launcher (str): The tool's ``--launcher``.
        prepare (Callable[[], tuple[Config, Callable[[], T]]]): Returns the
            Runner config and the job that runs on it, e.g. the training.
            It may raise :class:`ConfigError` or ``CheckpointError``.

    Returns:
        tuple[int, T | None]: The tool's exit code, 0, and the job's result;
        or 2 and None after the one ``error:`` line of a
        :class:`ConfigError` or ``CheckpointError`` (of the launch, of
        ``prepare`` or of the job) or of an ``OSError`` of the job.
    """
    from .checkpoint import CheckpointError
    from .dist import check_launch_env, destroy_dist, setup_cpu_distributed
    try:
        check_launch_env(launcher)
        cfg, job = prepare()
        setup_cpu_distributed(cfg)
    except (ConfigError, CheckpointError) as e:
        return fail(e), None
    try:
        result = job()
    except (CheckpointError, ConfigError, OSError) as e:
        return fail(e), None
    finally:
        destroy_dist()  # the job's Runner, out of scope now, held the group
    return 0, result


# --------------------------------------------------------------------------
# The data a run will read


def _datasets(cfg: dict) -> Iterable[dict]:
    """A data set config and the ones wrapped in it (RepeatDataset,
    ConcatDataset, MultiImageMixDataset, ...)."""
    yield cfg
    inner = cfg.get('dataset')
    if isinstance(inner, dict):
        yield from _datasets(inner)
    for inner in cfg.get('datasets') or ():
        if isinstance(inner, dict):
            yield from _datasets(inner)


def _local(path: str) -> bool:
    return '://' not in path


def check_data_files(cfg: Config, loaders: Sequence[str]) -> None:
    """Refuses a run whose data sets' files are missing, before it starts.

    For every data set (wrappers included) of the given data loaders that
    names an ``ann_file``: the file (joined to ``data_root`` as mmdet does)
    and the image folder ``data_prefix.img`` must exist; for the
    evaluators beside ``val``/``test`` loaders, their ``ann_file``. For
    ``val``/``test`` sets with ``metainfo.classes``, every class must be a
    category of the annotation file: mmdet would otherwise drop its boxes
    silently and score the model on the classes that remain.

    Args:
        cfg (Config): The run's config.
        loaders (Sequence[str]): Keys of the data loaders the run uses,
            e.g. ``('train_dataloader', 'val_dataloader')``; absent or None
            ones are skipped.

    Raises:
        ConfigError: Naming the first missing file or class.
    """
    for key in loaders:
        loader = cfg.get(key)
        if not loader or not isinstance(loader.get('dataset'), dict):
            continue
        for dataset in _datasets(loader['dataset']):
            _check_dataset(key, dataset,
                           check_classes=not key.startswith('train'))
        evaluator = cfg.get(key.replace('_dataloader', '_evaluator'))
        for metric in ([evaluator] if isinstance(evaluator, dict) else
                       evaluator or []):
            ann = metric.get('ann_file') if isinstance(metric, dict) else None
            if ann and _local(ann) and not osp.isfile(ann):
                raise ConfigError(
                    f'{key.replace("_dataloader", "_evaluator")}.ann_file '
                    f'{ann} not found; {_DATA_HINT}')


_DATA_HINT = ('build the data set (make data for data/digits) or point the '
              'config at it, e.g. --cfg-options '
              'train_dataloader.dataset.data_root=DIR/')


def _check_dataset(key: str, dataset: dict, check_classes: bool) -> None:
    ann_file = dataset.get('ann_file')
    if not ann_file or not isinstance(ann_file, str):
        return
    root = dataset.get('data_root') or ''
    path = osp.join(root, ann_file) if root and not osp.isabs(
        ann_file) else ann_file
    if not _local(path):
        return
    if not osp.isfile(path):
        raise ConfigError(f'{key}: annotation file {path} not found '
                          f'(data_root={root!r}); {_DATA_HINT}')
    prefix = (dataset.get('data_prefix') or {}).get('img')
    if prefix is not None:
        folder = osp.join(root, prefix) if root else prefix
        if _local(folder) and folder and not osp.isdir(folder):
            raise ConfigError(f'{key}: image folder {folder} not found '
                              f'(data_root={root!r}); {_DATA_HINT}')
    classes = (dataset.get('metainfo') or {}).get('classes')
    if check_classes and classes and path.endswith('.json'):
        _check_categories(key, path, classes)


def _check_categories(key: str, ann_file: str,
                      classes: Sequence[str]) -> None:
    try:
        with open(ann_file, encoding='utf-8') as f:
            categories = json.load(f).get('categories', [])
    except (ValueError, AttributeError) as e:
        raise ConfigError(f'{key}: annotation file {ann_file} is not a COCO '
                          f'json ({_one_line(e)})') from e
    names = [c.get('name') for c in categories]
    missing = [c for c in classes if c not in names]
    if missing:
        raise ConfigError(
            f'{key}: {ann_file} has no category named {missing[:5]} (its '
            f'categories: {names[:10]}); its boxes would be dropped and the '
            'model scored on the rest: give the metainfo classes the '
            'json\'s category names')
