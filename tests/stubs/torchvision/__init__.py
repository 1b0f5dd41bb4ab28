"""A test-only stand-in for torchvision, put on the path by tests/references.py only when the
real torchvision cannot be imported (the registry's wheels are CUDA builds that fail beside the
CPU torch). The reference packages (timm, pytorchvideo) import names from it at module level
that the models under test never use: every `torchvision.*` module exists here, every name in
it is a placeholder class, and calling one raises."""
import importlib.abc
import importlib.machinery
import sys
import types

__version__ = '0.0+stand-in'


class _Placeholder(type):
    def __getattr__(cls, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return _placeholder(name)

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(f'torchvision stand-in: {cls.__name__} is not available in tests')


def _placeholder(name):
    return _Placeholder(name, (), {})


class _StandInModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return _placeholder(name)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds every torchvision.* submodule, as an empty stand-in module."""

    def find_spec(self, fullname, path, target=None):
        if fullname.startswith(__name__ + '.'):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StandInModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


sys.meta_path.insert(0, _Finder())
sys.modules[__name__].__class__ = _StandInModule
