"""The tested versions: requirements.lock against the ranges and the test pins, and what
Script/locked.py hands to pip (Script/setup_env.sh)."""
import os.path as osp
import re
import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, osp.join(ROOT, 'Script'))
import locked  # noqa: E402

LOCK = osp.join(ROOT, 'requirements.lock')


def pins(path):
    """{normalised name: version} of a file's `name==version` lines."""
    with open(path, encoding='utf-8') as handle:
        return {re.sub(r'[-_.]+', '-', name).lower(): version for name, version in
                re.findall(r'^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)', handle.read(), re.M)}


def locked_lines(*args):
    result = subprocess.run([sys.executable, osp.join(ROOT, 'Script', 'locked.py'), *args, LOCK],
                            capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_the_lock_pins_every_range_and_agrees_with_the_test_pins():
    lock, tests = pins(LOCK), pins(osp.join(ROOT, 'requirements-test.txt'))
    with open(osp.join(ROOT, 'requirements.txt'), encoding='utf-8') as handle:
        ranged = {re.sub(r'[-_.]+', '-', match).lower() for match in
                  re.findall(r'^([A-Za-z0-9][A-Za-z0-9._-]*)', handle.read(), re.M)}
    assert ranged and ranged <= set(lock), ranged - set(lock)
    assert lock['torch'].startswith('2.13.0')
    assert lock['av'] != '18.1.1'
    shared = set(lock) & set(tests)
    assert shared and {name: lock[name] for name in shared} == {name: tests[name] for name in shared}


def test_every_pin_is_installed_on_a_fresh_machine():
    assert locked_lines() == [f'{name}=={version}' for name, version in
                              ((line.split('==')[0], line.split('==')[1]) for line in locked_lines())]
    assert {re.sub(r'[-_.]+', '-', line.split('==')[0]).lower() for line in locked_lines()} == \
        set(pins(LOCK))


def test_a_kept_torch_keeps_its_own_dependencies(tmp_path):
    """--keep-torch leaves out torch and what only torch needs, followed through the lock's
    '# via' notes; a package something else needs too stays."""
    lock = tmp_path / 'requirements.lock'
    lock.write_text('\n'.join([
        'jinja2==3.1.6', '    # via torch',
        'markupsafe==3.0.4', '    # via jinja2',
        'numpy==2.4.6', '    # via', '    #   -r requirements.txt', '    #   torch',
        'sympy==1.14.0', '    # via', '    #   onnx-ir', '    #   torch',
        'networkx==3.6.1', '    # via', '    #   -c requirements-test.txt', '    #   torch',
        'onnx-ir==1.1.0', '    # via onnxscript',
        'torch==2.13.0+cpu', '    # via -r requirements-lock.in', '']))
    everything = [line for line in lock.read_text().splitlines() if '==' in line]
    assert [line for name, (line, _) in locked.read_lock(str(lock)).items()] == everything
    kept = subprocess.run([sys.executable, osp.join(ROOT, 'Script', 'locked.py'), '--keep-torch',
                           str(lock)], capture_output=True, text=True, check=True).stdout.split()
    assert kept == ['numpy==2.4.6', 'sympy==1.14.0', 'onnx-ir==1.1.0']
