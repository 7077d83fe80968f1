"""How far a reduced network's outputs stay from the unreduced network's on the same images,
without labels: the KL divergence of the class distributions for a classifier (the unreduced
network's as the reference), one minus the cosine similarity of the embeddings for a feature
extractor (num_classes 0).  Lower is closer; 0 is the unreduced network itself."""
import numpy as np

from ..models import logits_of


def network_outputs(net, dataset) -> np.ndarray:
    """float64 [N, K]: `net`'s outputs (logits, or embeddings) on every image of a batched dataset."""
    batches = [logits_of(net(images)).asnumpy() for images, _ in dataset.create_tuple_iterator(num_epochs=1)]
    return np.concatenate(batches).astype(np.float64)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def kl_per_image(reference: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """KL(softmax(reference) || softmax(outputs)) of every image [N], in nats."""
    log_p, log_q = _log_softmax(reference), _log_softmax(outputs)
    return (np.exp(log_p) * (log_p - log_q)).sum(axis=1)


def cosine_distance_per_image(reference: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """1 - cos(reference, outputs) of every image [N]."""
    cos = (reference * outputs).sum(axis=1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(outputs, axis=1))
    return 1.0 - cos


def kl_divergence(reference: np.ndarray, outputs: np.ndarray) -> float:
    """Mean over images of KL(softmax(reference) || softmax(outputs)), in nats."""
    return float(kl_per_image(reference, outputs).mean())


def cosine_distance(reference: np.ndarray, outputs: np.ndarray) -> float:
    """Mean over images of 1 - cos(reference, outputs)."""
    return float(cosine_distance_per_image(reference, outputs).mean())


def agreement(reference: np.ndarray, outputs: np.ndarray) -> float:
    """The fraction of images whose top class is the unreduced network's."""
    return float((reference.argmax(axis=1) == outputs.argmax(axis=1)).mean())


class Objective:
    """The divergence for a model with `num_classes` classes (0: embeddings) and its wording."""

    def __init__(self, num_classes: int):
        self.classifier = num_classes > 0
        self.name = "KL divergence to the unreduced class distribution" if self.classifier else \
            "1 - cosine similarity to the unreduced embedding"
        self.short = "KL" if self.classifier else "1 - cosine"

    def per_image(self, reference: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """The divergence of every image [N]."""
        return (kl_per_image if self.classifier else cosine_distance_per_image)(reference, outputs)

    def flipped(self, reference: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """1 where an image's top class is not the unreduced network's, else 0 [N] (all 0 for embeddings)."""
        if not self.classifier:
            return np.zeros(len(reference))
        return (reference.argmax(axis=1) != outputs.argmax(axis=1)).astype(np.float64)

    def __call__(self, reference: np.ndarray, outputs: np.ndarray) -> float:
        return float(self.per_image(reference, outputs).mean())

    def summary(self, reference: np.ndarray, outputs: np.ndarray) -> dict:
        """The held-out report of one schedule: the divergence and, for a classifier, top-1 agreement."""
        result = {"divergence": self(reference, outputs)}
        if self.classifier:
            result["top1_agreement"] = agreement(reference, outputs)
        else:
            result["cosine"] = 1.0 - result["divergence"]
        return result
