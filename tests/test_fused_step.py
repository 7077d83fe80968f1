"""The fused CPU reduction step (formulations/fused_step.py) against the
NumPy reference: from the attention's k, v and probabilities to the reduced
tokens and sizes, on batches that mix pooled and pruned images, with and
without a distillation token; and how its shared library is built and cached."""
import os

import numpy as np
import pytest
import mindspore as ms

from helpers import numpy_reference as ref
from ppt_ms.formulations import FusedReducer, fused_step, native
from ppt_ms.token_reduction import build_reducer
from ppt_ms.token_reduction.prefix import PrefixTokens

B, H, N, D, C = 4, 2, 21, 8, 12


def step_inputs(seed=3):
    """x [B, N, C]; size [B, N, 1] in 1..4 (tokens merged before); k, v [B, H, N, D]
    with every value row of norm 1, so PPT's scores follow the CLS attention;
    probs [B, H, N, N] whose CLS row is almost flat for images 0, 2 and peaked for 1, 3."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((B, H, N, D))
    v /= np.sqrt((v ** 2).sum(axis=(1, 3), keepdims=True))
    logits = rng.standard_normal((B, H, N, N))
    logits[:, :, 0] *= np.array([0.05, 2.0, 0.1, 2.5]).reshape(B, 1, 1)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    arrays = dict(x=rng.standard_normal((B, N, C)), size=rng.integers(1, 5, (B, N, 1)),
                  k=rng.standard_normal((B, H, N, D)), v=v, probs=probs)
    return {name: a.astype(np.float32) for name, a in arrays.items()}


def reference_step(method, t, r, threshold, distill_token):
    """Per image, the reference's reduced (x, size) and pooled flag."""
    out = []
    for b in range(B):
        scores = ref.significance_scores(t["probs"][b].astype(np.float64), t["v"][b].astype(np.float64))
        x, size, _, pooled, _ = ref.reduce_tokens(
            method, t["x"][b].astype(np.float64), t["size"][b].astype(np.float64), np.zeros((N, 1)),
            t["k"][b].sum(axis=0).astype(np.float64), scores, r, threshold, distill_token)
        out.append((x, size, pooled))
    return out


def variances(t):
    """The reference's score variance of every image."""
    return [ref.score_variance(ref.significance_scores(t["probs"][b].astype(np.float64), t["v"][b].astype(np.float64)))
            for b in range(B)]


def mixed_threshold(t):
    """Between the flat images' score variance and the peaked ones'."""
    variance = variances(t)
    flat, peaked = max(variance[0], variance[2]), min(variance[1], variance[3])
    assert flat * 10 < peaked
    return float(np.sqrt(flat * peaked))


def fused(method, r, distill_token=False, threshold=7e-5):
    return FusedReducer(build_reducer(method, r, N, PrefixTokens(distilled=distill_token), threshold=threshold))


def fused_reduce(reducer, t):
    """The fused reducer's (x, size, decisions) on the step inputs t."""
    x, size, _, decisions = reducer(ms.Tensor(t["x"]), ms.Tensor(t["size"].astype(np.int32)),
                                    ms.Tensor(np.zeros(1, np.float32)), *(ms.Tensor(t[n]) for n in ("k", "v", "probs")))
    return x, size, decisions


@pytest.mark.parametrize("method", ["ppt", "tome"])
@pytest.mark.parametrize("distill_token", [False, True])
@pytest.mark.parametrize("r", [1, 6, 9])
def test_fused_step_matches_reference(cxx, mode, method, distill_token, r):
    t = step_inputs()
    threshold = mixed_threshold(t)
    x, size, decisions = (o.asnumpy() for o in fused_reduce(fused(method, r, distill_token, threshold), t))
    expected = reference_step(method, t, r, threshold, distill_token)
    if method == "ppt":
        assert [pooled for _, _, pooled in expected] == [True, False, True, False]
        assert decisions[:, 0].tolist() == [1.0, 0.0, 1.0, 0.0]  # the kernel reports its own choices
        np.testing.assert_allclose(decisions[:, 1], variances(t), rtol=1e-5)
    else:
        assert not decisions.any()
    assert x.shape == (B, N - r, C) and size.shape == (B, N - r, 1)
    for b, (want_x, want_size, _) in enumerate(expected):
        np.testing.assert_allclose(x[b], want_x, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(size[b], want_size)
    merged = [b for b, (_, _, pooled) in enumerate(expected) if pooled or method == "tome"]
    assert (size[merged].sum(1) == t["size"][merged].sum(1)).all()  # merging loses no patch
    if distill_token:
        np.testing.assert_array_equal(x[:, :2], t["x"][:, :2])  # CLS and distillation token stand alone


@pytest.mark.parametrize("method, prefix", [("tome", PrefixTokens(registers=4)), ("ppt", PrefixTokens(registers=4)),
                                            ("tome", PrefixTokens(class_token=False))],
                         ids=["tome-registers", "ppt-registers", "tome-no-class-token"])
def test_fused_step_on_other_prefix_layouts_equals_the_canonical_step(cxx, pynative, method, prefix):
    """Registers (matched apart from the patches, never pruned) and no class token (unmerged tokens
    left ranked): the kernel gives what MindSpore's ops give, images that pool and prune alike."""
    t = step_inputs(7)
    scored = [ref.score_variance(ref.significance_scores(t["probs"][b].astype(np.float64),
                                                         t["v"][b].astype(np.float64), prefix.registers),
                                 registers=prefix.registers) for b in range(B)]
    threshold = float(np.median(scored))
    canonical = build_reducer(method, 6, N, prefix, threshold=threshold)
    want_x, want_size, _, want_decisions = (o.asnumpy() for o in canonical(
        ms.Tensor(t["x"]), ms.Tensor(t["size"].astype(np.int32)), ms.Tensor(np.zeros(1, np.float32)),
        *(ms.Tensor(t[n]) for n in ("k", "v", "probs"))))
    x, size, decisions = (o.asnumpy() for o in fused_reduce(FusedReducer(canonical), t))
    if method == "ppt":
        assert 0 < decisions[:, 0].sum() < B
    np.testing.assert_array_equal(decisions[:, 0], want_decisions[:, 0])
    np.testing.assert_allclose(decisions[:, 1], want_decisions[:, 1], rtol=1e-5)
    np.testing.assert_allclose(x, want_x, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(size, want_size)
    np.testing.assert_array_equal(x[:, :prefix.count], t["x"][:, :prefix.count])


@pytest.mark.parametrize("threshold, pooled", [(0.0, False), (1e9, True)])
def test_fused_ppt_threshold_extremes(cxx, pynative, threshold, pooled):
    t = step_inputs(5)
    x, size, decisions = (o.asnumpy() for o in fused_reduce(fused("ppt", 6, threshold=threshold), t))
    assert (decisions[:, 0] == float(pooled)).all()
    for b, (want_x, want_size, was_pooled) in enumerate(reference_step("ppt", t, 6, threshold, False)):
        assert was_pooled == pooled
        np.testing.assert_allclose(x[b], want_x, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(size[b], want_size)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """kernel_library() with an empty cache folder; forgets the path it returned afterwards."""
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    native.compiled_library.cache_clear()
    yield tmp_path
    native.compiled_library.cache_clear()


def test_kernel_is_compiled_once_then_reused(cxx, fresh_cache):
    library = fused_step.kernel_library()
    assert os.path.dirname(library) == str(fresh_cache) and os.listdir(fresh_cache) == [os.path.basename(library)]
    built = os.path.getmtime(library)
    native.compiled_library.cache_clear()
    assert fused_step.kernel_library() == library and os.path.getmtime(library) == built


def test_missing_compiler_is_a_clear_error(fresh_cache, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-ppt-ms")
    with pytest.raises(RuntimeError, match="fused_cpu_kernel needs a C.. compiler.*no-such-compiler-ppt-ms"):
        fused_step.kernel_library()
    assert os.listdir(fresh_cache) == []
