"""Throughput of the evaluation data pipeline (`benchmark.data_pipeline`): `create_dataset` over
the val split of data.path with the config's transforms, batch size and workers; no model."""
import os
import time

import numpy as np

from ..data.loader import create_dataset, data_workers, scan_role
from ..data.transforms import crop_only_resize
from ..reporting import table
from .run import cpu_model


def _rate_after_first_batch(dataset):
    """Images per second from the first batch's arrival (start-up excluded) to the last; image count."""
    iterator = dataset.create_tuple_iterator(output_numpy=True, num_epochs=1)
    first = len(next(iterator)[0])
    start, count = time.perf_counter(), 0
    for images, _ in iterator:
        count += len(images)
    if count == 0:
        raise ValueError("the val split gives a single batch; benchmark.data_pipeline needs at least two "
                         "(lower data.batch_size)")
    return count / (time.perf_counter() - start), first + count


def time_eval_pipeline(cfg, rounds):
    """`rounds` passes over the val split; returns the JSON-ready report."""
    data, img_size = cfg["data"], cfg["model"]["img_size"]
    num_classes = len(scan_role(data, "val").class_names)
    rates, images = [], 0
    for _ in range(rounds):
        rate, images = _rate_after_first_batch(create_dataset(data, "val", img_size, num_classes, training=False))
        rates.append(rate)
    return {
        "task": "eval data pipeline", "path": data["path"], "split": data["val_split"], "images": images,
        "img_size": img_size, "batch_size": data["batch_size"], "num_workers": data_workers(data),
        "resize": "crop-only C++ bicubic" if crop_only_resize(data["interpolation"]) else "MindSpore Resize + crop",
        "rounds": rounds, "images_per_s": {"median": float(np.median(rates)), "min": min(rates), "max": max(rates)},
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count()}}


def format_pipeline(report):
    r = report
    lines = ["%s: %s/%s, %d images -> %d px, batch %d, %d workers, resize: %s; %s, %s CPUs"
             % (r["task"], r["path"], r["split"], r["images"], r["img_size"], r["batch_size"], r["num_workers"],
                r["resize"], r["machine"]["cpu"], r["machine"]["cpu_count"])]
    rate = r["images_per_s"]
    lines += table([("%.1f" % rate["median"], "%.1f" % rate["min"], "%.1f" % rate["max"], r["rounds"])],
                   ("img/s median", "min", "max", "rounds"))
    return "\n".join(lines)
