"""The keyword defaults of a class's constructor, as a dict.

Some classes are configured through a dict argument of another one (the
``fp_sampling`` and ``early_exit`` arguments of ``DeepInversion``), whose
defaults are those of the configured class. Reading them off the
constructor's signature keeps one copy of each default: the signature's.
"""
import inspect
from typing import Any, Dict


def init_defaults(cls: type) -> Dict[str, Any]:
    """The defaults of ``cls.__init__``'s parameters, in signature order.

    Args:
        cls (type): A class whose constructor parameters (after ``self``)
            all have defaults and none of which is ``*args`` or
            ``**kwargs``.

    Returns:
        dict: Parameter name to default value.

    Raises:
        TypeError: If a parameter has no default or is variadic.
    """
    defaults = {}
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    for param in params:
        if (param.default is param.empty or param.kind
                in (param.VAR_POSITIONAL, param.VAR_KEYWORD)):
            raise TypeError(f'{cls.__name__}.__init__: parameter '
                            f'{param.name!r} has no default')
        defaults[param.name] = param.default
    return defaults
