"""tools/analysis_tools/kill_resume.py: one SIGKILL per long job, resumed.

The script runs the real tools in subprocesses on the tiniest runs of
:mod:`mmdiode.testing` (3 training iterations; 4 synthesized images); here
it is called in-process through its ``main(argv)``, once per job. Seed 6
draws the kill at 0.79 of the uninterrupted run's time, past the start-up
(imports) that takes most of so short a run.
"""
import os.path as osp

import pytest
from tool_loader import load_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_script():
    return load_tool('analysis_tools/kill_resume')


@pytest.mark.parametrize('job', ['train', 'synthesize'])
def test_a_killed_run_resumes_with_no_file_lost(job, tmp_path, capsys):
    code = load_script().main([
        '--job', job, '--runs', '1', '--seed', '6', '--work-dir',
        str(tmp_path), '--iters', '3', '--images', '4'
    ])
    out = capsys.readouterr().out
    run, = [line for line in out.splitlines()
            if line.startswith(f'kill_resume: job={job} run=1 ')]
    assert 'killed_at=' in run and 'resumed=yes' in run, out
    assert out.splitlines()[-1] == ('kill_resume: runs=1 resumed=1 '
                                    'corrupt=0 missing=0 problems=0'), out
    assert code == 0, out
