"""PPT / ToMe / pruning against the independent NumPy reference, piece by piece
(matching, merging, pruning order, significance scores, variance, proportional
attention, source maps) and as whole reduced forward passes of a tiny ViT.

The reference itself is first checked against the published PyTorch code's
golden outputs (../shared/conformance) when that folder is present.
"""
import json
import os

import numpy as np
import pytest
import mindspore as ms
from mindspore import nn

from helpers import numpy_reference as ref
from helpers.conformance_data import FULL, FULL_PRESENT
from helpers.tiny_vit import TINY, TOLERANCE, build_tiny, load_state_dict, tiny_params
from ppt_ms.models import TokenTrace
from ppt_ms.formulations import FusedReducer, prepare
from ppt_ms.models.attention import Attention
from ppt_ms.token_reduction import PPTReducer, PruneReducer, ToMeReducer, build_reducer, token_plan, tome_schedule
from ppt_ms.token_reduction.matching import bipartite_matching, bipartite_positions
from ppt_ms.token_reduction.prefix import PrefixTokens
from ppt_ms.token_reduction.pruning import keep_by_score
from ppt_ms.token_reduction.significance import score_variance, significance_scores

HEADS = TINY["num_heads"]
PPT_LAYERS = [1, 2]
# Thresholds between the images' score variances (margins >= 13 %, checked in
# `test_tiny_setup_mixes_decisions`), so the batch mixes pooled and pruned images.
PLAIN_SEED, PLAIN_THRESHOLD = 1, 1.08e-4
DISTILLED_SEED, DISTILLED_THRESHOLD = 1, 1.94e-4


def tensors(*arrays):
    return [ms.Tensor(a) for a in arrays]


# --------------------------------------------------------------------------- the reference vs the published code

CONFORMANCE = str(FULL)


@pytest.mark.skipif(not FULL_PRESENT, reason="full conformance directory %s not present" % FULL)
@pytest.mark.parametrize("case_name, images", [("ppt_mixed_trace_per_image", [0, 4, 5, 11]),
                                               ("tome_r16_dec", [0, 7])])
def test_reference_reproduces_published_code(case_name, images):
    """The NumPy reference, fed the conformance weights, gives the published
    PPT / ToMe logits, token counts, decisions, variances, sizes and sources."""
    from safetensors.numpy import load_file
    with open(os.path.join(CONFORMANCE, "manifest.json")) as f:
        case = next(c for c in json.load(f)["cases"] if c["name"].endswith("/" + case_name))
    golden = np.load(os.path.join(CONFORMANCE, case["file"]))
    params = load_file(os.path.join(CONFORMANCE, "deit_tiny_patch16_224.safetensors"))
    p = case["params"]
    if case["method"] == "tome":
        reduction = ref.Reduction("tome", tuple(p["r"]))
    else:
        reduction = ref.Reduction("ppt", p["r"], p["layers"], p["threshold"])
    traces = ref.forward(params, np.load(os.path.join(CONFORMANCE, "inputs.npy"))[images], 3, reduction)
    for trace, i in zip(traces, images):
        assert trace.tokens_per_block == golden["tokens_per_block"].tolist()
        np.testing.assert_allclose(trace.logits, golden["logits"][i], rtol=0, atol=TOLERANCE)
        np.testing.assert_array_equal(trace.size, golden["size"][i])
        np.testing.assert_array_equal(trace.source, golden["source"][i])
        if case["method"] == "ppt":
            assert [trace.pooled[l] for l in p["layers"]] == golden["pooled"][:, i].tolist()
            np.testing.assert_allclose([trace.variance[l] for l in p["layers"]], golden["variance"][:, i], rtol=1e-4)


# --------------------------------------------------------------------------- token plan and r schedules

def test_tome_schedule_with_inflection():
    expected = [32, 29, 26, 23, 20, 17, 14, 11, 8, 5, 2, 0]
    assert ref.tome_r_schedule(12, (16, -1.0)) == expected
    assert tome_schedule(12, 16, -1.0) == expected
    plan = token_plan(12, 197, "tome", 16, inflection=-1.0)
    assert [p.r for p in plan] == expected
    # token counts of the published ToMe code (conformance case tome_r16_dec)
    assert [p.tokens_out for p in plan] == [165, 136, 110, 87, 67, 50, 36, 25, 17, 12, 10, 10]


@pytest.mark.parametrize("depth, r, inflection", [(12, 13, None), (12, 8, 0.5), (12, 16, -0.5), (4, 7, -1.0),
                                                  (24, 8, None), (12, [20, 10, 5], None)])
def test_tome_schedule_matches_reference(depth, r, inflection):
    ref_r = r if isinstance(r, list) else (r if inflection is None else (r, inflection))
    expected = ref.tome_r_schedule(depth, ref_r)
    assert tome_schedule(depth, r, inflection) == expected
    plan = token_plan(depth, 197, "tome", r, inflection=inflection)
    assert [p.tokens_out for p in plan] == ref.tokens_after_blocks(197, expected)


@pytest.mark.parametrize("r, layers", [(50, [3, 6, 9]), ([40, 50, 30], [3, 6, 9]), (20, [0, 11])])
def test_ppt_plan_matches_reference(r, layers):
    plan = token_plan(12, 197, "ppt", r, layers)
    counts = ref.tokens_after_blocks(197, ref.ppt_r_schedule(12, r, layers))
    removed = -np.diff([197] + counts)
    assert [p.tokens_out for p in plan] == counts
    assert [p.r for p in plan] == removed.tolist()
    assert [p.method for p in plan] == ["ppt" if e else "none" for e in removed]


@pytest.mark.parametrize("protected", [1, 2])
def test_r_is_clamped_to_half_the_unprotected_tokens(protected):
    plan = token_plan(4, 64 + protected, "ppt", [40, 20], [0, 1], num_prefix_tokens=protected)
    assert [p.r for p in plan] == [32, 16, 0, 0]
    assert [p.tokens_out for p in plan] == ref.tokens_after_blocks(64 + protected, [40, 20, 0, 0], protected)


def test_constant_tome_r_is_clamped_in_late_blocks():
    """ToMe shrinks r to (N - protected) // 2 where few tokens are left, never an error."""
    plan = token_plan(12, 197, "tome", 17)
    assert [p.tokens_out for p in plan] == ref.tokens_after_blocks(197, [17] * 12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="ppt", r=70, layers=[0]), "remove 70"),
    (dict(method="ppt", r=8, layers=[4]), "layers"),
    (dict(method="ppt", r=8, layers=[-1]), "layers"),
    (dict(method="ppt", r=[8, 8], layers=[1]), "one value per"),
    (dict(method="tome", r=-1), "r must be >= 0"),
    (dict(method="merge", r=8), "method"),
])
def test_bad_plans_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        token_plan(4, 65, **kwargs)
    with pytest.raises(ValueError, match=message):
        build_tiny(tiny_params(0), token_reduction=kwargs)


# --------------------------------------------------------------------------- pieces, in PyNative

B, N, C, D = 4, 17, 8, 4


@pytest.fixture
def tokens():
    """A batch of token states: x [B, N, C]; source [B, N, 20] a partition of 20
    input tokens (CLS alone in row 0); size = source row sums; metric [B, N, D]."""
    rng = np.random.default_rng(7)
    source = np.zeros((B, N, 20), np.float32)
    for b in range(B):
        owner = np.concatenate([np.arange(N), rng.integers(1, N, 20 - N)])
        source[b, owner, np.arange(20)] = 1.0
    return dict(x=rng.standard_normal((B, N, C)).astype(np.float32), source=source,
                size=source.sum(-1, keepdims=True), metric=rng.standard_normal((B, N, D)).astype(np.float32))


def flat_and_peaked_scores(seed=3):
    """PPT scores [B, N]: CLS 2, then N-1 positive scores summing to 1; images
    0 and 2 almost flat (low variance), 1 and 3 peaked (high variance)."""
    rng = np.random.default_rng(seed)
    spread = np.array([0.05, 1.0, 0.1, 1.5])[:, None]
    raw = np.exp(spread * rng.standard_normal((B, N - 1)))
    return np.concatenate([np.full((B, 1), 2.0), raw / raw.sum(1, keepdims=True)], axis=1).astype(np.float32)


def reducer(method, r, num_prefix_tokens=1, threshold=7e-5):
    """The library's reduction step for a block receiving N tokens, tracing sources."""
    return build_reducer(method, r, num_tokens=N, prefix=PrefixTokens(distilled=num_prefix_tokens == 2),
                         trace_source=True, threshold=threshold)


def run_reducer(cell, tokens, scores):
    """The reducer's step on the given metric and scores -> x, size, source, decisions as NumPy arrays."""
    x, size, source, metric, scores = tensors(tokens["x"], tokens["size"], tokens["source"], tokens["metric"], scores)
    decides_on = {ToMeReducer: (metric,), PruneReducer: (scores,), PPTReducer: (metric, scores)}[type(cell)]
    return [o.asnumpy() for o in cell.step(x, size, source, *decides_on)]


def check_against_reference(method, outputs, tokens, scores, r, threshold, distill_token):
    x, size, source, stats = outputs
    for b in range(len(x)):
        want_x, want_size, want_source, pooled, variance = ref.reduce_tokens(
            method, tokens["x"][b].astype(np.float64), tokens["size"][b], tokens["source"][b], tokens["metric"][b],
            scores[b].astype(np.float64), r, threshold, distill_token)
        np.testing.assert_allclose(x[b], want_x, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(size[b], want_size)
        np.testing.assert_array_equal(source[b], want_source)
        if method == "ppt":
            assert stats[b, 0] == float(pooled)
            np.testing.assert_allclose(stats[b, 1], variance, rtol=1e-5)


@pytest.mark.parametrize("distill_token", [False, True])
@pytest.mark.parametrize("r", [1, 5, 7])
def test_bipartite_matching_and_merge(pynative, tokens, distill_token, r):
    matching = bipartite_matching(ms.Tensor(tokens["metric"]), r, *bipartite_positions(N),
                                  distill_token=distill_token)
    unmerged, src, dst = (t.asnumpy() for t in matching)
    for b in range(B):
        m = ref.bipartite_matching(tokens["metric"][b], r, distill_token)
        np.testing.assert_array_equal(unmerged[b], m.unmerged)
        np.testing.assert_array_equal(src[b], m.src)
        np.testing.assert_array_equal(dst[b], m.dst)
    scores = flat_and_peaked_scores()
    merged = run_reducer(reducer("tome", r, 2 if distill_token else 1), tokens, scores)
    check_against_reference("tome", merged, tokens, scores, r, None, distill_token)
    assert merged[0].shape == (B, N - r, C)
    assert (merged[1].sum(1) == tokens["size"].sum(1)).all()  # every input patch still counted once


def test_pruning_keeps_tokens_in_score_order_cls_first(pynative):
    scores = flat_and_peaked_scores()
    keep = keep_by_score(ms.Tensor(scores), N - 6).asnumpy()
    for b in range(B):
        np.testing.assert_array_equal(keep[b], ref.prune_order(scores[b], N - 6))
    assert (keep[:, 0] == 0).all()


def test_significance_scores_and_unbiased_variance(pynative):
    rng = np.random.default_rng(11)
    heads, d = 2, 4
    logits = 2.0 * rng.standard_normal((B, heads, N, N))
    probs = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    v = rng.standard_normal((B, heads, N, d)).astype(np.float32)
    scores = significance_scores(*tensors(probs, v))
    variance = score_variance(scores).asnumpy()
    for b in range(B):
        expected = ref.significance_scores(probs[b].astype(np.float64), v[b].astype(np.float64))
        np.testing.assert_allclose(scores.asnumpy()[b], expected, rtol=1e-5, atol=0)
        np.testing.assert_allclose(variance[b], ref.score_variance(expected, ddof=1), rtol=1e-5)
        # the population variance is (N-2)/(N-1) of it: far outside the tolerance
        assert abs(variance[b] / ref.score_variance(expected, ddof=0) - 1) > 1e-2
    assert np.allclose(scores.asnumpy()[:, 1:].sum(1), 1.0) and (scores.asnumpy()[:, 0] == 2.0).all()


@pytest.mark.parametrize("proportional", [False, True])
def test_attention_with_proportional_attention(pynative, tokens, proportional):
    dim, heads = C, 2
    attn = Attention(dim, heads)
    rng = np.random.default_rng(5)
    params = {"qkv.weight": rng.standard_normal((3 * dim, dim)), "qkv.bias": rng.standard_normal(3 * dim),
              "proj.weight": rng.standard_normal((dim, dim)), "proj.bias": rng.standard_normal(dim)}
    params = {k: (v / 2).astype(np.float32) for k, v in params.items()}
    load_state_dict(attn, params)
    x, size = tensors(tokens["x"], tokens["size"].astype(np.int32))
    q, k, v = attn.heads(x)
    probs = attn.probabilities(q, k, size if proportional else None)
    out = attn.combine(probs, v)
    for b in range(B):
        want = ref.attention(tokens["x"][b].astype(np.float64), params["qkv.weight"], params["qkv.bias"],
                             params["proj.weight"], params["proj.bias"], heads,
                             tokens["size"][b] if proportional else None)
        np.testing.assert_allclose(probs.asnumpy()[b], want.probs, rtol=0, atol=1e-6)
        np.testing.assert_allclose(k.asnumpy()[b], want.k, rtol=0, atol=1e-5)
        np.testing.assert_allclose(v.asnumpy()[b], want.v, rtol=0, atol=1e-5)
        np.testing.assert_allclose(out.asnumpy()[b], want.out, rtol=0, atol=1e-5)


def mixed_threshold(scores):
    """A threshold pooling the flat images (0, 2) and pruning the peaked ones (1, 3)."""
    variance = [ref.score_variance(s.astype(np.float64)) for s in scores]
    assert max(variance[0], variance[2]) * 10 < min(variance[1], variance[3])
    return float(np.sqrt(max(variance[0], variance[2]) * min(variance[1], variance[3])))


@pytest.mark.parametrize("num_prefix_tokens", [1, 2])
def test_ppt_mixed_batch_equals_each_image_alone(pynative, tokens, num_prefix_tokens):
    r, scores = 5, flat_and_peaked_scores()
    threshold = mixed_threshold(scores)
    ppt = reducer("ppt", r, num_prefix_tokens, threshold)
    batched = run_reducer(ppt, tokens, scores)
    assert batched[3][:, 0].tolist() == [1.0, 0.0, 1.0, 0.0]
    check_against_reference("ppt", batched, tokens, scores, r, threshold, num_prefix_tokens == 2)
    for b in range(B):
        alone = run_reducer(ppt, {k: v[b:b + 1] for k, v in tokens.items()}, scores[b:b + 1])
        for got, want in zip(alone, batched):
            np.testing.assert_allclose(got[0], want[b], rtol=0, atol=1e-6)


def test_distillation_token_survives_both_branches_at_index_1(pynative, tokens):
    r, scores = 7, flat_and_peaked_scores()
    scores[:, 1] = 0.0  # the least significant token: pruning must still keep it
    scores[:, 1:] /= scores[:, 1:].sum(1, keepdims=True)
    x, size, source, stats = run_reducer(reducer("ppt", r, 2, mixed_threshold(scores)), tokens, scores)
    assert stats[:, 0].tolist() == [1.0, 0.0, 1.0, 0.0]
    np.testing.assert_array_equal(x[:, 1], tokens["x"][:, 1])
    np.testing.assert_array_equal(size[:, 1], tokens["size"][:, 1])
    np.testing.assert_array_equal(source[:, 1], tokens["source"][:, 1])
    np.testing.assert_array_equal(x[:, 0], tokens["x"][:, 0])


@pytest.mark.parametrize("num_prefix_tokens", [1, 2])
def test_threshold_zero_prunes_all_and_huge_pools_all(pynative, tokens, num_prefix_tokens):
    r, scores = 5, flat_and_peaked_scores()
    distill = num_prefix_tokens == 2
    for threshold, method in [(0.0, "prune"), (1e9, "tome")]:
        outputs = run_reducer(reducer("ppt", r, num_prefix_tokens, threshold), tokens, scores)
        assert (outputs[3][:, 0] == (1.0 if method == "tome" else 0.0)).all()
        alone = run_reducer(reducer(method, r, num_prefix_tokens), tokens, scores)
        for got, want in zip(outputs[:3], alone[:3]):
            np.testing.assert_array_equal(got, want)
        check_against_reference(method, outputs, tokens, scores, r, threshold, distill)


def test_ties_give_a_deterministic_valid_order(pynative, tokens):
    scores = np.concatenate([np.full((B, 1), 2.0), np.tile([0.1, 0.2, 0.1, 0.05], (B, 4))], 1).astype(np.float32)
    keep = N - 7
    first, second = (keep_by_score(ms.Tensor(scores), keep).asnumpy() for _ in range(2))
    np.testing.assert_array_equal(first, second)
    for b in range(B):
        kept = scores[b, first[b]]
        assert len(set(first[b])) == keep and first[b, 0] == 0
        assert (np.diff(kept) <= 0).all() and kept.min() >= np.delete(scores[b], first[b]).max()

    metric = np.repeat(tokens["metric"][:, :5], [1, 4, 4, 4, 4], axis=1)  # many identical tokens
    positions = bipartite_positions(metric.shape[1])
    runs = [[t.asnumpy() for t in bipartite_matching(ms.Tensor(metric), 6, *positions)] for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    unmerged, src, dst = runs[0]
    similarity = metric / np.linalg.norm(metric, axis=-1, keepdims=True)
    for b in range(B):
        assert sorted(np.concatenate([unmerged[b], src[b]])) == list(range((N + 1) // 2)) and 0 in unmerged[b]
        edges = similarity[b, ::2] @ similarity[b, 1::2].T
        np.testing.assert_allclose(edges[src[b], dst[b]], edges[src[b]].max(1), rtol=0, atol=1e-6)
    tied = dict(tokens, metric=metric)
    for threshold in (0.0, 1e9):  # prune on tied scores, pool on tied similarities
        runs = [run_reducer(reducer("ppt", 6, 1, threshold), tied, scores) for _ in range(2)]
        for a, b in zip(*runs):
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- whole reduced forward passes

CONFIGS = {
    "ppt": (False, dict(method="ppt", r=12, layers=PPT_LAYERS, threshold=PLAIN_THRESHOLD)),
    "ppt_distilled": (True, dict(method="ppt", r=12, layers=PPT_LAYERS, threshold=DISTILLED_THRESHOLD)),
    "tome": (False, dict(method="tome", r=8, inflection=-0.5)),
    "prune": (False, dict(method="prune", r=12, layers=PPT_LAYERS)),
}


def reference_reduction(section):
    r = (section["r"], section["inflection"]) if section.get("inflection") is not None else section["r"]
    return ref.Reduction(section["method"], r, section.get("layers", ()), section.get("threshold", 7e-5))


def config_params(distilled):
    return tiny_params(DISTILLED_SEED, distilled=True) if distilled else tiny_params(PLAIN_SEED)


@pytest.fixture(scope="module")
def images():
    return ref.sample_images(0)


@pytest.fixture(scope="module")
def traced_nets():
    """One TokenTrace per configuration, kept so graph mode compiles each once."""
    return {name: TokenTrace(build_tiny(config_params(distilled), token_reduction=dict(section, trace_source=True)))
            for name, (distilled, section) in CONFIGS.items()}


@pytest.fixture(scope="module")
def reference_traces(images):
    return {name: ref.forward(config_params(distilled), images, HEADS, reference_reduction(section))
            for name, (distilled, section) in CONFIGS.items()}


def test_tiny_setup_mixes_decisions(reference_traces):
    """Precondition of the PPT cases: every PPT layer pools some images and
    prunes others, and no variance is within 10 % of the threshold."""
    for name, threshold in [("ppt", PLAIN_THRESHOLD), ("ppt_distilled", DISTILLED_THRESHOLD)]:
        for layer in PPT_LAYERS:
            pooled = [t.pooled[layer] for t in reference_traces[name]]
            assert any(pooled) and not all(pooled)
            variance = np.array([t.variance[layer] for t in reference_traces[name]])
            assert (np.abs(np.log(variance / threshold)) > np.log(1.1)).all()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_reduced_forward_matches_reference(mode, name, traced_nets, reference_traces, images):
    """The batched pass equals the reference, which runs each image alone: logits,
    token counts, sizes, source maps, and per-image PPT decisions and variances."""
    tracer = traced_nets[name]
    logits, size, source, stats = (o.asnumpy() for o in tracer(ms.Tensor(images)))
    expected = reference_traces[name]
    assert tracer.net.tokens_per_block == expected[0].tokens_per_block
    np.testing.assert_allclose(logits, np.stack([t.logits for t in expected]), rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(size, np.stack([t.size for t in expected]))
    np.testing.assert_array_equal(source, np.stack([t.source for t in expected]))
    for layer in (PPT_LAYERS if name.startswith("ppt") else []):
        assert stats[layer, :, 0].tolist() == [float(t.pooled[layer]) for t in expected]
        np.testing.assert_allclose(stats[layer, :, 1], [t.variance[layer] for t in expected], rtol=1e-4)
    if name == "ppt_distilled":  # CLS and distillation token stay first, each standing for itself
        assert (source[:, :2] == np.eye(2, source.shape[2])).all()


FUSED = [name for name in CONFIGS if name != "prune"]


@pytest.fixture(scope="module")
def fused_nets(cxx):
    """The fused step alone (formulations/fused_step.py) in every reducing block, traced by TokenTrace."""
    nets = {}
    for name, (distilled, section) in CONFIGS.items():
        if name in FUSED:
            net = build_tiny(config_params(distilled), token_reduction=section)
            nets[name] = TokenTrace(prepare(net, "inference", "CPU", fused_step=True))
    return nets


@pytest.mark.parametrize("name", FUSED)
def test_fused_cpu_kernel_forward_matches_reference(mode, name, fused_nets, reference_traces, images):
    """Inference through the fused C++ step in every reducing block gives the reference's logits and
    sizes on the batch that mixes pooled and pruned images, and its trace reports the kernel's own
    pool/prune choices and variances."""
    tracer = fused_nets[name]
    assert [isinstance(b.reducer, FusedReducer) for b in tracer.net.blocks] == [p.r > 0 for p in tracer.net.plan]
    logits, size, _, stats = (o.asnumpy() for o in tracer(ms.Tensor(images)))
    expected = reference_traces[name]
    np.testing.assert_allclose(logits, np.stack([t.logits for t in expected]), rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(size, np.stack([t.size for t in expected]))
    for layer in (PPT_LAYERS if name.startswith("ppt") else []):
        assert stats[layer, :, 0].tolist() == [float(t.pooled[layer]) for t in expected]
        np.testing.assert_allclose(stats[layer, :, 1], [t.variance[layer] for t in expected], rtol=1e-5)


@pytest.mark.parametrize("threshold, pooled", [(0.0, 0.0), (1e9, 1.0)])
def test_model_threshold_extremes(pynative, threshold, pooled, images):
    params = tiny_params(PLAIN_SEED)
    section = dict(method="ppt", r=12, layers=PPT_LAYERS, threshold=threshold)
    logits, _, _, stats = (o.asnumpy() for o in TokenTrace(build_tiny(params, token_reduction=section))(
        ms.Tensor(images)))
    assert (stats[PPT_LAYERS, :, 0] == pooled).all()
    expected = ref.forward(params, images, HEADS, reference_reduction(section))
    np.testing.assert_allclose(logits, np.stack([t.logits for t in expected]), rtol=0, atol=TOLERANCE)


# --------------------------------------------------------------------------- training through the reduction

@pytest.mark.parametrize("method", ["ppt", "prune"])
def test_training_steps_lower_the_loss(method, images):
    """Graph-mode AdamWeightDecay steps on a fixed batch with the reduction on:
    the loss falls, and parameters before the first reducing block (patch
    embedding, position embedding, block 0) receive gradients."""
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        section = dict(method=method, r=12, layers=PPT_LAYERS, threshold=PLAIN_THRESHOLD)
        net = build_tiny(tiny_params(PLAIN_SEED), token_reduction=section)
        net.set_train(True)
        labels = ms.Tensor(np.arange(len(images)) % TINY["num_classes"], ms.int32)
        loss_fn = nn.CrossEntropyLoss()
        optimizer = nn.AdamWeightDecay(net.trainable_params(), learning_rate=1e-3, weight_decay=0.0)

        def loss_of(x, y):
            return loss_fn(net(x), y)

        grad_fn = ms.value_and_grad(loss_of, None, optimizer.parameters)
        names = [p.name for p in optimizer.parameters]
        losses = []
        for step in range(10):
            loss, grads = grad_fn(ms.Tensor(images), labels)
            if step == 0:
                for name in ("patch_embed.proj.weight", "pos_embed", "blocks.0.attn.qkv.weight",
                             "blocks.0.mlp.fc1.weight"):
                    assert np.abs(grads[names.index(name)].asnumpy()).max() > 0, name
            optimizer(grads)
            losses.append(float(loss))
    finally:
        ms.set_context(mode=previous)
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0], losses
