"""The checked read of json files: a corrupt one is one error naming it."""
import pytest

from mmdiode.utils import ConfigError
from mmdiode.utils.fileio import dump_json_atomic, load_json_object


def test_a_json_object_is_read(tmp_path):
    path = str(tmp_path / 'results.json')
    dump_json_atomic(dict(pairs={'yolov3': 1}), path)
    assert load_json_object(path, 'a results json', 'move it away') == dict(
        pairs={'yolov3': 1})


@pytest.mark.parametrize('text, problem', [
    ('{"pairs": ', 'Expecting value: line 1 column 11 (char 10)'),
    ('["a", "b"]', 'a list'),
])
def test_a_corrupt_file_is_named_with_the_problem(tmp_path, text, problem):
    path = tmp_path / 'results.json'
    path.write_text(text, encoding='utf-8')
    with pytest.raises(ConfigError) as error:
        load_json_object(str(path), 'a results json', 'move it away')
    assert str(error.value) == (
        f'{path} is not a results json ({problem}); move it away')
