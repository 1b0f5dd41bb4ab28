"""The benchmarks run and end with the line their documentation promises (the figures
themselves are for BENCHMARKS.md, not for assertions)."""
import re
import subprocess
import sys

import pytest

from conftest import ROOT


def run_benchmark(name, *args):
    """The benchmark's printed lines, after checking that it exited 0."""
    result = subprocess.run([sys.executable, '-m', f'benchmarks.{name}', *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()


@pytest.mark.slow
def test_scale_bench_compares_with_todays_parser_and_ends_with_its_line():
    lines = run_benchmark('scale_bench', '--lines', '3000', '--workers', '2',
                          '--datatool-videos', '1400')
    assert re.fullmatch(r'scale: lines=3000 parse_s=\S+ records_mib=\S+ worker_pss_growth=\S+ '
                        r'baseline_parse_s=\S+ baseline_records_mib=\S+ '
                        r'baseline_worker_pss_growth=\S+', lines[-1])
    assert any(line.startswith('| RecordTable') for line in lines)
    assert any('1400 videos indexed and metafiles written' in line for line in lines)


@pytest.mark.slow
def test_stream_bench_measures_both_and_ends_with_its_line():
    lines = run_benchmark('stream_bench', '--size', '64', '--frames', '4', '--classes', '10')
    match = re.fullmatch(r'stream: online_ms_per_frame=(\S+) window_ms_per_frame=(\S+) '
                         r'speedup=(\S+) max_abs_diff=(\S+)', lines[-1])
    assert match, lines[-1]
    online, window, speedup, difference = map(float, match.groups())
    assert abs(speedup - window / online) < 0.01 * speedup and difference < 1e-4
    assert any(line.startswith('| online TSM') for line in lines)


@pytest.mark.slow
def test_pretrain_memory_bench_shows_checkpointing_saving_memory_and_ends_with_its_line():
    """ViT-S at 8x96 (144 tokens, 16 visible): a plain step keeps about 3x the memory of a
    checkpointed one (15.4 against 5.0 MiB), tensors counted exactly, the same in every run.
    One thread: two on a busy 2-core machine made steps up to 50x slower."""
    lines = run_benchmark('pretrain_memory', '--size', 'vit_small', '--frames', '8', '--crop', '96',
                          '--batch', '1', '--threads', '1')
    match = re.fullmatch(r'pretrain_memory: size=vit_small checkpoint_ratio=(\S+) bf16_ratio=(\S+)',
                         lines[-1])
    assert match, lines[-1]
    checkpoint_ratio, bf16_ratio = map(float, match.groups())
    rows = {}
    for line in lines:
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        if line.startswith('| float32') or line.startswith('| bf16'):
            rows[cells[0]] = [float(cell) for cell in cells[1:]]
    assert list(rows) == ['float32', 'float32, grad checkpoint', 'bf16 autocast',
                          'bf16 autocast, grad checkpoint']
    plain, checkpointed = rows['float32'], rows['float32, grad checkpoint']
    assert 0 < checkpointed[0] < 0.6 * plain[0]                 # memory MiB
    assert plain[1] == plain[0] and plain[2] == 1.0             # batch 1: per clip = step; baseline
    assert checkpoint_ratio == pytest.approx(checkpointed[0] / plain[0], rel=0.01)
    assert bf16_ratio == pytest.approx(rows['bf16 autocast'][0] / plain[0], rel=0.01)
    assert all(row[3] > 0 for row in rows.values())            # s per step


@pytest.mark.slow
def test_pretrain_gain_runs_its_three_trainings_and_ends_with_its_line(tmp_path):
    """The learning check's pipeline on the tiny set, one epoch each (its figures mean nothing
    there; the measured ones are in docs/pretraining.md): pre-training, then both
    fine-tunings, the pre-trained one from the pre-training's best.pth."""
    lines = run_benchmark('pretrain_gain', '--tiny', '--pretrain-epochs', '1', '--finetune-epochs', '1',
                          '--clip-len', '4', '--root', str(tmp_path / 'data'),
                          '--snapshot', str(tmp_path / 'runs'), '--workers', '0')
    match = re.fullmatch(r'pretrain_gain: pretrain_epochs=1 finetune_epochs=1 scratch_top1=(\S+) '
                         r'pretrained_top1=(\S+) gain=(\S+)', lines[-1])
    assert match, lines[-1]
    scratch, pretrained, gain = map(float, match.groups())
    assert gain == pytest.approx(pretrained - scratch, abs=0.011)
    assert [line.split('|')[1].strip() for line in lines if line.startswith('| from')] == [
        'from pre-training', 'from scratch']
    log = (tmp_path / 'runs' / 'ar_output' / 'videomae' / 'finetune_pretrained_1ep_ld1' / 'log' / 'train.log')
    assert 'loaded the encoder of' in log.read_text(encoding='utf-8')


@pytest.mark.slow
def test_loader_bench_transcode_measures_the_three_gops_and_ends_with_its_line(tmp_path):
    """Long-GOP sources of 24 frames, transcoded by DataTool.transcode to GOP 8, 32 and 250,
    2 batches each: the figures mean little at this size, only that it all runs."""
    lines = run_benchmark('loader_bench', '--inputs', 'transcode', '--quick', '--transcode-frames',
                          '24', '--clips', '80', '--data', str(tmp_path))
    match = re.fullmatch(r'transcode: speedup=(\S+) size_ratio=(\S+)', lines[-1])
    assert match, lines[-1]
    speedup, size_ratio = map(float, match.groups())
    assert speedup > 1 and size_ratio > 0
    rows = [[cell.strip() for cell in line.strip('|').split('|')] for line in lines
            if line.startswith('| tsn') or line.startswith('| dense')]
    assert [(row[0], row[2]) for row in rows] == [
        (case, gop) for case in ('tsn', 'dense') for gop in ('250', '8', '32', '250')]
    assert [row[1] for row in rows[:4]] == ['long-GOP sources', 'transcoded (default)',
                                            'transcoded', 'transcoded']
    default = rows[1]
    assert float(default[6]) == pytest.approx(size_ratio, abs=0.006)    # size / sources
    assert min(float(rows[1][8]), float(rows[5][8])) == pytest.approx(speedup, abs=0.006)


@pytest.mark.slow
def test_loader_bench_frames_ends_with_the_ratios_at_the_decode_limit(tmp_path):
    """--quick: TSN frames at the stored size and at 2x, one round of 64 clips: only that it
    runs and that the last line's ratios are the table's."""
    lines = run_benchmark('loader_bench', '--quick', '--clips', '64', '--data', str(tmp_path))
    match = re.fullmatch(r'loader: ours_clips_per_s=(\S+) limit_clips_per_s=(\S+) limit_ratio=(\S+) '
                         r'naive_speedup=(\S+) stored_2x_limit_ratio=(\S+) shards_ratio=(\S+)', lines[-1])
    assert match, lines[-1]
    ours, limit, ratio, _, ratio_2x, shards_ratio = map(float, match.groups())
    assert ratio == pytest.approx(ours / limit, abs=0.006)
    shards = re.fullmatch(r'shards: clips_per_s=(\S+) frames_clips_per_s=(\S+) .*', lines[-2])
    assert shards_ratio == pytest.approx(float(shards.group(1)) / float(shards.group(2)), abs=0.006)
    rows = {tuple(cell.strip() for cell in line.strip('|').split('|')[:3]): line for line in lines
            if line.startswith('| tsn frames2x')}
    row_2x = rows[('tsn frames2x', 'ours: SuperLoader', '1')]
    assert float(row_2x.split('|')[5]) == pytest.approx(ratio_2x, abs=0.006)
