"""Print the requirement lines of requirements.lock that Script/setup_env.sh installs.

    python Script/locked.py [--keep-torch] [LOCK]

By default every pinned line. With --keep-torch (a torch is already installed, e.g. a CUDA
build, and is kept) the torch line is left out, and so is every package that only torch needs
(the lock's '# via' notes, followed transitively), so a kept torch keeps its own dependencies.
Standard library only: it runs before anything is installed.
"""
import os.path as osp
import re
import sys

PIN = re.compile(r'^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)')
# '# via torch', '#   torch', '#   -r requirements.txt' (asked for directly: always kept);
# '-c FILE' (two words, not matched) only constrains the version: it needs nothing
VIA = re.compile(r'^\s+#\s+(?:via\s+)?(-r \S+|\S+)\s*$')


def read_lock(path):
    """{name: (requirement line, set of the names it is needed by)} in file order."""
    entries, current = {}, None
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            pin = PIN.match(line)
            if pin:
                current = pin.group(1).lower().replace('_', '-')
                entries[current] = (pin.group(0), set())
                continue
            via = VIA.match(line)
            if current and via and via.group(1) != 'via':
                entries[current][1].add(via.group(1).lower().replace('_', '-'))
    return entries


def torch_only(entries):
    """torch and the packages needed by nothing but torch and such packages."""
    only = {'torch'}
    changed = True
    while changed:
        changed = False
        for name, (_, needed_by) in entries.items():
            if name not in only and needed_by and needed_by <= only:
                only.add(name)
                changed = True
    return only


def main(argv):
    keep_torch = '--keep-torch' in argv
    paths = [arg for arg in argv if not arg.startswith('--')]
    path = paths[0] if paths else osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                                           'requirements.lock')
    entries = read_lock(path)
    skip = torch_only(entries) if keep_torch else set()
    for name, (line, _) in entries.items():
        if name not in skip:
            print(line)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
