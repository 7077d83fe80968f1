"""Embeddings: the pooled, normed features (timm's pre-logits) that CLIP, SigLIP and DINOv2 users
want, with and without token reduction, and how close the reduced ones stay: the cosine
similarity of each image's reduced embedding to its unreduced one, averaged over a folder of
images (no labels needed).

`embed(net, dataset)` runs any network's `features`; `embedding_similarity(cfg, weights, folder)`
builds everything from a config (what tools/embed.py runs)."""
import os
from dataclasses import asdict, dataclass, field
from typing import List, Optional

import numpy as np

from .builder import build_model, chosen_weights, prepare_for, setup_context
from .checkpoint import load_pretrained
from .config import eval_batch_size
from .data import create_image_dataset
from .evaluate import ForwardTimer
from .flops import count_macs
from .models import Features
from .progress import Progress, image_count
from . import reporting
from .reporting import table

NO_REDUCTION = {"method": "none"}


def unreduced_network(cfg, state):
    """cfg's model without token reduction, with the weights `state` (name -> array)."""
    plain = build_model(cfg, token_reduction=NO_REDUCTION)
    load_pretrained(plain, state)
    return plain


def features_network(cfg, net):
    """The network to run for embeddings: Features(net) in the config's inference form."""
    return prepare_for(cfg, Features(net), "inference")


def embed(features, dataset, what: str = "embed"):
    """-> (embeddings [N, C] float32 of every image of a batched (image, label) dataset, images/s
    of the forward passes, compile excluded), with a progress display named `what`."""
    was_training = features.training
    features.set_train(False)
    timer = ForwardTimer(features)
    batches = []
    try:
        with Progress(what, image_count(dataset)) as progress:
            for images, _ in dataset.create_tuple_iterator(num_epochs=1):
                batches.append(timer(images))
                progress.update(len(batches[-1]))
        speed = timer.images_per_second()
    finally:
        features.set_train(was_training)
    return np.concatenate(batches).astype(np.float32), speed


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of [N, C] arrays, float64 [N]."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@dataclass
class SimilarityMetrics:
    """How close reduced embeddings stay to the unreduced ones over `images` images."""
    images: int
    cosine: float       # mean cosine similarity
    min_cosine: float
    images_per_second: Optional[float] = None


def similarity(reduced: np.ndarray, unreduced: np.ndarray, images_per_second=None) -> SimilarityMetrics:
    cosine = cosine_similarity(reduced, unreduced)
    return SimilarityMetrics(len(cosine), float(cosine.mean()), float(cosine.min()), images_per_second)


@dataclass
class EmbeddingReport:
    """Everything tools/embed.py prints and writes as JSON."""
    model: str
    token_reduction: dict
    checkpoint: Optional[str]
    images_folder: str
    images: int
    embedding_dim: int
    cosine: float
    min_cosine: float
    macs_per_image: int
    macs_per_image_unreduced: int
    images_per_second: Optional[float]
    images_per_second_unreduced: Optional[float]
    left_out: List[str] = field(default_factory=list)  # unreadable images and other files not embedded


def embedding_similarity(cfg, weights, folder):
    """Embed every image below `folder` with cfg's model and weights, with cfg's token reduction
    and without -> (EmbeddingReport, reduced [N, C], unreduced [N, C], files)."""
    weights = chosen_weights(weights, cfg.model.pretrained, needed_for="to embed with")
    setup_context(cfg.system)
    dataset, files = create_image_dataset(cfg.data, folder, cfg.model.img_size, eval_batch_size(cfg))
    net = build_model(cfg, weights=weights)
    plain = unreduced_network(cfg, {p.name: p.asnumpy() for p in net.get_parameters()})  # also random weights
    reduced, speed = embed(features_network(cfg, net), dataset, "embed %s" % cfg.token_reduction.method)
    unreduced, plain_speed = embed(features_network(cfg, plain), dataset, "embed none")
    metrics = similarity(reduced, unreduced, speed)
    report = EmbeddingReport(model=cfg.model.name, token_reduction=cfg.token_reduction.to_dict(),
                             checkpoint=weights, images_folder=folder, images=metrics.images,
                             embedding_dim=reduced.shape[1], cosine=metrics.cosine, min_cosine=metrics.min_cosine,
                             macs_per_image=count_macs(net).total, macs_per_image_unreduced=count_macs(plain).total,
                             images_per_second=speed, images_per_second_unreduced=plain_speed,
                             left_out=dataset.left_out)
    return report, reduced, unreduced, files


def format_report(report: EmbeddingReport) -> str:
    def speed(value):
        return "%.1f" % value if value else "not measured"
    rows = [("model", report.model), ("token reduction", report.token_reduction["method"]),
            ("checkpoint", str(report.checkpoint)), ("images", "%d (%s)" % (report.images, report.images_folder)),
            *[("left out", note) for note in report.left_out],
            ("embedding", "%d values, pooled and normed (timm's pre-logits)" % report.embedding_dim),
            ("cosine similarity to unreduced", "mean %.4f, min %.4f" % (report.cosine, report.min_cosine)),
            ("MACs per image", "%.4f G (unreduced %.4f G)" % (report.macs_per_image / 1e9,
                                                              report.macs_per_image_unreduced / 1e9)),
            ("images/s", "%s (unreduced %s; batch forward, compile excluded)" % (
                speed(report.images_per_second), speed(report.images_per_second_unreduced)))]
    return "\n".join(table(rows, align="left"))


def write_outputs(report: EmbeddingReport, reduced, unreduced, files: List[str], npz=None, json_path=None):
    """The embeddings (npz: files, reduced, unreduced) and the report (JSON), each if asked for."""
    if npz:
        os.makedirs(os.path.dirname(os.path.abspath(npz)), exist_ok=True)
        np.savez(npz, files=np.array(files), reduced=reduced, unreduced=unreduced)
    if json_path:
        reporting.write_json(asdict(report), json_path)
