"""Every benchmark README.md and BENCHMARKS.md name runs with --quick after plain set-up (without
the test tools) and ends with the line its documentation promises (the figures themselves are
for BENCHMARKS.md, not for assertions)."""
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import ROOT, require

# Python as after `bash Script/setup_env.sh` alone: tests/plain_setup/sitecustomize.py hides the
# packages only requirements-test.txt brings
PLAIN_SETUP = {**os.environ, 'PYTHONPATH': osp.join(ROOT, 'tests', 'plain_setup')}


def run_benchmark(name, *args, env=None):
    """The benchmark's printed lines, after checking that it exited 0."""
    result = subprocess.run([sys.executable, '-m', f'benchmarks.{name}', *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()


def table(lines, first_cell):
    """The cells of the table rows whose first cell starts with `first_cell`."""
    rows = [[cell.strip() for cell in line.strip('|').split('|')] for line in lines
            if line.startswith('|')]
    return [row for row in rows if row[0].startswith(first_cell)]


def check_ddp_throughput(match, lines, tmp_path):
    cores = os.cpu_count()
    assert [row[:3] for row in table(lines, '1 process') + table(lines, 'DDP')] == [
        ['1 process (baseline)', '1', str(cores)], ['DDP, 1 process', '1', str(cores)],
        ['DDP, 2 processes', '2', str(max(cores // 2, 1))]]


def check_loader_frames(match, lines, tmp_path):
    """TSN frames at the stored size and at 2x, one round of 64 clips: the last line's ratios
    are the table's."""
    ours, limit, ratio, _, ratio_2x, shards_ratio = map(float, match.groups())
    assert ratio == pytest.approx(ours / limit, abs=0.006)
    shards = re.fullmatch(r'shards: clips_per_s=(\S+) frames_clips_per_s=(\S+) .*', lines[-2])
    assert shards_ratio == pytest.approx(float(shards.group(1)) / float(shards.group(2)), abs=0.006)
    row_2x = [row for row in table(lines, 'tsn frames2x') if row[1:3] == ['ours: SuperLoader', '1']]
    assert float(row_2x[0][4]) == pytest.approx(ratio_2x, abs=0.006)      # / limit


def check_loader_transcode(match, lines, tmp_path):
    """Long-GOP sources of 24 frames, transcoded by DataTool.transcode to GOP 8, 32 and 250,
    2 batches each: the table's rows, and the last line's figures are the default's."""
    speedup, size_ratio = map(float, match.groups())
    rows = table(lines, 'tsn') + table(lines, 'dense')
    assert [(row[0], row[2]) for row in rows] == [
        (case, gop) for case in ('tsn', 'dense') for gop in ('250', '8', '32', '250')]
    assert [row[1] for row in rows[:4]] == ['long-GOP sources', 'transcoded (default)',
                                            'transcoded', 'transcoded']
    assert float(rows[1][6]) == pytest.approx(size_ratio, abs=0.006)    # size / sources
    assert min(float(rows[1][8]), float(rows[5][8])) == pytest.approx(speedup, abs=0.006)


def check_scale_bench(match, lines, tmp_path):
    assert table(lines, 'RecordTable')
    assert any('1400 videos indexed and metafiles written' in line for line in lines)


def check_model_bench(match, lines, tmp_path):
    """TSN, fp32, eager: contiguous and channels_last, neither failed (a failed setting's row
    says so where its time would be)."""
    rows = table(lines, 'TSN')
    assert [row[:5] for row in rows] == [
        ['TSN-R50 8 seg', '8x64²', 'fp32', layout, 'False'] for layout in ('False', 'True')]
    assert all(re.fullmatch(r'[\d.]+', row[5]) for row in rows), rows


def check_predict_bench(match, lines, tmp_path):
    assert [row[1:3] for row in table(lines, 'TSN')] == [
        [backend, workers] for backend in ('PyTorch', 'ONNX Runtime', 'ONNX Runtime INT8')
        for workers in ('1', '2')]


def check_stream_bench(match, lines, tmp_path):
    online, window, speedup, difference = map(float, match.groups())
    assert abs(speedup - window / online) < 0.01 * speedup and difference < 1e-4
    assert table(lines, 'online TSM')


def check_pretrain_memory(match, lines, tmp_path):
    """ViT-S at 8x96 (144 tokens, 16 visible): a plain step keeps about 3x the memory of a
    checkpointed one (15.4 against 5.0 MiB), tensors counted exactly, the same in every run."""
    checkpoint_ratio, bf16_ratio = map(float, match.groups())
    rows = {row[0]: [float(cell) for cell in row[1:]]
            for row in table(lines, 'float32') + table(lines, 'bf16')}
    assert list(rows) == ['float32', 'float32, grad checkpoint', 'bf16 autocast',
                          'bf16 autocast, grad checkpoint']
    plain, checkpointed = rows['float32'], rows['float32, grad checkpoint']
    assert 0 < checkpointed[0] < 0.6 * plain[0]                 # memory MiB
    assert plain[1] == plain[0] and plain[2] == 1.0             # batch 1: per clip = step; baseline
    assert checkpoint_ratio == pytest.approx(checkpointed[0] / plain[0], rel=0.01)
    assert bf16_ratio == pytest.approx(rows['bf16 autocast'][0] / plain[0], rel=0.01)


def check_pretrain_gain(match, lines, tmp_path):
    """The learning check's pipeline on the tiny set, one epoch each (its figures mean nothing
    there; the measured ones are in docs/pretraining.md): pre-training, then both
    fine-tunings, the pre-trained one from the pre-training's best.pth."""
    scratch, pretrained, gain = map(float, match.groups())
    assert gain == pytest.approx(pretrained - scratch, abs=0.011)
    assert [row[0] for row in table(lines, 'from')] == ['from pre-training', 'from scratch']
    log = tmp_path / 'runs' / 'ar_output' / 'videomae' / 'finetune_pretrained_1ep_ld1' / 'log'
    assert 'loaded the encoder of' in (log / 'train.log').read_text(encoding='utf-8')


def check_worker_start(match, lines, tmp_path):
    """Both loaders, both start methods, and the last line's ratio is SuperLoader's row's."""
    rows = table(lines, 'SuperLoader') + table(lines, 'DataLoaderX')
    assert [row[:2] for row in rows] == [[loader, method] for loader in ('SuperLoader', 'DataLoaderX')
                                         for method in ('fork (baseline)', 'forkserver')]
    first, baseline = float(match.group(1)), float(match.group(2))
    assert float(match.group(3)) == pytest.approx(first / baseline, rel=0.03)    # of rounded times
    assert [float(row[2]) for row in rows[:2]] == pytest.approx([baseline, first], abs=0.0006)


# (benchmark, its arguments after --quick ({tmp}: a temporary folder for what it writes), the
# pattern of its last line: its summary line, or the last row of its table for the three that
# end with their table, and a check of its other lines)
QUICK_RUNS = {
    'ddp_throughput': ('ddp_throughput', [], r'\| DDP, 2 processes \| 2 \| \d+( \| \S+){3} \|',
                       check_ddp_throughput),
    'loader_bench': ('loader_bench', ['--data', '{tmp}'],
                     r'loader: ours_clips_per_s=(\S+) limit_clips_per_s=(\S+) limit_ratio=(\S+) '
                     r'naive_speedup=(\S+) stored_2x_limit_ratio=(\S+) shards_ratio=(\S+)',
                     check_loader_frames),
    'loader_bench_transcode': ('loader_bench', ['--inputs', 'transcode', '--data', '{tmp}'],
                               r'transcode: speedup=(\S+) size_ratio=(\S+)',
                               check_loader_transcode),
    'scale_bench': ('scale_bench', [],
                    r'scale: lines=3000 parse_s=\S+ records_mib=\S+ worker_pss_growth=\S+ '
                    r'baseline_parse_s=\S+ baseline_records_mib=\S+ baseline_worker_pss_growth=\S+',
                    check_scale_bench),
    'model_bench': ('model_bench', [],
                    r'\| TSN-R50 8 seg \| 8x64² \| fp32 \| True \| False \| [\d.]+ \| [\d.]+x \|',
                    check_model_bench),
    'predict_bench': ('predict_bench', ['--data', '{tmp}'],
                      r'\| TSN-R50 8 seg x 1 crop \| ONNX Runtime INT8 \| 2 \| \S+ \| \S+ \|',
                      check_predict_bench),
    'stream_bench': ('stream_bench', [],
                     r'stream: online_ms_per_frame=(\S+) window_ms_per_frame=(\S+) '
                     r'speedup=(\S+) max_abs_diff=(\S+)', check_stream_bench),
    'pretrain_memory': ('pretrain_memory', [],
                        r'pretrain_memory: size=vit_small checkpoint_ratio=(\S+) bf16_ratio=(\S+)',
                        check_pretrain_memory),
    'worker_start_bench': ('worker_start_bench', ['--data', '{tmp}'],
                           r'worker_start: first_batch_s=(\S+) baseline_first_batch_s=(\S+) '
                           r'next_loader_s=\S+ baseline_next_loader_s=\S+ ratio=(\S+)',
                           check_worker_start),
    'pretrain_gain': ('pretrain_gain', ['--root', '{tmp}/data', '--snapshot', '{tmp}/runs'],
                      r'pretrain_gain: pretrain_epochs=1 finetune_epochs=1 scratch_top1=(\S+) '
                      r'pretrained_top1=(\S+) gain=(\S+)', check_pretrain_gain),
}


@pytest.mark.slow
@pytest.mark.parametrize('case', QUICK_RUNS)
def test_documented_benchmark_runs_quick_after_plain_setup(case, tmp_path):
    """`python -m benchmarks.<name> --quick`, the test-only packages hidden: it exits 0, ends
    with its line and prints what that line sums up."""
    name, args, last_line, check = QUICK_RUNS[case]
    # a warning in a worker is an error: runpy warns when a worker's entry module was imported
    # half-way (datasets/worker_entry.py must leave none)
    lines = run_benchmark(name, '--quick', *[arg.format(tmp=tmp_path) for arg in args],
                          env=dict(PLAIN_SETUP, PYTHONWARNINGS='error::RuntimeWarning:runpy'))
    match = re.fullmatch(last_line, lines[-1])
    assert match, lines[-1]
    check(match, lines, tmp_path)


def test_plain_setup_hides_the_test_only_packages():
    """What the benchmark runs above rest on: under PLAIN_SETUP a test-only package cannot be
    imported, a runtime one can."""
    require(importlib.util.find_spec('skvideo') is not None,
            'scikit-video (test extra) is not installed')
    result = subprocess.run([sys.executable, '-c', 'import numpy; import skvideo'], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, env=PLAIN_SETUP)
    assert result.returncode != 0
    assert ("ModuleNotFoundError: skvideo is a test-only package (requirements-test.txt); hidden "
            "to run as after plain set-up") in result.stderr, result.stderr[-2000:]
