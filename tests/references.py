"""The reference implementations our converters are proven against, built with random weights
(every BN statistic randomised) from the packages in requirements-test.txt.

Two gaps in those packages are bridged here, for the tests only: torchvision, which the
reference code imports for names these models do not use, is replaced by tests/stubs when the
real one cannot be imported; mmaction2 1.2.0's wheel lacks mmaction/models/localizers/drn/,
which its __init__ imports, so an empty stand-in module is registered under that name.
"""
import importlib.util
import os.path as osp
import sys
import types

import torch

from conftest import require

TESTS = osp.dirname(osp.abspath(__file__))


def randomize(model, seed=0):
    """Random BN statistics and affine terms, and random weights in every other tensor, so a
    test cannot pass on identity BNs or on zero-initialised layers."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                size = module.num_features
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.1)
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator)
                                    * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model.eval()


def ensure_torchvision():
    """The real torchvision if it imports, else the test stand-in."""
    try:
        import torchvision  # noqa: F401
    except Exception:                      # not installed, or a CUDA build beside a CPU torch
        for name in [m for m in sys.modules if m == 'torchvision' or m.startswith('torchvision.')]:
            del sys.modules[name]
        sys.path.insert(0, osp.join(TESTS, 'stubs'))
        importlib.import_module('torchvision')


def need(package):
    require(importlib.util.find_spec(package) is not None,
            f'{package} (requirements-test.txt) is not installed')


def timm_resnet(depth):
    need('timm')
    ensure_torchvision()
    import timm
    return randomize(timm.create_model(f'resnet{depth}', pretrained=False, num_classes=1000))


def cadene_bninception():
    """pretrainedmodels' BNInception, loaded from its module file (the package's __init__
    imports torchvision's model zoo)."""
    need('pretrainedmodels')
    spec = importlib.util.find_spec('pretrainedmodels')
    path = osp.join(osp.dirname(spec.origin), 'models', 'bninception.py')
    module_spec = importlib.util.spec_from_file_location('cadene_bninception', path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return randomize(module.BNInception(num_classes=1000))


def mmaction_model(model_config):
    """An mmaction2 1.2.0 recognizer built from its registry."""
    need('mmaction')
    ensure_torchvision()
    # mmaction2 1.2.0 imports its multimodal models (VindLU) whenever transformers >= 4.28 is
    # installed, and they fail with the transformers the VideoMAE test needs; no test uses them
    import mmaction.utils.dependency as dependency
    dependency.WITH_MULTIMODAL = False
    if 'mmaction.models.localizers.drn' not in sys.modules:
        package = types.ModuleType('mmaction.models.localizers.drn')
        package.__path__ = []
        module = types.ModuleType('mmaction.models.localizers.drn.drn')
        module.DRN = type('DRN', (), {})
        sys.modules[package.__name__], sys.modules[module.__name__] = package, module
    from mmaction.registry import MODELS
    from mmaction.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    return randomize(MODELS.build(model_config))


def pytorchvideo_module(name):
    need('pytorchvideo')
    ensure_torchvision()
    return importlib.import_module(name)
