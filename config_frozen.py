"""A resolved config that nothing can change: what `config.build_config` returns.

Why: the config used to be rewritten while the model was built (the weights' input convention
and architecture options), so no stage could trust what it read. A FrozenConfig reads like the
EasyDict DLAC users know (`cfg.TRAIN.EPOCHS`, `cfg['TRAIN']['EPOCHS']`), is a dict (YAML,
checkpoints), and raises FrozenConfigError naming the key on any assignment, deletion or
in-place change of a list value. `thaw` gives a mutable copy; `config.updated` a changed one.
"""
import copy

from easydict import EasyDict


class FrozenConfigError(TypeError):
    """Code tried to change a built config: a bug (build a new one with config.updated)."""


def _refuse(path):
    raise FrozenConfigError(f"the config is frozen: '{path}' cannot be changed after "
                            f'config.build_config; build another one (config.updated)')


class FrozenList(list):
    """A list value of a frozen config: equal to the list it holds, but not changeable."""

    def _refuse(self, *args, **kwargs):
        _refuse(self._path)

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __init__(self, values, path):
        super().__init__(values)
        self._path = path

    def __deepcopy__(self, memo):
        return [copy.deepcopy(value, memo) for value in self]

    def __reduce__(self):
        return FrozenList, (list(self), self._path)


class FrozenConfig(dict):
    """A frozen (nested) config section. The top level also carries, as attributes that are
    not config keys: `explicit` (the keys this run's --cfg files and KEY VALUE pairs set) and
    `resolution` (what building it took from elsewhere, for the log)."""

    __slots__ = ('_path', 'explicit', 'resolution')

    def __init__(self, values, path='', explicit=frozenset(), resolution=None):
        super().__init__((key, freeze_value(value, f'{path}{key}')) for key, value in values.items())
        object.__setattr__(self, '_path', path)
        object.__setattr__(self, 'explicit', frozenset(explicit))
        object.__setattr__(self, 'resolution', resolution)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the config has no key '{self._path}{name}'") from None

    def __setattr__(self, name, value):
        _refuse(self._path + name)

    def __delattr__(self, name):
        _refuse(self._path + name)

    def __setitem__(self, name, value):
        _refuse(f'{self._path}{name}')

    def __delitem__(self, name):
        _refuse(f'{self._path}{name}')

    def _refuse_all(self, *args, **kwargs):
        _refuse(self._path.rstrip('.') or '<the whole config>')

    update = pop = popitem = setdefault = clear = __ior__ = _refuse_all

    def __deepcopy__(self, memo):
        return thaw(self)

    def __reduce__(self):
        return _rebuild, (thaw(self), self._path, self.explicit, self.resolution)


def _rebuild(values, path, explicit, resolution):
    return FrozenConfig(values, path, explicit, resolution)


def freeze_value(value, path):
    if isinstance(value, dict):
        return value if isinstance(value, FrozenConfig) else FrozenConfig(value, path + '.')
    if isinstance(value, (list, tuple)):
        return FrozenList((freeze_value(item, f'{path}[{i}]') for i, item in enumerate(value)), path)
    return value


def thaw(node):
    """A mutable EasyDict copy (plain lists inside) of a frozen or mutable config."""
    if isinstance(node, dict):
        return EasyDict({key: thaw(value) for key, value in node.items()})
    if isinstance(node, (list, tuple)):
        return [thaw(value) for value in node]
    return node
