"""Errors of model construction that the caller reports as a configuration mistake."""


class ModelOptionError(ValueError):
    """A model constructor argument that names no known option (a backbone, a variant, a size,
    a consensus, a modality, ...). The message names the argument and the value and lists the
    choices. build_model reports it as a config error (exit code 2); any other exception
    raised while a model is built is a bug and keeps its traceback."""


def check_option(argument, value, choices):
    """`value` when it is one of `choices` (a dict's keys or a sequence), else
    ModelOptionError naming `argument`, `value` and the choices."""
    try:
        known = value in choices
    except TypeError:               # an unhashable value cannot be a dict key
        known = False
    if not known:
        listed = list(choices) if isinstance(choices, (list, tuple)) else sorted(choices)
        raise ModelOptionError(f'unknown {argument} {value!r}; choose one of {listed}')
    return value
