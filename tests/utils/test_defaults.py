"""init_defaults: a constructor's keyword defaults, read off its signature."""
import pytest

from mmdiode.utils.defaults import init_defaults


class _Recipe:

    def __init__(self, a: int = 1, b=None, c: str = 'x') -> None:
        pass


def test_defaults_in_signature_order():
    defaults = init_defaults(_Recipe)
    assert defaults == dict(a=1, b=None, c='x')
    assert list(defaults) == ['a', 'b', 'c']


class _Required:

    def __init__(self, a, b: int = 2) -> None:
        pass


class _Variadic:

    def __init__(self, a: int = 1, **kwargs) -> None:
        pass


@pytest.mark.parametrize('cls, name', [(_Required, "'a'"),
                                       (_Variadic, "'kwargs'")])
def test_parameter_without_default_raises(cls, name):
    with pytest.raises(TypeError, match=name):
        init_defaults(cls)
