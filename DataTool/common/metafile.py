"""Writing metafiles (`<path> <num_frames> <label>`) and classInd.txt (`<index> <name>`)."""
import os
import os.path as osp


def write_metafile(path, samples):
    """samples: iterable of (relative path, num_frames, label); label None writes an unlabelled
    line `<path> <num_frames>` (pre-training). Written atomically."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp_path = path + '.tmp'
    with open(tmp_path, 'w', encoding='utf-8') as handle:
        for rel_path, num_frames, label in samples:
            handle.write(f'{rel_path} {int(num_frames)}' +
                         ('\n' if label is None else f' {int(label)}\n'))
    os.replace(tmp_path, path)


def write_class_index(path, class_names):
    """0-based indices, matching the metafile labels."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        for index, name in enumerate(class_names):
            handle.write(f'{index} {name}\n')
