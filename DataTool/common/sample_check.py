"""One sample of a metafile, checked the way the loader will read it (DataTool.check's job).

A video is opened, its packets surveyed without decoding (real frame count, keyframe
interval, variable frame rate, a cut download), its first frame decoded for what a player
shows (size after rotation, codec, rate, duration), and its sampled frames decoded (every
frame with `full`). A frame folder is counted and its sampled frames (or all) decoded. Each
finding is a problem with a severity:
    unusable    the sample cannot be trained on: left out of the clean metafile
    corrected   the metafile's frame count is wrong: the clean metafile has the real one
    warning     usable, but worth acting on (slow to decode; duplicates are found later)
    note        usable as it is, worth knowing (rotation, variable frame rate)
The content hash (BLAKE2b of the file's bytes, or of a folder's frame files) finds duplicates.
"""
import hashlib
import os
import os.path as osp

from datasets.decoding import load_frame_folder
from datasets.records import VIDEO_EXTENSIONS
from datasets.sampling import segment_indices
from datasets.video_probe import LONG_KEYFRAME_INTERVAL, probe_video, survey_packets
from datasets.video_reader import DecodeError, count_video_frames, load_video

UNUSABLE, CORRECTED, WARNING, NOTE = 'unusable', 'corrected', 'warning', 'note'
HASH_CHUNK = 1 << 20


def problem(severity, kind, reason):
    return {'severity': severity, 'problem': kind, 'reason': reason}


def sampled_positions(num_frames, count):
    """The frames to decode when not checking all: `count` segment centres (as validation
    samples them) and the last frame, which a wrong frame count makes unreachable."""
    centres = segment_indices(num_frames, count, train=False) if count else []
    return sorted({int(i) for i in centres} | {num_frames - 1})


def content_hash(paths):
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        with open(path, 'rb') as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _plain(err, path):
    """A DecodeError's words without the sample's path they start with (the report names it)."""
    return ' '.join(str(err).split()).removeprefix(f'{path}: ')


def check_video(path, listed, full=False, frames_to_decode=8):
    """(facts, problems) of a video file listed with `listed` frames."""
    facts = {'kind': 'video'}
    if osp.getsize(path) == 0:
        return facts, [problem(UNUSABLE, 'empty', 'the file is empty (0 bytes)')]
    try:
        survey = survey_packets(path)
        if survey.truncated:    # the first frame may still decode: say what happened
            return facts, [problem(UNUSABLE, 'truncated', f'damaged or truncated: the container '
                                   f'lists {survey.declared} frames, only {survey.frames} '
                                   'present')]
        info = probe_video(path)
    except DecodeError as err:
        words = _plain(err, path)
        kind = 'not_a_video' if 'still image' in words or 'no video stream' in words else 'unreadable'
        return facts, [problem(UNUSABLE, kind, words)]
    facts.update(codec=info.codec, width=info.width, height=info.height, rotation=info.rotation,
                 fps=round(float(info.fps), 3), duration=round(info.duration, 3),
                 keyframe_interval=survey.keyframe_interval, keyframes=survey.keyframes,
                 variable_rate=survey.variable_rate, min_gap=round(survey.min_gap, 4),
                 max_gap=round(survey.max_gap, 4), bytes=osp.getsize(path))
    problems = []
    try:
        real = count_video_frames(path) if full or survey.frames != listed else listed
        try:
            load_video(path, sampled_positions(real, frames_to_decode))
        except DecodeError as err:
            if full or 'fewer frames' not in str(err):
                raise
            real = count_video_frames(path)      # the packets promise frames that do not decode
            load_video(path, sampled_positions(real, frames_to_decode))
    except DecodeError as err:
        return facts, [problem(UNUSABLE, 'decode_failed', _plain(err, path))]
    facts['frames'] = real
    facts['hash'] = content_hash([path])
    if real != listed:
        problems.append(problem(CORRECTED, 'frame_count',
                                f'the metafile says {listed} frames, the video has {real}'))
    if survey.keyframe_interval > LONG_KEYFRAME_INTERVAL:
        problems.append(problem(WARNING, 'long_keyframe_interval',
                                f'keyframes up to {survey.keyframe_interval} frames apart: '
                                'a sampled frame costs up to that many decoded frames '
                                '(transcode: DataTool.transcode)'))
    if info.rotation:
        problems.append(problem(NOTE, 'rotated', f'shown turned {info.rotation} degrees '
                                f'({info.width}x{info.height} as shown): DLAC turns it as a '
                                'player does; tools that ignore the rotation see it sideways'))
    if survey.variable_rate:
        problems.append(problem(NOTE, 'variable_frame_rate',
                                f'variable frame rate: frames {survey.min_gap * 1000:.0f} to '
                                f'{survey.max_gap * 1000:.0f} ms apart; clips are sampled by '
                                'frame, so slow and fast parts weigh differently in time'))
    return facts, problems


def frame_files(folder, img_format, frame_start):
    """The folder's frame files from the first, in order, up to the first one missing."""
    files = []
    while osp.isfile(path := osp.join(folder, img_format.format(len(files) + frame_start))):
        files.append(path)
    return files


def check_frame_folder(folder, listed, full=False, frames_to_decode=8, img_format='img_{:05d}.jpg',
                       frame_start=1):
    """(facts, problems) of a frame folder listed with `listed` frames."""
    facts = {'kind': 'frames'}
    files = frame_files(folder, img_format, frame_start)
    if not files:
        first = img_format.format(frame_start)
        return facts, [problem(UNUSABLE, 'empty', f'no {first}: the folder holds no frames '
                               f'({len(os.listdir(folder))} other files)')]
    real = len(files)
    positions = range(real) if full else sampled_positions(real, frames_to_decode)
    try:
        frames = load_frame_folder(folder, positions, img_format, frame_start=frame_start)
    except DecodeError as err:
        return facts, [problem(UNUSABLE, 'decode_failed', _plain(err, folder))]
    facts.update(frames=real, height=int(frames.shape[1]), width=int(frames.shape[2]),
                 bytes=sum(osp.getsize(path) for path in files), hash=content_hash(files))
    if real != listed:
        return facts, [problem(CORRECTED, 'frame_count',
                               f'the metafile says {listed} frames, the folder has {real}')]
    return facts, []


def check_sample(job):
    """DataTool.check's job: {'key', **facts, 'problems'} for one (path, listed frames). Any
    failure is the sample's (a file that breaks a decoder in an unforeseen way is named as
    unreadable, not a crash of the whole check)."""
    key, path, listed, options = job
    if not osp.exists(path):
        what = 'video file' if path.lower().endswith(VIDEO_EXTENSIONS) else 'frame folder or video'
        return {'key': key, 'kind': 'missing',
                'problems': [problem(UNUSABLE, 'missing', f'not found: no such {what}')]}
    try:
        if osp.isdir(path):
            facts, problems = check_frame_folder(path, listed, options['full'], options['frames'],
                                                 options['img_format'], options['frame_start'])
        else:
            facts, problems = check_video(path, listed, options['full'], options['frames'])
    except Exception as err:  # noqa: BLE001 - reported with the sample, the check goes on
        facts = {'kind': 'video' if osp.isfile(path) else 'frames'}
        problems = [problem(UNUSABLE, 'unreadable', f'{type(err).__name__}: '
                            f'{" ".join(str(err).split())}')]
    return {'key': key, **facts, 'problems': problems}
