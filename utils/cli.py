"""What every entry point does with a user's mistake: a one-line message and exit code 2."""
import sys

from config import ConfigError
from datasets import DataLoadingError, DatasetConfigError, DecodeError, MetafileError
from models import ModelConfigError, WeightsError

from .checkpoint import CheckpointError
from .stopping import StoppedWhileWaiting, TrainingDiverged
from .stream_source import StreamError
from .memory import keep_freed_memory

USER_ERRORS = (ConfigError, MetafileError, ModelConfigError, DatasetConfigError, WeightsError, DecodeError,
               CheckpointError, DataLoadingError, FileNotFoundError, TrainingDiverged, StreamError)


def run_entry_point(function, *args):
    """Run `function(*args)`; 0 on success, 2 with the message for bad input or config, 130
    (the shell's code for Ctrl-C) when interrupted at once by a second Ctrl-C, 128 + the
    signal's number when a stop signal came while the loader was stuck."""
    keep_freed_memory()
    try:
        function(*args)
    except USER_ERRORS as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except StoppedWhileWaiting as err:
        print(f'error: {err}', file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        print('interrupted: stopped at once, nothing saved since the last checkpoint',
              file=sys.stderr)
        return 130
    return 0
