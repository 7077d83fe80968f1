"""Scan an ImageNet-style folder ``root/<split>/<class>/<image>`` before any pipeline runs.

Every problem a user can fix (missing split folder, no class folders, an empty class,
classes that differ between train and val) raises a ``ValueError`` naming the path.
Unreadable images are skipped with one warning per split: zero-byte files are always
caught (a ``stat`` per file, cheap even for ImageNet); a full decode check runs only
with ``verify_images=True``.
"""
import os
import warnings
from dataclasses import dataclass, field
from typing import List, Tuple

from PIL import Image

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp', '.gif')
_WARNING_EXAMPLES = 5


@dataclass(frozen=True)
class FolderScan:
    """Result of scanning one split.

    samples: [(image path, class index)], class indices follow the sorted class folder names.
    skipped: [(image path, reason)] for files that were found unreadable.
    """
    split_dir: str
    class_names: List[str]
    samples: List[Tuple[str, int]] = field(repr=False)
    skipped: List[Tuple[str, str]] = field(repr=False)


def is_image_file(name):
    """True for a visible file name with a known image extension (any letter case)."""
    return not name.startswith('.') and name.lower().endswith(IMAGE_EXTENSIONS)


def list_class_names(split_dir):
    """Sorted names of the visible sub-folders of ``split_dir``; raises if there are none."""
    if not os.path.isdir(split_dir):
        raise ValueError(f"split folder not found: '{split_dir}' (expected root/<split>/<class>/<image>)")
    class_names = sorted(entry.name for entry in os.scandir(split_dir)
                         if entry.is_dir() and not entry.name.startswith('.'))
    if not class_names:
        loose = [name for name in os.listdir(split_dir) if is_image_file(name)]
        hint = (f"; it holds {len(loose)} loose images: put them in one sub-folder per class"
                if loose else '')
        raise ValueError(f"no class folders in '{split_dir}'{hint}")
    return class_names


def image_problem(path, verify_images=False):
    """Why ``path`` cannot be used as an image, or None if it passes the check.

    Always checks that the file is not empty; with ``verify_images`` also lets PIL verify
    the container and decode every pixel (catches truncated or corrupt files).
    """
    try:
        if os.path.getsize(path) == 0:
            return 'zero bytes'
        if verify_images:
            with Image.open(path) as image:
                image.verify()
            with Image.open(path) as image:
                image.load()
    except Exception as error:  # PIL raises many types for corrupt files
        return f'{type(error).__name__}: {error}'
    return None


def image_files(class_dir):
    """Image file paths below ``class_dir`` (recursively), in sorted order."""
    paths = []
    for folder, sub_folders, names in os.walk(class_dir, followlinks=True):
        sub_folders[:] = sorted(name for name in sub_folders if not name.startswith('.'))
        paths.extend(os.path.join(folder, name) for name in sorted(names) if is_image_file(name))
    return paths


def skipped_examples(skipped) -> str:
    """The first few [(path, reason)] of unreadable images as 'path (reason); ...; and N more'."""
    examples = '; '.join(f'{path} ({reason})' for path, reason in skipped[:_WARNING_EXAMPLES])
    more = f'; and {len(skipped) - _WARNING_EXAMPLES} more' if len(skipped) > _WARNING_EXAMPLES else ''
    return examples + more


@dataclass(frozen=True)
class ImageList:
    """The images of a folder (or one image file) given for embeddings or a label-free sweep.

    files: readable images in sorted order; skipped: [(path, reason)] found unreadable;
    ignored: {extension: count} of visible files that are not images of a supported kind."""
    files: List[str]
    skipped: List[Tuple[str, str]]
    ignored: dict

    def notes(self) -> List[str]:
        """What was left out, one line each (empty when nothing was)."""
        out = []
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} unreadable image(s): {skipped_examples(self.skipped)}")
        if self.ignored:
            kinds = ', '.join(f'{ext or "no extension"}: {n}' for ext, n in sorted(self.ignored.items()))
            out.append(f"ignored {sum(self.ignored.values())} file(s) that are not images of a supported kind "
                       f"({kinds}; supported: {', '.join(IMAGE_EXTENSIONS)})")
        return out


def list_images(path, verify_images=False) -> ImageList:
    """Every image below the folder `path` (read recursively, sorted), or `path` itself when it is an
    image file; unreadable images and files of other kinds are counted, not silently dropped."""
    if os.path.isfile(path):
        if not is_image_file(os.path.basename(path)):
            raise ValueError(f"'{path}' is not an image of a supported kind ({', '.join(IMAGE_EXTENSIONS)})")
        candidates, ignored = [path], {}
    elif os.path.isdir(path):
        candidates, ignored = image_files(path), {}
        for folder, sub_folders, names in os.walk(path, followlinks=True):
            sub_folders[:] = [name for name in sub_folders if not name.startswith('.')]
            for name in names:
                if not name.startswith('.') and not is_image_file(name):
                    extension = os.path.splitext(name)[1].lower()
                    ignored[extension] = ignored.get(extension, 0) + 1
    else:
        raise ValueError(f"no such image file or folder: '{path}'")
    problems = [(candidate, image_problem(candidate, verify_images)) for candidate in candidates]
    return ImageList([p for p, problem in problems if problem is None],
                     [(p, problem) for p, problem in problems if problem is not None], ignored)


def scan_split(root, split, verify_images=False):
    """Scan ``root/split`` into a :class:`FolderScan`, skipping unreadable images with a warning."""
    split_dir = os.path.join(root, split)
    class_names = list_class_names(split_dir)
    samples, skipped = [], []
    for label, class_name in enumerate(class_names):
        class_dir = os.path.join(split_dir, class_name)
        paths = image_files(class_dir)
        if not paths:
            raise ValueError(f"class folder '{class_dir}' contains no images "
                             f"(extensions: {', '.join(IMAGE_EXTENSIONS)})")
        usable = 0
        for path in paths:
            problem = image_problem(path, verify_images)
            if problem is None:
                samples.append((path, label))
                usable += 1
            else:
                skipped.append((path, problem))
        if usable == 0:
            raise ValueError(f"class folder '{class_dir}' has no readable images "
                             f"({len(paths)} found, all skipped)")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable images in '{split_dir}': {skipped_examples(skipped)}",
                      stacklevel=2)
    return FolderScan(split_dir, class_names, samples, skipped)


def scan_image_folder(root, split, verify_images=False):
    """List the images of ``root/split``.

    Returns (samples, class_names): samples is [(path, class index)] with class indices
    following the sorted class folder names. See :func:`scan_split` for skipped files.
    """
    scan = scan_split(root, split, verify_images)
    return scan.samples, scan.class_names


def check_splits_match(train_classes, val_classes, train_name='train', val_name='val'):
    """Raise ``ValueError`` listing the differences unless both splits have the same classes."""
    only_train = sorted(set(train_classes) - set(val_classes))
    only_val = sorted(set(val_classes) - set(train_classes))
    if only_train or only_val:
        raise ValueError(f"class folders differ between '{train_name}' and '{val_name}': "
                         f"only in {train_name}: {only_train}; only in {val_name}: {only_val}")
