"""Online TSM (MODEL.TSM_SHIFT online): the causal shift, and the runner that steps one frame
at a time equal, per frame, to the offline model on the frames so far."""
import logging

import numpy as np
import pytest
import torch

import config
from models import ModelOptionError, build_model
from benchmarks.stream_bench import like_trained
from datasets.clip_spec import ClipSpec
from export_model import check_online_parity, write_online_onnx
from models.online_tsm import OnlineRunner, OnlineStep, TorchOnlineStep
from models.tsm import TSM, online_shift, temporal_shift


def test_online_shift_takes_one_fold_from_the_previous_frame_only():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2 * 3, 8, 1, 1)     # N=2, T=3, C=8
    out = online_shift(x, num_segments=3, fold_div=4).view(2, 3, 8)
    frames = x.view(2, 3, 8)
    assert torch.equal(out[:, 0, :2], torch.zeros(2, 2))                  # nothing before frame 0
    assert torch.equal(out[:, 1:, :2], frames[:, :-1, :2])                # from the previous frame
    assert torch.equal(out[:, :, 2:], frames[:, :, 2:])                   # the rest stays
    # the published shift also moves a fold backwards: the online one never looks ahead
    assert not torch.equal(temporal_shift(x, 3, 4), online_shift(x, 3, 4))


def randomised(model, dtype):
    """Eval mode, every BN statistic and affine parameter and the classifier random (the
    stream benchmark's weights), so each layer matters: ResNets start with the last BN of
    each residual branch at zero, which would hide the shift."""
    return like_trained(model, seed=1).to(dtype)


def offline_frame_logits(model, clip):
    """Per-frame logits [N, T, K] of the offline online-shift model (before the consensus)."""
    with torch.no_grad():
        return model.head(model.forward_features(clip))


@pytest.mark.parametrize('backbone,dtype,tolerance,size', [
    ('resnet18', torch.float32, 1e-5, 32), ('resnet18', torch.float64, 1e-12, 32),
    ('mobilenetv2', torch.float32, 1e-5, 32),
    # float64 depthwise convolutions are ~20x slower than float32 on the CPU
    pytest.param('mobilenetv2', torch.float64, 1e-12, 16, marks=pytest.mark.slow)])
def test_the_online_runner_equals_the_offline_model_frame_by_frame(backbone, dtype, tolerance, size):
    torch.manual_seed(0)
    model = randomised(TSM(5, backbone=backbone, shift='online'), dtype)
    clip = torch.randn(2, 3, 5, size, size, dtype=dtype)
    offline = offline_frame_logits(model, clip)
    step = OnlineStep(model)
    caches, online = (), []
    with torch.no_grad():
        for t in range(clip.shape[2]):
            logits, *caches = step(clip[:, :, t], *caches)
            online.append(logits)
    online = torch.stack(online, dim=1)
    assert offline.abs().max() > 0.2                       # logits that can differ
    assert (online - offline).abs().max() <= tolerance
    # causal: the model on frames 1..t gives frame t what the whole clip gave it
    prefix = offline_frame_logits(model, clip[:, :, :4])
    assert (prefix - offline[:, :4]).abs().max() <= tolerance


def test_the_runner_averages_the_last_frames_like_the_clip_consensus():
    torch.manual_seed(0)
    model = randomised(TSM(4, backbone='resnet18', shift='online'), torch.float32)
    clip = torch.randn(1, 3, 5, 32, 32)
    per_frame = offline_frame_logits(model, clip)[0].numpy()
    runner = OnlineRunner(TorchOnlineStep(model), average=3)
    outputs = [runner(clip[:, :, t].numpy()) for t in range(5)]
    np.testing.assert_allclose(outputs[0][0], per_frame[0], atol=1e-5)
    np.testing.assert_allclose(outputs[1][0], per_frame[:2].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(outputs[4][0], per_frame[2:5].mean(axis=0), atol=1e-5)
    # averaged over the whole clip: the offline model's clip output
    runner = OnlineRunner(TorchOnlineStep(model), average=5)
    last = [runner(clip[:, :, t].numpy()) for t in range(5)][-1]
    with torch.no_grad():
        np.testing.assert_allclose(last, model(clip).numpy(), atol=1e-5)
    runner.reset()                    # a new stream starts from zero caches again
    np.testing.assert_allclose(runner(clip[:, :, 0].numpy())[0], per_frame[0], atol=1e-5)
    # the previous frame matters (the test above could not pass by accident)
    swapped = offline_frame_logits(model, clip[:, :, [4, 0]])[0].numpy()
    assert np.abs(swapped[1] - per_frame[0]).max() > 1e-2


def test_only_an_online_tsm_on_rgb_runs_online():
    with pytest.raises(ModelOptionError, match='TSM_SHIFT online'):
        OnlineStep(TSM(4, backbone='resnet18'))
    with pytest.raises(ModelOptionError, match='RGB frames'):
        OnlineStep(TSM(4, backbone='resnet18', shift='online', modality='Flow', new_length=2))
    with pytest.raises(ValueError, match='average'):
        OnlineRunner(lambda frame, caches: None, average=0)


def test_the_config_key_builds_the_online_shift_and_names_a_wrong_value():
    cfg = config.build_config(['MODEL_NAME', 'tsm', 'BACKBONE', 'resnet18', 'MODEL.TSM_SHIFT', 'online'])
    model = build_model(cfg, pretrained=False)
    modes = {m.mode for m in model.modules() if type(m).__name__ == 'TemporalShift'}
    assert modes == {'online'}
    with pytest.raises(ModelOptionError, match="MODEL.TSM_SHIFT 'forward'"):
        TSM(4, backbone='resnet18', shift='forward')


def test_the_online_onnx_streams_with_its_caches_like_pytorch(tmp_path):
    torch.manual_seed(0)
    model = randomised(TSM(4, backbone='resnet18', shift='online'), torch.float32)
    path = str(tmp_path / 'model_online.onnx')
    spec = ClipSpec('segment', 4, 1, 1, 36, 32, (0, 0, 0), (1, 1, 1))
    # the tracing exporter here (seconds); export_model.py tries the dynamo one first
    record = write_online_onnx(model, spec, path, 17, 'torchscript', logging.getLogger('test'))
    assert len(record['inputs']) == 9 and record['inputs'][:2] == ['frame', 'cache_0']
    assert record['outputs'][:2] == ['logits', 'next_cache_0']        # one per shifted block
    assert check_online_parity(model, path, spec) < 1e-4
    with torch.no_grad():                                    # the check can fail
        model.head.fc.bias.add_(0.01)
    assert check_online_parity(model, path, spec) > 5e-3
