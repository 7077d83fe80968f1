"""Data: ImageNet-style folders -> MindSpore pipelines with the DeiT transforms, and the digits example set."""
from .example_digits import make_example_dataset
from .image_folder import IMAGE_EXTENSIONS, FolderScan, check_splits_match, scan_image_folder, scan_split
from .loader import create_dataset, create_image_dataset
from .mixup import BatchMixup, smoothed_one_hot
from .source import pipeline_error_message
from .rand_augment import parse_rand_augment
from .summary import dataset_summary, format_summary
from .synthetic import sample_images
from .transforms import build_eval_transforms, build_train_transforms

__all__ = [
    'IMAGE_EXTENSIONS', 'FolderScan', 'BatchMixup', 'build_eval_transforms', 'build_train_transforms',
    'check_splits_match', 'create_dataset', 'create_image_dataset', 'dataset_summary', 'format_summary', 'make_example_dataset',
    'parse_rand_augment', 'pipeline_error_message', 'sample_images', 'scan_image_folder', 'scan_split',
    'smoothed_one_hot',
]
