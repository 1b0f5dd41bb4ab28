"""Stand-ins for SLURM's sbatch, srun, scontrol and scancel, so that the cluster script runs
here without a cluster. Each command behaves as its SLURM namesake does for the options the
tests use; what SLURM keeps in its controller is kept as files in $SLURM_STANDIN_DIR.

- sbatch [OPTIONS] SCRIPT [ARGS]: reads the script's #SBATCH lines (the command line wins),
  copies the script to a spool folder (as slurmd does, so the script cannot find the
  repository from its own path) and runs it with bash and the SLURM_* variables, waiting for
  it as `sbatch --wait` does. A job that asked `scontrol requeue` while it ran is run again
  with the same job id and SLURM_RESTART_COUNT one higher.
- srun [OPTIONS] COMMAND: one task per node (or --ntasks), each with SLURM_NODEID,
  SLURM_PROCID, SLURM_LOCALID and SLURMD_NODENAME; exits with the highest task status;
  --kill-on-bad-exit stops the other tasks when one fails.
- scontrol show hostnames [LIST]; scontrol requeue JOBID.
- scancel --signal SIG [--batch | --full] JOBID: the batch shell only (--batch), every
  process of the job's steps (default: what SLURM's cgroup process tracking reaches, so the
  children of the tasks too), or both (--full).

$SLURM_STANDIN_HOSTS (comma-separated, default 'localhost') names the nodes; tests give two
names of this machine for a two-node job.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

STATE = os.environ.get('SLURM_STANDIN_DIR') or sys.exit('SLURM_STANDIN_DIR is not set')
MAX_REQUEUES = 5        # SLURM's MaxBatchRequeue default


def job_dir(job_id):
    return os.path.join(STATE, f'job_{job_id}')


def expand_hostlist(text):
    """'node[1-3,7],gpu2' -> ['node1', 'node2', 'node3', 'node7', 'gpu2']."""
    names = []
    for prefix, ranges, plain in re.findall(r'([^,\[]+)\[([^\]]+)\]|([^,]+)', text):
        if plain:
            names.append(plain)
            continue
        for part in ranges.split(','):
            low, _, high = part.partition('-')
            for number in range(int(low), int(high or low) + 1):
                names.append(f'{prefix}{number:0{len(low)}d}')
    return names


def parse_options(args, with_values):
    """Leading SLURM options of `args` -> (dict, rest). `--a=b`, `--a b`, `-N 2`, flags."""
    options, i = {}, 0
    while i < len(args) and args[i].startswith('-'):
        name, has_value, value = args[i].partition('=')
        if name in with_values and not has_value:
            value, i = args[i + 1], i + 1
        options[with_values.get(name, name.lstrip('-'))] = value if (has_value or name in with_values) else True
        i += 1
    return options, args[i:]


SBATCH_VALUES = {'-N': 'nodes', '--nodes': 'nodes', '-J': 'job-name', '--job-name': 'job-name',
                 '-c': 'cpus-per-task', '--cpus-per-task': 'cpus-per-task', '-t': 'time',
                 '--time': 'time', '-o': 'output', '--output': 'output',
                 '--ntasks-per-node': 'ntasks-per-node', '--gpus-per-node': 'gpus-per-node',
                 '--signal': 'signal', '--open-mode': 'open-mode', '-p': 'partition'}


def sbatch(args):
    options, rest = parse_options(args, SBATCH_VALUES)
    if not rest:
        sys.exit('sbatch: error: a batch script is required')
    script, script_args = rest[0], rest[1:]
    with open(script, encoding='utf-8') as handle:
        directives = []
        for line in handle.read().splitlines()[1:]:
            if line.startswith('#SBATCH'):
                directives += line.split('#', 2)[1][len('SBATCH'):].split()
            elif line.strip() and not line.startswith('#'):
                break                               # SLURM stops at the first command
    options = dict(parse_options(directives, SBATCH_VALUES)[0], **options)
    os.makedirs(STATE, exist_ok=True)
    counter = os.path.join(STATE, 'last_job_id')
    job_id = int(open(counter).read()) + 1 if os.path.exists(counter) else 4100
    with open(counter, 'w') as handle:
        handle.write(str(job_id))
    os.makedirs(job_dir(job_id))
    spool = os.path.join(job_dir(job_id), 'slurm_script')
    shutil.copy(script, spool)
    hosts = os.environ.get('SLURM_STANDIN_HOSTS', 'localhost').split(',')
    nodes = int(options.get('nodes', 1))
    if nodes > len(hosts):
        sys.exit(f'sbatch: error: {nodes} nodes asked, SLURM_STANDIN_HOSTS names {len(hosts)}')
    env = dict(os.environ, SLURM_JOB_ID=str(job_id), SLURM_JOBID=str(job_id),
               SLURM_JOB_NAME=options.get('job-name', os.path.basename(script)),
               SLURM_NNODES=str(nodes), SLURM_JOB_NUM_NODES=str(nodes),
               SLURM_JOB_NODELIST=','.join(hosts[:nodes]), SLURM_SUBMIT_DIR=os.getcwd(),
               SLURMD_NODENAME=hosts[0])
    if 'cpus-per-task' in options:
        env['SLURM_CPUS_PER_TASK'] = options['cpus-per-task']
    with open(os.path.join(job_dir(job_id), 'requeue_allowed'), 'w') as handle:
        handle.write('0' if options.get('no-requeue') else '1')
    print(f'Submitted batch job {job_id}', flush=True)
    restarts = 0
    while True:
        batch = subprocess.Popen(['bash', spool] + script_args, env=env)
        with open(os.path.join(job_dir(job_id), 'batch.pid'), 'w') as handle:
            handle.write(str(batch.pid))
        status = batch.wait()
        flag = os.path.join(job_dir(job_id), 'requeued')
        if not os.path.exists(flag) or restarts == MAX_REQUEUES:
            return status
        os.remove(flag)
        restarts += 1
        env['SLURM_RESTART_COUNT'] = str(restarts)


SRUN_VALUES = {'-N': 'nodes', '--nodes': 'nodes', '-n': 'ntasks', '--ntasks': 'ntasks',
               '--ntasks-per-node': 'ntasks-per-node', '-c': 'cpus-per-task',
               '--cpus-per-task': 'cpus-per-task'}


def srun(args):
    job_id = os.environ.get('SLURM_JOB_ID') or sys.exit('srun: error: not inside a job allocation')
    options, command = parse_options(args, SRUN_VALUES)
    hosts = expand_hostlist(os.environ['SLURM_JOB_NODELIST'])
    nodes = int(options.get('nodes', len(hosts)))
    per_node = int(options.get('ntasks-per-node', 1))
    tasks = int(options.get('ntasks', nodes * per_node))
    steps = os.path.join(job_dir(job_id), 'steps')
    os.makedirs(steps, exist_ok=True)
    step_id = len(os.listdir(steps))
    processes = []
    for rank in range(tasks):
        node = rank // per_node
        env = dict(os.environ, SLURM_STEP_ID=str(step_id), SLURM_PROCID=str(rank),
                   SLURM_NODEID=str(node), SLURM_LOCALID=str(rank % per_node),
                   SLURMD_NODENAME=hosts[node], SLURM_STEP_NUM_NODES=str(nodes),
                   SLURM_STEP_NUM_TASKS=str(tasks), SLURM_NTASKS=str(tasks))
        processes.append(subprocess.Popen(command, env=env))
    with open(os.path.join(steps, str(step_id)), 'w') as handle:
        handle.write(' '.join(str(p.pid) for p in processes))

    def forward(signum, frame):             # srun passes these on to its tasks
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, forward)
    kill_on_bad_exit = str(options.get('kill-on-bad-exit', '0')) not in ('0', 'False')
    while any(p.poll() is None for p in processes):
        if kill_on_bad_exit and any(p.poll() not in (None, 0) for p in processes):
            forward(signal.SIGKILL, None)
        time.sleep(0.1)
    return max(p.returncode if p.returncode >= 0 else 128 - p.returncode for p in processes)


def scontrol(args):
    if args[:2] == ['show', 'hostnames']:
        listed = args[2] if len(args) > 2 else os.environ.get('SLURM_JOB_NODELIST', '')
        print('\n'.join(expand_hostlist(listed)))
        return 0
    if len(args) == 2 and args[0] == 'requeue':
        folder = job_dir(args[1])
        if not os.path.isdir(folder):
            print(f'scontrol: error: Invalid job id specified for job {args[1]}', file=sys.stderr)
            return 1
        with open(os.path.join(folder, 'requeue_allowed')) as handle:
            if handle.read() != '1':
                print(f'Requested operation is disabled for job {args[1]}', file=sys.stderr)
                return 1
        with open(os.path.join(STATE, 'requeue.log'), 'a') as handle:
            handle.write(f'requeue {args[1]}\n')
        open(os.path.join(folder, 'requeued'), 'w').close()
        return 0
    print(f'scontrol (stand-in): {" ".join(args)} is not supported', file=sys.stderr)
    return 1


def descendants(pids):
    """`pids` and every process below them, from /proc."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as handle:
                    parent = int(handle.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


SCANCEL_VALUES = {'-s': 'signal', '--signal': 'signal'}


def scancel(args):
    options, jobs = parse_options(args, SCANCEL_VALUES)
    name = str(options.get('signal', 'KILL')).upper()
    signum = int(name) if name.isdigit() else getattr(signal, name if name.startswith('SIG') else 'SIG' + name)
    for job_id in jobs:
        folder = job_dir(job_id)
        targets = []
        if options.get('batch') or options.get('b') or options.get('full') or options.get('f'):
            with open(os.path.join(folder, 'batch.pid')) as handle:
                batch = [int(handle.read())]
            targets += descendants(batch) if (options.get('full') or options.get('f')) else batch
        if not (options.get('batch') or options.get('b')):
            steps = os.path.join(folder, 'steps')
            for step in os.listdir(steps) if os.path.isdir(steps) else []:
                with open(os.path.join(steps, step)) as handle:
                    targets += descendants(int(pid) for pid in handle.read().split())
        for pid in targets:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
    return 0


if __name__ == '__main__':
    sys.exit({'sbatch': sbatch, 'srun': srun, 'scontrol': scontrol,
              'scancel': scancel}[sys.argv[1]](sys.argv[2:]))
