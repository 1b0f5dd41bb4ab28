"""Running a model over a loader and collecting per-video scores (validation and testing)."""
import numpy as np
import torch

from .distributed import gather_to_main
from .progress import progress


@torch.no_grad()
def collect_scores(model, loader, normalize, desc='eval', show_progress=True):
    """Softmax scores averaged over each video's views.

    Batches are uint8 [B, C, T, H, W] (one view) or [B, V, C, T, H, W] (multi-view testing);
    `normalize` (a ClipNormalizer) turns them into the model's float input on its device.
    A batch's optional 4th field marks samples that could not be read (>= 0, see
    VideoDataset): their rows are scored but flagged. Returns (scores [N, K] float32,
    labels [N], dataset indices [N], unreadable [N] bool) in dataset order.
    """
    model.eval()
    all_scores, all_labels, all_indices, all_bad = [], [], [], []
    for clips, labels, indices, *bad in progress(loader, desc=desc, disable=not show_progress):
        views = 1
        if clips.dim() == 6:
            views = clips.shape[1]
            clips = clips.flatten(0, 1)
        logits = model(normalize(clips))
        probs = torch.softmax(logits.float(), dim=1)
        all_scores.append(probs.view(-1, views, probs.shape[1]).mean(dim=1).cpu())
        all_labels.append(labels)
        all_indices.append(indices)
        all_bad.append(bad[0] >= 0 if bad else torch.zeros(len(indices), dtype=torch.bool))
    scores = torch.cat(all_scores).numpy()
    labels = torch.cat(all_labels).numpy()
    indices = torch.cat(all_indices).numpy()
    unreadable = torch.cat(all_bad).numpy()
    order = np.argsort(indices, kind='stable')
    return scores[order], labels[order], indices[order], unreadable[order]


def collect_scores_everywhere(model, loader, normalize, ctx, desc='eval'):
    """`collect_scores` over this process's shard of the loader, gathered on the main process.

    The shards (EpochShuffleSampler without padding) hold every video exactly once, which is
    checked here: a metric never counts a video twice or misses one. Videos that could not be
    read are left out. Returns (scores, labels, indices, unreadable indices) in dataset order on
    the main process, None on the others.
    """
    local = collect_scores(model, loader, normalize, desc, show_progress=ctx.is_main)
    parts = gather_to_main(local, ctx)
    if parts is None:
        return None
    scores, labels, indices, unreadable = (np.concatenate([part[i] for part in parts])
                                           for i in range(4))
    order = np.argsort(indices, kind='stable')
    expected = len(loader.dataset)
    if len(indices) != expected or not np.array_equal(indices[order], np.arange(expected)):
        raise RuntimeError(f'the {ctx.world_size} processes scored {len(indices)} videos '
                           f'({len(np.unique(indices))} distinct) of {expected}')
    keep = order[~unreadable[order]]
    return scores[keep], labels[keep], indices[keep], indices[order][unreadable[order]]
