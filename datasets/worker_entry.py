"""Imported by the worker server only, last of its preloads (datasets/worker_start.py): the
entry script's imports, loaded once there, so that a worker does not import them again.

A worker runs its entry script's top level again, as '__mp_main__' (as spawn does; the script's
`if __name__ == '__main__'` part excluded). This imports the entry module named by
DLAC_WORKER_ENTRY for its imports, then forgets the module itself: a worker re-running it then
finds every import done, and runpy finds no half-known copy of it to warn about.
"""
import importlib
import os
import sys

from datasets.worker_start import ENTRY_VARIABLE


def preload_entry(name):
    try:
        importlib.import_module(name)
    except Exception:        # noqa: BLE001 - a preload is an optimisation: a worker imports it itself
        return
    sys.modules.pop(name, None)


if os.environ.get(ENTRY_VARIABLE):
    preload_entry(os.environ.pop(ENTRY_VARIABLE))     # the workers' own children never see it
