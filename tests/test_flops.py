"""MAC counting from the token plan, checked against published figures,
hand arithmetic, monotonicity in r, and the token counts a forward pass produces."""
import numpy as np
import pytest
import mindspore as ms

from ppt_ms.flops import ViTSpec, count_macs, count_macs_for, format_macs_table, spec_of
from ppt_ms.models import create_model
from ppt_ms.token_reduction import token_plan

G = 1e9

# Figures published rounded to 0.1 G (DeiT paper; ToMe paper arXiv 2210.09461,
# off-the-shelf DeiT): our count must round to the same value, |ours - published| <= 0.05 G.
ROUNDED_TO_TENTH = [
    ("deit_tiny_patch16_224", None, 1.3),
    ("deit_small_patch16_224", None, 4.6),
    ("deit_base_patch16_224", None, 17.6),
    ("deit_small_patch16_224", {"method": "tome", "r": 8}, 3.4),
    ("deit_small_patch16_224", {"method": "tome", "r": 13}, 2.7),
    ("deit_small_patch16_224", {"method": "tome", "r": 16}, 2.3),
    ("deit_tiny_patch16_224", {"method": "tome", "r": 8}, 0.9),
    ("deit_tiny_patch16_224", {"method": "tome", "r": 12}, 0.8),
    ("deit_tiny_patch16_224", {"method": "tome", "r": 16}, 0.6),
]


@pytest.mark.parametrize("name, token_reduction, published_g", ROUNDED_TO_TENTH)
def test_published_counts_rounded_to_a_tenth(name, token_reduction, published_g):
    total = count_macs_for(name, token_reduction).total
    assert abs(total - published_g * G) <= 0.05 * G, (name, token_reduction, total)


def test_ppt_deit_small_matches_the_readme_within_a_quarter_percent():
    # PPT README: "macs:2.944411999GFLOPs" (torchprofile).  torchprofile also counts
    # LayerNorm and the attention scale, but not the norms, divisions and merge ppt_ms counts.
    total = count_macs_for("deit_small_patch16_224", {"method": "ppt", "r": 50, "layers": [3, 6, 9]}).total
    assert abs(total - 2.944411999 * G) <= 0.0025 * 2.944411999 * G, total


# vit_quickstart at 32 px (64 patches + CLS = 65 tokens): C = 64, H = 2 heads of d = 32, MLP 256, 10 classes, 4 px patches.
def attention(n):
    """qkv + q k^T + attn.v + proj for n tokens, C = 64, H*d = 64."""
    return n * 64 * 192 + 2 * (2 * n * n * 32) + n * 64 * 64


def mlp(n):
    return 2 * n * 64 * 256


def test_quickstart_without_reduction_by_hand():
    patch = 64 * (3 * 4 * 4) * 64
    block = 65 * 64 * 192 + 2 * 65 * 65 * 32 + 2 * 65 * 65 * 32 + 65 * 64 * 64 + 2 * 65 * 64 * 256
    head = 64 * 10
    report = count_macs_for("vit_quickstart", img_size=32)
    assert report.total == patch + 4 * block + head == 15139968
    assert report.final_norm == 0


def test_quickstart_tome_with_source_tracing_by_hand():
    # 28 px -> 7 x 7 = 49 patches + CLS = 50 tokens (N0 = 50 differs from C + 1 = 65 on purpose).
    # ToMe step on n tokens, r = 8, A = ceil(n/2), B = floor(n/2):
    #   head sum n*C + L2-normalise 2*n*d + scores A*B*d
    #   + merge: shares size_i / size'_s (r divides) times x_i - x_s (r*C); the scatter-adds
    #   of tokens, sizes and (traced) source rows are additions, not counted
    steps = [
        50 * 64 + 2 * 50 * 32 + 25 * 25 * 32 + 8 * 64 + 8,
        42 * 64 + 2 * 42 * 32 + 21 * 21 * 32 + 8 * 64 + 8,
        34 * 64 + 2 * 34 * 32 + 17 * 17 * 32 + 8 * 64 + 8,
        26 * 64 + 2 * 26 * 32 + 13 * 13 * 32 + 8 * 64 + 8,
    ]
    blocks = [attention(50) + steps[0] + mlp(42), attention(42) + steps[1] + mlp(34),
              attention(34) + steps[2] + mlp(26), attention(26) + steps[3] + mlp(18)]
    expected = 49 * 48 * 64 + sum(blocks) + 64 * 10
    report = count_macs_for("vit_quickstart", {"method": "tome", "r": 8, "trace_source": True}, img_size=28)
    assert [b.reduction for b in report.blocks] == steps
    assert report.total == expected


def test_quickstart_ppt_by_hand():
    # PPT r = 10 at blocks 1 and 2: 65 -> 65 -> 55 -> 45 -> 45.  Step on n tokens:
    #   scores: head sum of the CLS row H*n + value norms n*C + product n + sum and divide 2*(n-1)
    #   variance 2*(n-1); then the whole ToMe branch (no tracing), and the 0/1 switch of the
    #   r merged sizes for pruned images.
    step_65 = (2 * 65 + 65 * 64 + 65 + 2 * 64) + 2 * 64 + \
        (65 * 64 + 2 * 65 * 32 + 33 * 32 * 32 + 10 * 64 + 10) + 10
    step_55 = (2 * 55 + 55 * 64 + 55 + 2 * 54) + 2 * 54 + \
        (55 * 64 + 2 * 55 * 32 + 28 * 27 * 32 + 10 * 64 + 10) + 10
    expected = 196608 + (attention(65) + mlp(65)) + (attention(65) + step_65 + mlp(55)) \
        + (attention(55) + step_55 + mlp(45)) + (attention(45) + mlp(45)) + 640
    report = count_macs_for("vit_quickstart", {"method": "ppt", "r": 10, "layers": [1, 2]}, img_size=32)
    assert [b.reduction for b in report.blocks] == [0, step_65, step_55, 0]
    assert report.total == expected


def test_quickstart_pruning_by_hand():
    # prune r = [20, 5] at blocks 0 and 3: 65 -> 45 -> 45 -> 45 -> 40; the step is the scores only.
    step_65 = 2 * 65 + 65 * 64 + 65 + 2 * 64
    step_45 = 2 * 45 + 45 * 64 + 45 + 2 * 44
    expected = 196608 + (attention(65) + step_65 + mlp(45)) + 2 * (attention(45) + mlp(45)) \
        + (attention(45) + step_45 + mlp(40)) + 640
    report = count_macs_for("vit_quickstart", {"method": "prune", "r": [20, 5], "layers": [0, 3]}, img_size=32)
    assert report.total == expected


def deit_small_spec(method, r, layers=()):
    return ViTSpec(num_patches=196, patch_size=16, in_chans=3, embed_dim=384, num_heads=6, mlp_hidden=1536,
                   num_classes=1000,
                   plan=tuple(token_plan(12, 197, method, r, layers)))


@pytest.mark.parametrize("method, rs, layers", [
    ("tome", range(0, 17), ()),
    ("ppt", range(0, 51, 5), (3, 6, 9)),
    ("prune", range(0, 51, 5), (3, 6, 9)),
])
def test_more_reduction_means_fewer_macs(method, rs, layers):
    totals = [count_macs(deit_small_spec(method, r, layers)).total for r in rs]
    assert all(later < earlier for earlier, later in zip(totals, totals[1:])), totals


def test_spec_read_from_a_net_equals_the_one_written_by_hand():
    net = create_model("deit_small_patch16_224", token_reduction={"method": "ppt", "r": 50})
    assert spec_of(net) == deit_small_spec("ppt", 50, (3, 6, 9))


def test_token_counts_are_the_plans_and_what_the_blocks_produce():
    tr = {"method": "ppt", "r": [12, 7], "layers": [0, 2]}
    net = create_model("vit_quickstart", img_size=32, token_reduction=tr)
    report = count_macs(net)
    assert [(b.tokens_in, b.tokens_out) for b in report.blocks] == [(65, 53), (53, 53), (53, 46), (46, 46)]
    assert [(b.tokens_in, b.tokens_out) for b in report.blocks] == [(p.tokens_in, p.tokens_out) for p in net.plan]

    images = ms.Tensor(np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32))
    x = net.embed(images)
    size = ms.ops.ones((2, x.shape[1], 1), ms.float32)
    source = ms.ops.zeros((1,), ms.float32)
    produced = []
    for block in net.blocks:
        x, size, source = block(x, size, source)
        produced.append(x.shape[1])
    assert produced == report.tokens_per_block


def test_distilled_model_has_two_heads_and_two_prefix_tokens():
    plain = count_macs_for("deit_tiny_patch16_224")
    distilled = count_macs_for("deit_tiny_distilled_patch16_224")
    assert distilled.head == 2 * 192 * 1000
    assert distilled.blocks[0].tokens_in == 198
    assert distilled.patch_embed == plain.patch_embed == 196 * 768 * 192


def test_model_resolution_and_classes_are_the_defaults():
    assert count_macs_for("deit_base_patch16_384").blocks[0].tokens_in == 24 * 24 + 1
    assert count_macs_for("vit_quickstart").head == 64 * 10
    report = count_macs_for("deit_small_patch16_224", num_classes=100)
    assert report.head == 384 * 100
    assert count_macs_for("vit_quickstart", img_size=64).blocks[0].tokens_in == 16 * 16 + 1


def test_clear_errors():
    with pytest.raises(TypeError, match="VisionTransformer or a ViTSpec"):
        count_macs(object())
    with pytest.raises(ValueError, match="receives 190 tokens, but 197 arrive"):
        ViTSpec(num_patches=196, patch_size=16, in_chans=3, embed_dim=384, num_heads=6, mlp_hidden=1536,
                num_classes=1000, plan=tuple(token_plan(12, 190)))
    with pytest.raises(ValueError, match="unknown model"):
        count_macs_for("deit_smal_patch16_224")


def test_table_lists_every_block_and_the_exact_total():
    report = count_macs_for("vit_quickstart", {"method": "tome", "r": 8}, img_size=32)
    table = format_macs_table(report)
    lines = table.splitlines()
    assert sum(1 for line in lines if "->" in line) == 4
    assert "65->57" in table and "33->25" not in table and "41->33" in table
    assert "(%d MACs)" % report.total in lines[-1]
