"""MODEL.PRETRAINED 'imagenet': the standard ImageNet file of each BACKBONE (DLAC's
PRETRAIN_TYPE 'imagenet'). It is looked up in SNAPSHOT_ROOT/ar_output/pretrain_model_zoo/;
when it is not there it is downloaded from its official address with torch.hub's downloader,
which checks the SHA-256 prefix the file name carries. Without a network, the error gives the
address and the folder to put the file in."""
import os
import os.path as osp
import socket
import urllib.error

import torch

from .weights import WeightsError

TORCHVISION = 'https://download.pytorch.org/models/'
# BACKBONE: (file name, official address or None, SHA-256 prefix or None)
IMAGENET_FILES = {
    'resnet18': ('resnet18-f37072fd.pth', TORCHVISION + 'resnet18-f37072fd.pth', 'f37072fd'),
    'resnet34': ('resnet34-b627a593.pth', TORCHVISION + 'resnet34-b627a593.pth', 'b627a593'),
    'resnet50': ('resnet50-0676ba61.pth', TORCHVISION + 'resnet50-0676ba61.pth', '0676ba61'),
    'mobilenetv2': ('mobilenet_v2-b0353104.pth', TORCHVISION + 'mobilenet_v2-b0353104.pth', 'b0353104'),
    'inceptionv3': ('inception_v3_google-0cc3c7bd.pth', TORCHVISION + 'inception_v3_google-0cc3c7bd.pth',
                    '0cc3c7bd'),
    'resnet101': ('resnet101-63fe2227.pth', TORCHVISION + 'resnet101-63fe2227.pth', '63fe2227'),
    'bninception': ('bn_inception-52deb4733.pth',
                    'http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-52deb4733.pth', '52deb4733'),
    # the MFNet authors publish MFNet2D behind a Google Drive link, with no checksum
    'mfnet2d': ('MFNet2D_ImageNet1k-0000.pth', None, None),
    'mfnet3d': ('MFNet2D_ImageNet1k-0000.pth', None, None),
    'mfnet': ('MFNet2D_ImageNet1k-0000.pth', None, None),
}
MFNET_README = 'https://github.com/cypw/PyTorch-MFNet (README: MF-Net 2D, ImageNet-1k)'
DOWNLOAD_TIMEOUT_S = 60


def imagenet_file(backbone, zoo_dir, logger=None):
    """The path of BACKBONE's ImageNet file in `zoo_dir`, downloaded first if needed."""
    if backbone not in IMAGENET_FILES:
        raise WeightsError(f"MODEL.PRETRAINED 'imagenet': no ImageNet file is known for BACKBONE "
                           f'{backbone!r}; known: {sorted(IMAGENET_FILES)}')
    name, url, sha256_prefix = IMAGENET_FILES[backbone]
    path = osp.join(zoo_dir, name)
    if osp.isfile(path):
        return path
    if url is None:
        raise WeightsError(f"MODEL.PRETRAINED 'imagenet' for {backbone}: {name} is not in {zoo_dir} "
                           f'and has no official download with a checksum; get it from {MFNET_README} '
                           f'and put it there')
    os.makedirs(zoo_dir, exist_ok=True)
    if logger:
        logger.info('downloading %s to %s (SHA-256 checked)', url, path)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, path, hash_prefix=sha256_prefix, progress=False)
    except RuntimeError as err:            # torch.hub: 'invalid hash value (expected ..., got ...)'
        raise WeightsError(f'{url}: the download does not match its SHA-256 prefix {sha256_prefix} '
                           f'({err}); nothing was saved. Download it again, or put a good copy at '
                           f'{path}') from err
    except (urllib.error.URLError, OSError) as err:
        raise WeightsError(f"MODEL.PRETRAINED 'imagenet' for {backbone}: {name} is not in {zoo_dir} and "
                           f'could not be downloaded ({getattr(err, "reason", err)}). On a machine with '
                           f'internet, get {url} and put it in {zoo_dir}') from err
    finally:
        socket.setdefaulttimeout(previous)
    return path
