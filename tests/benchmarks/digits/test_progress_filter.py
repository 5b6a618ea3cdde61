"""--stream echoes progress, not mmengine's set-up dumps."""
import logging

from mmengine.logging import MMLogger

from benchmarks.digits.datafree import ProgressFilter


def _runner_like_output(tmp_path) -> list:
    """Lines as mmengine's logger writes them to a pipe: an environment
    block, the config, the hook table, then training progress."""
    log_file = tmp_path / 'out.log'
    logger = MMLogger.get_instance('progress_filter_test',
                                   log_file=str(log_file),
                                   log_level=logging.INFO)
    logger.info('\n' + '-' * 60 + '\nSystem environment:\n    sys.platform:'
                ' linux\n' + '-' * 60)
    logger.info('Config:\nmodel = dict(type=\'KDDetector\')\nlr = 0.01')
    logger.info('Hooks will be executed in the following order:\n'
                'before_run:\n(VERY_HIGH   ) RuntimeInfoHook')
    logger.info('Epoch(train) [1][ 50/188]  lr: 1.0000e-03  loss: 12.5')
    logger.info('Saving checkpoint at 1 epochs')
    for handler in logger.handlers:
        handler.flush()
    return log_file.read_text().splitlines(keepends=True)


def test_stream_shows_progress_and_hides_dumps(tmp_path):
    lines = _runner_like_output(tmp_path) + ['error: a tool message\n']
    progress = ProgressFilter()
    shown = ''.join(line for line in lines if progress.shows(line))
    assert 'Epoch(train) [1][ 50/188]' in shown
    assert 'Saving checkpoint' in shown
    assert 'error: a tool message' in shown
    for dumped in ('System environment', 'sys.platform', 'Config:',
                   "type='KDDetector'", 'RuntimeInfoHook'):
        assert dumped not in shown
