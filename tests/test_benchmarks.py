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
