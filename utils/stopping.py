"""Stopping a training run without losing work, and a switch that fails it on purpose.

`GracefulStop` turns SIGTERM (what torchrun, SLURM and `kill` send), SIGINT (Ctrl-C) and SIGUSR1
(SLURM's warning before a time limit or pre-emption, which Script/run_train_slurm.sh passes on)
into a flag that the training loop checks after each step: the main process then writes
last.pth for the step it has reached and the run exits. A second Ctrl-C stops at once. A step
that cannot finish because its batch does not come (a stuck loader) does not hold the run: the
loaders give up waiting WAIT_AFTER_STOP_S seconds after the signal (`check_stop_while_waiting`),
and the run ends with exit code 128 + the signal's number, last.pth left as it was.

DLAC_FAULT_INJECT=ACTION:RANK:EPOCH:STEP (epoch and step counted from 1, as logged) makes
process RANK, at that step, either `exit` at once (a crashed worker: exit code 1, nothing
saved) or send itself `sigterm`. It fires on torchrun's first attempt only, so a restarted
group runs through: tests use it to check restarts and resuming.
"""
import os
import signal
import time

from .distributed import restart_count

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT) + ((signal.SIGUSR1,) if hasattr(signal, 'SIGUSR1') else ())
WAIT_AFTER_STOP_S = 3.0     # how long a loader still waits for a batch once a stop is asked
_pending = None             # (signum, monotonic time) of the active GracefulStop's request


def signal_name(signum):
    """'SIGUSR1' for 10; the number itself for one Python does not name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


class GracefulStop:
    """Context manager: while active, SIGTERM/SIGINT/SIGUSR1 set `signum` instead of killing."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt        # asked twice: stop now
        if self.signum is not None:
            return                         # the same request again (SLURM may reach a process twice)
        self.signum = signum
        global _pending
        _pending = (signum, time.monotonic())
        # os.write, not logging or print: a signal handler may interrupt either mid-write
        os.write(2, f'\n[stop] {signal_name(signum)}: finishing this step, then saving last.pth'
                    f'{"; Ctrl-C again stops at once, without saving" if signum == signal.SIGINT else ""}'
                    '\n'.encode())

    @property
    def requested(self):
        return self.signum is not None

    def __enter__(self):
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        global _pending
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        _pending = None
        return False


class StoppedWhileWaiting(Exception):
    """A stop signal came while a loader waited for a batch that did not come in time."""

    def __init__(self, signum, waiting_for):
        super().__init__(f'stopped by {signal_name(signum)} while waiting for {waiting_for}, '
                         f'which did not come within {WAIT_AFTER_STOP_S:.0f}s of the signal; '
                         'ended without saving (last.pth is as it was)')
        self.signum = signum


def check_stop_while_waiting(waiting_for):
    """Called by a loader while it waits: raise StoppedWhileWaiting once a stop signal is
    WAIT_AFTER_STOP_S old (a batch arriving before then lets the step finish and save)."""
    if _pending is not None and time.monotonic() - _pending[1] >= WAIT_AFTER_STOP_S:
        raise StoppedWhileWaiting(_pending[0], waiting_for)


class TrainingStopped(Exception):
    """Raised by the training loop after a stop signal, once its step is finished."""

    def __init__(self, signum, epoch, step, totals):
        super().__init__(f'stopped by {signal_name(signum)} in epoch {epoch + 1} after step {step}')
        self.signum, self.epoch, self.step, self.totals = signum, epoch, step, totals


class TrainingDiverged(RuntimeError):
    """The loss was NaN or inf for TRAIN.MAX_BAD_STEPS steps in a row (exit 2)."""


def parse_fault(text):
    """'exit:1:2:3' -> ('exit', rank 1, epoch index 1, step index 2); None for ''."""
    if not text:
        return None
    parts = text.split(':')
    if len(parts) != 4 or parts[0] not in ('exit', 'sigterm') or not all(p.isdigit() for p in parts[1:]):
        raise ValueError(f'DLAC_FAULT_INJECT={text!r}: expected ACTION:RANK:EPOCH:STEP with '
                         "ACTION 'exit' or 'sigterm' and EPOCH, STEP counted from 1")
    return parts[0], int(parts[1]), int(parts[2]) - 1, int(parts[3]) - 1


def maybe_inject_fault(rank, epoch, step, logger=None):
    """Carry out DLAC_FAULT_INJECT if it names this process, epoch and step."""
    fault = parse_fault(os.environ.get('DLAC_FAULT_INJECT', ''))
    if fault is None or restart_count() > 0 or fault[1:] != (rank, epoch, step):
        return
    if logger:
        logger.warning('DLAC_FAULT_INJECT: %s in epoch %d step %d', fault[0], epoch + 1, step + 1)
    if fault[0] == 'exit':
        os._exit(1)
    os.environ['DLAC_FAULT_INJECT'] = ''       # once per process
    os.kill(os.getpid(), signal.SIGTERM)
