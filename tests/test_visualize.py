"""Token maps: source map -> patch labels -> pictures, checked against hand-made
maps and pixel rules; per-block sources checked against truncated copies of
the model; the tool end to end on the tiny quick-start ViT."""
import os
import subprocess
import sys

import numpy as np
import pytest
import mindspore as ms
from PIL import Image

from ppt_ms.builder import build_model
from ppt_ms.config import make_config
from ppt_ms.models import TokenTrace, create_model
from ppt_ms.visualize import (BORDER, PRUNED, PRUNED_GREY, BlockSources, group_colours, load_image, palette,
                              patch_groups, prepare, token_panel, visualize)
from ppt_ms.visualize.run import traced_config
from helpers.paths import ROOT

GREY, BLACK = np.array(PRUNED_GREY), np.array(BORDER)

# A 4x4 grid, hand-made: token 1 = patches (0,0) (0,1) (1,0); token 2 = (1,1);
# token 3 = (0,3) (1,3) (2,3) (3,3); token 4 = (3,0); the rest pruned.
LABELS = np.array([[1, 1, -1, 3],
                   [1, 2, -1, 3],
                   [-1, -1, -1, 3],
                   [4, -1, -1, 3]])


def source_for(labels, num_prefix_tokens, rows):
    """A [rows, prefix + patches] source map whose row t covers the patches labelled t."""
    flat = labels.ravel()
    source = np.zeros((rows, num_prefix_tokens + flat.size), np.float32)
    source[np.arange(num_prefix_tokens), np.arange(num_prefix_tokens)] = 1
    for patch, token in enumerate(flat):
        if token >= 0:
            source[token, num_prefix_tokens + patch] = 1
    return source


# ---------------------------------------------------------------- patch_groups

def test_patch_groups_reads_a_hand_made_source_map():
    # 3x3 grid, CLS + 3 tokens, rows in a shuffled order as after ToMe/pruning
    source = np.zeros((4, 10), np.float32)
    source[0, 0] = 1                   # CLS
    source[2, [1, 2, 4]] = 1           # patches 0, 1, 3
    source[1, 5] = 1                   # patch 4
    source[3, 9] = 1                   # patch 8
    expected = np.array([[2, 2, -1], [2, 1, -1], [-1, -1, 3]])
    np.testing.assert_array_equal(patch_groups(source, 1, (3, 3)), expected)


def test_patch_groups_with_a_distillation_token():
    source = source_for(LABELS, 2, 5)
    np.testing.assert_array_equal(patch_groups(source, 2, (4, 4)), LABELS)


def test_patch_groups_rejects_overlap_and_wrong_shape():
    source = source_for(LABELS, 1, 5)
    source[2, 1] = 1  # patch 0 now in tokens 1 and 2
    with pytest.raises(ValueError, match="patch 0 is covered by 2 tokens"):
        patch_groups(source, 1, (4, 4))
    with pytest.raises(ValueError, match="does not fit"):
        patch_groups(source, 1, (3, 3))


# ---------------------------------------------------------------- panels

def cell_pixels(panel, row, col, cell):
    return panel[row * cell:(row + 1) * cell, col * cell:(col + 1) * cell]


def expected_border(labels, cell):
    """Pixel (y, x) is a border pixel iff it is the first column of a patch whose
    left neighbour has another label, or the first row of a patch whose upper
    neighbour has another label."""
    gh, gw = labels.shape
    mask = np.zeros((gh * cell, gw * cell), bool)
    for y in range(gh * cell):
        for x in range(gw * cell):
            r, c = y // cell, x // cell
            vertical = x % cell == 0 and c > 0 and labels[r, c - 1] != labels[r, c]
            horizontal = y % cell == 0 and r > 0 and labels[r - 1, c] != labels[r, c]
            mask[y, x] = vertical or horizontal
    return mask


def test_palette_panel_matches_the_map():
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    cell = 8  # patch 4, scale 2
    panel = np.array(token_panel(image, LABELS, 4, 2, "palette"))
    assert panel.shape == (32, 32, 3)

    border = expected_border(LABELS, cell)
    assert border[3, 16] and not border[3, 8]       # (0,1)|(0,2) differ, (0,0)|(0,1) do not
    np.testing.assert_array_equal(np.all(panel == BLACK, axis=-1), border)

    interior = ~border
    grey = np.all(panel == GREY, axis=-1) & interior
    expected_grey = np.kron(LABELS == PRUNED, np.ones((cell, cell), bool)) & interior
    np.testing.assert_array_equal(grey, expected_grey)

    coloured = panel[interior & ~grey]
    distinct = {tuple(p) for p in coloured}
    assert len(distinct) == 4  # tokens 1..4 each cover at least one patch
    for token in (1, 2, 3, 4):
        colours = {tuple(p) for (r, c) in zip(*np.nonzero(LABELS == token))
                   for p in cell_pixels(panel, r, c, cell)[interior[r * cell:(r + 1) * cell,
                                                                    c * cell:(c + 1) * cell]]}
        assert len(colours) == 1, "token %d drawn in %d colours" % (token, len(colours))


def test_mean_fill_is_the_mean_colour_of_the_group():
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    colours = group_colours(LABELS, image, 4, "mean")
    group_one = np.concatenate([image[0:4, 0:4], image[0:4, 4:8], image[4:8, 0:4]]).reshape(-1, 3)
    assert colours[1] == tuple(np.rint(group_one.mean(axis=0)).astype(int))
    group_three = image[:, 12:16].reshape(-1, 3)
    assert colours[3] == tuple(np.rint(group_three.mean(axis=0)).astype(int))
    assert set(colours) == {1, 2, 3, 4}
    panel = np.array(token_panel(image, LABELS, 4, 1, "mean"))
    np.testing.assert_array_equal(panel[1, 1], colours[1])  # inside patch (0,0)
    np.testing.assert_array_equal(panel[5, 5], colours[2])
    np.testing.assert_array_equal(panel[9, 9], GREY)


def test_palette_is_distinct_deterministic_and_never_grey():
    colours = palette(600)
    assert len(set(colours)) == 600
    assert colours == palette(600)
    assert all(len(set(c)) > 1 for c in colours)  # never R == G == B: not grey, black or white
    with pytest.raises(ValueError, match="fill must be one of"):
        group_colours(LABELS, np.zeros((16, 16, 3), np.uint8), 4, "rainbow")


# ---------------------------------------------------------------- with the model

def quickstart_cfg(**token_reduction):
    return make_config({"model": {"name": "vit_quickstart", "num_classes": 10, "img_size": 32},
                        "data": {"crop_pct": 1.0}, "token_reduction": token_reduction})


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    return rng.standard_normal((2, 3, 32, 32)).astype(np.float32)


def traced_net(cfg):
    net = build_model(traced_config(cfg))
    net.set_train(False)
    return net


def truncated_source(net, depth, images):
    """Final source map of a copy of `net` that stops after `depth` blocks."""
    tr = dict(net.token_reduction)
    if tr["method"] != "tome":
        tr["layers"] = [l for l in tr["layers"] if l < depth]
    short = create_model("vit_quickstart", img_size=32, depth=depth, token_reduction=tr)  # as quickstart_cfg
    ms.load_param_into_net(short, {p.name: p for p in net.get_parameters()}, strict_load=False)
    short.set_train(False)
    return TokenTrace(short)(ms.Tensor(images))[2].asnumpy()


# The checks against truncated copies run in PyNative: one graph compile per copy would cost
# more than the whole check.  test_visualize_writes_one_figure_per_image covers graph mode.
def test_block_sources_equal_truncated_models(images, pynative):
    net = traced_net(quickstart_cfg(method="tome", r=8))
    sources, stats = BlockSources(net)(ms.Tensor(images))
    assert [s.shape[1] for s in sources] == [57, 49, 41, 33]
    np.testing.assert_array_equal(sources[-1].asnumpy(), TokenTrace(net)(ms.Tensor(images))[2].asnumpy())
    for depth in (1, 2, 3):
        np.testing.assert_array_equal(sources[depth - 1].asnumpy(), truncated_source(net, depth, images))
    for block, source in enumerate(sources):
        for b in range(2):
            labels = patch_groups(source.asnumpy()[b], 1, (8, 8))
            assert (labels != PRUNED).all()  # ToMe never drops a patch
            assert len(np.unique(labels)) == net.plan[block].tokens_out - 1


@pytest.mark.parametrize("threshold,pooled", [(0.0, False), (1e9, True)])
def test_ppt_branches_show_as_pruned_or_merged(images, pynative, threshold, pooled):
    net = traced_net(quickstart_cfg(method="ppt", r=8, layers=[1, 2], threshold=threshold))
    sources, stats = BlockSources(net)(ms.Tensor(images))
    np.testing.assert_array_equal(stats.asnumpy()[[1, 2], :, 0], float(pooled))
    np.testing.assert_array_equal(sources[2].asnumpy(), truncated_source(net, 3, images))
    for block, removed in ((1, 8), (2, 16)):
        for b in range(2):
            labels = patch_groups(sources[block].asnumpy()[b], 1, (8, 8))
            pruned = int((labels == PRUNED).sum())
            groups = len(np.unique(labels[labels != PRUNED]))
            assert groups == 64 - removed                      # one token per remaining group
            assert pruned == (0 if pooled else removed)
            if not pooled:
                assert np.bincount(labels[labels != PRUNED]).max() == 1  # pruning keeps single patches


def write_png(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path)
    return str(path)


def test_visualize_writes_one_figure_per_image(tmp_path):
    ms.set_context(mode=ms.PYNATIVE_MODE)
    first, second = write_png(tmp_path / "a" / "x.png", 1), write_png(tmp_path / "b" / "x.png", 2)
    cfg = quickstart_cfg(method="ppt", r=8, layers=[1, 2], threshold=0.0)
    net = traced_net(cfg)
    weights = str(tmp_path / "w.ckpt")
    ms.save_checkpoint(net, weights)
    batch, _ = prepare([first, second], cfg["data"], 32)
    sources, _ = BlockSources(net)(ms.Tensor(batch))

    ms.set_context(mode=ms.GRAPH_MODE)  # the product
    written = visualize(cfg, [first, second], str(tmp_path / "out"), weights=weights, fill="palette",
                        title="random weights")
    assert [os.path.basename(p) for p in written] == ["x_tokens.png", "x_2_tokens.png"]
    for b, path in enumerate(written):
        figure = np.array(Image.open(path).convert("RGB"))
        # input + 2 reducing blocks; 32 px enlarged 5x, to the 150 px a panel needs at least (cells of 20 px)
        assert figure.shape[1] == 8 + 3 * (160 + 8)
        labels = patch_groups(sources[2].asnumpy()[b], 1, (8, 8))
        figure_colours = {tuple(p) for p in figure.reshape(-1, 3)}
        group_palette = set(palette(len(np.unique(labels[labels != PRUNED]))))
        assert group_palette <= figure_colours
        assert PRUNED_GREY in figure_colours


def test_prepare_is_the_eval_transform(tmp_path):
    path = write_png(tmp_path / "p.png", 4)
    cfg = quickstart_cfg(method="tome", r=8)
    batch, seen = prepare([path], cfg["data"], 32)
    assert batch.shape == (1, 3, 32, 32) and seen.shape == (1, 32, 32, 3)
    # 40x48 -> shorter side 32 (bicubic) -> 32x38 -> centre crop of 32 columns
    resized = np.array(Image.open(path).resize((38, 32), Image.BICUBIC))[:, 3:35]
    np.testing.assert_allclose(seen[0].astype(int), resized.astype(int), atol=1)


def test_unreadable_images_and_no_reduction_are_clear_errors(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.jpg"):
        load_image(str(text))
    with pytest.raises(ValueError, match="missing.png"):
        load_image(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="no token reduction to visualise"):
        visualize(quickstart_cfg(method="none"), [str(text)], str(tmp_path))


def test_tool_reports_an_unreadable_image(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "visualize.py"), "--config",
                          os.path.join(ROOT, "configs", "quickstart.yaml"), "--image", str(broken),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "cannot read image" in run.stderr and "broken.png" in run.stderr
