"""Embeddings (timm's pre-logits) with and without token reduction: the API against the NumPy
reference and timm's logits, tools/embed.py and the embedding-similarity sweep against NumPy."""
import json

import numpy as np
import pytest
import mindspore as ms
from safetensors.numpy import load_file, save_file

from helpers import numpy_reference as ref
from helpers.paths import QUICKSTART, load_tool
from test_families import ARCHITECTURE, FAMILIES, MANIFEST
from ppt_ms.checkpoint import load_pretrained
from ppt_ms.models import Features, create_model


@pytest.mark.parametrize("name", ["dinov2_reg", "siglip", "siglip_gap"])
def test_features_are_the_pre_logits(name, pynative):
    """With ToMe, the embedding is the reference's pooled, normed vector (class token, mean of the
    tokens left); for every head, timm's classifier applied to it gives timm's logits."""
    spec = MANIFEST["families"][name]
    net = create_model(spec["model"], **spec["create_kwargs"], token_reduction=spec["cases"]["tome"])
    params = load_file(str(FAMILIES / name / "weights.safetensors"))
    load_pretrained(net, params)
    net.set_train(False)
    images = np.load(FAMILIES / spec["inputs"])
    features = Features(net)(ms.Tensor(images)).asnumpy()
    assert features.shape == (len(images), spec["create_kwargs"]["embed_dim"])
    logits = features @ params["head.weight"].T + params["head.bias"]
    np.testing.assert_allclose(logits, np.load(FAMILIES / name / "tome.npz")["logits"], rtol=0, atol=1e-4)
    if name in ARCHITECTURE:
        traces = ref.forward(params, images, spec["create_kwargs"]["num_heads"], ref.Reduction("tome", 4),
                             ARCHITECTURE[name])
        np.testing.assert_allclose(features, [t.pre_logits for t in traces], rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def quickstart_weights(tmp_path_factory):
    """vit_quickstart weights under which ToMe changes the embedding (large q/k weights)."""
    path = tmp_path_factory.mktemp("weights") / "quickstart.safetensors"
    save_file(ref.random_state_dict(ref.timm_vit_shapes(24, 4, 64, 4, 10), seed=3, qk_gain=4.0), str(path))
    return str(path)


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_embed_tool_writes_both_embeddings_and_their_similarity(digits_subset, quickstart_weights, tmp_path,
                                                                 capsys):
    images = digits_subset("embed", {"val": 2}) / "val"
    out, report = tmp_path / "emb.npz", tmp_path / "report.json"
    argv = ["--config", QUICKSTART, "--ckpt", quickstart_weights, "--images", str(images), "--out", str(out),
            "--json", str(report), "--token_reduction.method", "tome", "--token_reduction.r", "6"]
    assert load_tool("embed").main(argv) == 0
    assert "cosine similarity to unreduced" in capsys.readouterr().out
    saved, summary = np.load(out), json.loads(report.read_text())
    assert saved["reduced"].shape == saved["unreduced"].shape == (20, 64) and len(saved["files"]) == 20
    similarity = cosine(saved["reduced"].astype(np.float64), saved["unreduced"].astype(np.float64))
    assert 0.5 < similarity.mean() < 0.9999
    assert summary["cosine"] == pytest.approx(similarity.mean(), abs=1e-6)
    assert summary["min_cosine"] == pytest.approx(similarity.min(), abs=1e-6)
    assert summary["macs_per_image"] < summary["macs_per_image_unreduced"]


def test_sweep_scores_settings_by_embedding_similarity(digits_subset, quickstart_weights, tmp_path, capsys):
    images = digits_subset("sweep_embed", {"val": 2}) / "val"
    argv = ["--config", QUICKSTART, "--ckpt", quickstart_weights, "--images", str(images), "--out", str(tmp_path),
            "--grid", "token_reduction.r=6", "--methods", "none,tome", "--target_macs", "0.0075"]
    assert load_tool("sweep").main(argv) == 0
    rows = json.loads((tmp_path / "sweep.json").read_text())["rows"]
    cosines = {row["label"]: row["cosine"] for row in rows}
    assert cosines["none"] == pytest.approx(1.0, abs=1e-6)
    assert 0.5 < cosines["tome r=6"] < 0.9999
    assert "most similar setting meeting the target: tome r=6" in capsys.readouterr().out
    assert (tmp_path / "similarity_vs_macs.png").exists()
    assert "cosine" in (tmp_path / "sweep.csv").read_text().splitlines()[0]


@pytest.mark.parametrize("tool, extra", [("embed", []), ("sweep", ["--grid", "token_reduction.r=6"])])
def test_embedding_tools_refuse_to_run_without_weights(tool, extra, digits_subset, tmp_path, capsys):
    """Random weights would report a similarity near 1 that means nothing: one line, exit 1, nothing written."""
    images = digits_subset("no_weights_%s" % tool, {"val": 1}) / "val"
    argv = ["--config", QUICKSTART, "--images", str(images), "--out", str(tmp_path / "out"), *extra]
    assert load_tool(tool).main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no weights") and "--ckpt" in err[-1] and "model.pretrained" in err[-1]
    assert not (tmp_path / "out").exists()


def test_embed_counts_what_it_leaves_out_and_takes_one_image_file(digits_subset, quickstart_weights, tmp_path,
                                                                   capsys):
    """Unreadable images (verify_images) and files of other kinds are named in the report, not dropped
    silently; a GIF is an image; --images may name a single image file."""
    from PIL import Image
    folder = tmp_path / "photos"
    folder.mkdir()
    source = sorted((digits_subset("left_out", {"val": 1}) / "val").rglob("*.png"))
    for i, path in enumerate(source[:2]):
        (folder / ("%d.png" % i)).write_bytes(path.read_bytes())
    Image.open(source[2]).save(folder / "2.gif")
    (folder / "broken.png").write_bytes(source[3].read_bytes()[:60])  # truncated
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    report = tmp_path / "report.json"
    argv = ["--config", QUICKSTART, "--ckpt", quickstart_weights, "--images", str(folder), "--json", str(report),
            "--data.verify_images", "true"]
    assert load_tool("embed").main(argv) == 0
    out, summary = capsys.readouterr().out, json.loads(report.read_text())
    assert summary["images"] == 3 and "3 (" in out
    assert any("skipped 2 unreadable image(s)" in note and "broken.png" in note and "empty.jpg" in note
               for note in summary["left_out"])
    assert any("ignored 1 file(s)" in note and ".txt: 1" in note for note in summary["left_out"])
    assert "left out" in out
    single = str(folder / "0.png")
    assert load_tool("embed").main(argv[:5] + [single, "--json", str(report)]) == 0
    assert json.loads(report.read_text())["images"] == 1
