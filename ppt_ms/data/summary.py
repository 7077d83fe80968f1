"""Counts per split and class, and the files skipped as unreadable, for logs and the CLI."""
from collections import Counter

from .image_folder import check_splits_match, scan_split

_LISTED_SKIPS = 5


def dataset_summary(root, splits=('train', 'val'), verify_images=False):
    """Scan the given split folders of ``root`` and check they share their classes.

    Returns {'root', 'classes', 'splits': {split: {'images', 'per_class', 'skipped'}}} where
    per_class maps class name -> image count and skipped is [(path, reason)].
    """
    scans = {split: scan_split(root, split, verify_images) for split in splits}
    first = splits[0]
    for split in splits[1:]:
        check_splits_match(scans[first].class_names, scans[split].class_names, first, split)
    summary = {'root': str(root), 'classes': scans[first].class_names, 'splits': {}}
    for split, scan in scans.items():
        counts = Counter(label for _, label in scan.samples)
        summary['splits'][split] = {
            'images': len(scan.samples),
            'per_class': {name: counts[label] for label, name in enumerate(scan.class_names)},
            'skipped': list(scan.skipped),
        }
    return summary


def format_summary(summary):
    """Human-readable multi-line text of a :func:`dataset_summary` result."""
    lines = [f"data set '{summary['root']}': {len(summary['classes'])} classes"]
    for split, info in summary['splits'].items():
        per_class = info['per_class'].values()
        lines.append(f"  {split}: {info['images']} images (per class {min(per_class)}-{max(per_class)}), "
                     f"{len(info['skipped'])} skipped as unreadable")
        lines += [f'    skipped {path}: {reason}' for path, reason in info['skipped'][:_LISTED_SKIPS]]
        if len(info['skipped']) > _LISTED_SKIPS:
            lines.append(f"    ... and {len(info['skipped']) - _LISTED_SKIPS} more")
    return '\n'.join(lines)
