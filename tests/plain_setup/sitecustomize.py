"""Python as after `bash Script/setup_env.sh` alone, without the test tools: with this folder on
PYTHONPATH, Python imports this module at start-up (its own and every child process's), and
importing a package that only requirements-test.txt brings raises ModuleNotFoundError, as where
it is not installed. tests/test_benchmarks.py runs each documented benchmark so.

Hidden: the top-level modules of the installed distributions pinned in requirements-test.txt
and not in the runtime lock requirements.lock (a module shipped by any other distribution too
stays), and torchvision (never installed: tests/stubs holds a test-only stand-in).
"""
import importlib.abc
import importlib.metadata
import importlib.util
import os.path as osp
import re
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def normalised(name):
    """A distribution's name as pip compares it: Scikit_Video and scikit-video are one."""
    return re.sub(r'[-_.]+', '-', name).lower()


def pinned(filename):
    """The distributions `filename` pins (`name==version` lines), normalised."""
    with open(osp.join(ROOT, filename), encoding='utf-8') as handle:
        return {normalised(name)
                for name in re.findall(r'^([A-Za-z0-9][A-Za-z0-9._-]*)==', handle.read(), re.M)}


def hidden_modules():
    test_only = pinned('requirements-test.txt') - pinned('requirements.lock')
    return {'torchvision'} | {
        module for module, distributions in importlib.metadata.packages_distributions().items()
        if all(normalised(name) in test_only for name in distributions)}


HIDDEN = frozenset(hidden_modules())


class HideTestOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition('.')[0]
        if top in HIDDEN:
            raise ModuleNotFoundError(f'{top} is a test-only package (requirements-test.txt); '
                                      f'hidden to run as after plain set-up', name=top)
        return None


_find_spec = importlib.util.find_spec


def find_spec(name, package=None):
    """importlib.util.find_spec, which asks whether a package is installed without importing it,
    answers None for a hidden one, as where it is not installed (the finder would raise)."""
    return None if name.partition('.')[0] in HIDDEN else _find_spec(name, package)


sys.meta_path.insert(0, HideTestOnly())
importlib.util.find_spec = find_spec
