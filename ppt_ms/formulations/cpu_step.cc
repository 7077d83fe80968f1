// One token-reduction step (ToMe merging; PPT pruning or pooling per image) as a
// single CPU kernel, for MindSpore's AOT custom operator (ops.Custom, func_type "aot").
//
// The same decisions as the MindSpore-ops path in reducers.py, matching.py and
// significance.py; see fused_step.py for the Python side.  Float32, row-major:
//   x [B, N, C], size [B, N, 1], k and v [B, H, N, d], probs [B, H, N, N],
//   settings [6] = (PPT threshold, 1 if token 1 is a distillation token, the first matched token
//                   (the prefix count with registers, else 0), 1 if the class token is protected
//                   inside the matching, the first scored token, the prefix count); see prefix.py
//   -> x [B, M, C], size [B, M, 1] with M = N - r, and the decisions [B, 2]:
//      (1 if the image was pooled, the variance of its scores) for PPT, zeros for ToMe.
// Images are independent; batches are split across threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <thread>
#include <vector>

namespace {

struct Dims {
  int64_t batch, tokens, kept, channels, heads, head_dim;
};

float Dot(const float *a, const float *b, int64_t n) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // eight partial sums, so the compiler can vectorise
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int t = 0; t < 8; ++t) lanes[t] += a[i + t] * b[i + t];
  }
  float sum = 0;
  for (; i < n; ++i) sum += a[i] * b[i];
  for (int t = 0; t < 8; ++t) sum += lanes[t];
  return sum;
}

// ToMe's metric: the keys summed over heads, each token's row scaled to unit length.
// k [H, N, d] -> [N, d]
std::vector<float> UnitMetric(const float *k, const Dims &s) {
  const int64_t n = s.tokens, d = s.head_dim;
  std::vector<float> metric(k, k + n * d);
  for (int64_t h = 1; h < s.heads; ++h) {
    const float *head = k + h * n * d;
    for (int64_t i = 0; i < n * d; ++i) metric[i] += head[i];
  }
  for (int64_t t = 0; t < n; ++t) {
    float *row = metric.data() + t * d;
    const float scale = 1.0f / std::sqrt(Dot(row, row, d));
    for (int64_t i = 0; i < d; ++i) row[i] *= scale;
  }
  return metric;
}

// Where the tokens go: output row j is input token keep[j]; input token src[i] is
// merged into output row slot[i].
struct Layout {
  std::vector<int64_t> keep, src, slot;
};

// Which tokens a step sees, and how it treats the prefix tokens (prefix.py).
struct Prefix {
  bool distill, protect_cls;
  int64_t matched_from, scored_from, count;
};

// ToMe's bipartite soft matching of the tokens from matched_from on.  A = even, B = odd of
// them; each A token's best B partner by cosine similarity; the r A tokens with the strongest
// edge merge (with protect_cls, CLS, A 0, never; nothing merges into a distillation token,
// B 0).  Ties keep A order.  Output order: [the tokens before matched_from, unmerged A
// (ascending with protect_cls, else strongest edge first), all B], or [A0, B0, A1.., B1..]
// with distillation.
Layout Pooling(const float *k, const Dims &s, const Prefix &p) {
  const std::vector<float> metric = UnitMetric(k, s);
  const int64_t start = p.matched_from, matched = s.tokens - start;
  const int64_t d = s.head_dim, na = (matched + 1) / 2, nb = matched / 2, r = s.tokens - s.kept;
  const bool distill = p.distill;
  // B's rows as columns, so a row of similarities is built from d scaled columns (a loop
  // over B that vectorises) rather than from nb dot products
  std::vector<float> b_columns(d * nb);
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t i = 0; i < d; ++i) b_columns[i * nb + b] = metric[(start + 2 * b + 1) * d + i];
  }
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int64_t first_b = distill ? 1 : 0;
  std::vector<float> best(na, neg_inf), similarity(nb);
  std::vector<int64_t> partner(na, 0);
  for (int64_t a = p.protect_cls ? 1 : 0; a < na; ++a) {
    const float *row = metric.data() + (start + 2 * a) * d;
    std::fill(similarity.begin(), similarity.end(), 0.0f);
    for (int64_t i = 0; i < d; ++i) {
      const float weight = row[i];
      const float *column = b_columns.data() + i * nb;
      for (int64_t b = 0; b < nb; ++b) similarity[b] += weight * column[b];
    }
    for (int64_t b = first_b; b < nb; ++b) {
      if (similarity[b] > best[a] || b == first_b) {
        best[a] = similarity[b];
        partner[a] = b;
      }
    }
  }
  std::vector<int64_t> order(na);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return best[i] > best[j]; });
  std::vector<int64_t> unmerged(order.begin() + r, order.end());
  if (p.protect_cls) std::sort(unmerged.begin(), unmerged.end());
  const int64_t kept_a = na - r;

  Layout layout;
  for (int64_t t = 0; t < start; ++t) layout.keep.push_back(t);
  if (distill) {
    layout.keep.insert(layout.keep.end(), {2 * unmerged[0], 1});
    for (int64_t i = 1; i < kept_a; ++i) layout.keep.push_back(2 * unmerged[i]);
    for (int64_t b = 1; b < nb; ++b) layout.keep.push_back(2 * b + 1);
  } else {
    for (int64_t a : unmerged) layout.keep.push_back(start + 2 * a);
    for (int64_t b = 0; b < nb; ++b) layout.keep.push_back(start + 2 * b + 1);
  }
  for (int64_t i = 0; i < r; ++i) {
    layout.src.push_back(start + 2 * order[i]);
    layout.slot.push_back(start + kept_a + partner[order[i]]);
  }
  return layout;
}

// PPT's significance: s_j = (sum over heads of the CLS row attention to j) * ||v_j||,
// v_j with all heads concatenated; the scores from scored_from on (after CLS and registers)
// normalised to sum 1.  -> [N - scored_from]
std::vector<double> PatchScores(const float *probs, const float *v, const Dims &s, int64_t scored_from) {
  const int64_t n = s.tokens, d = s.head_dim;
  std::vector<double> scores(n - scored_from, 0.0);
  for (int64_t j = scored_from; j < n; ++j) {
    float attention = 0, squares = 0;
    for (int64_t h = 0; h < s.heads; ++h) {
      attention += probs[h * n * n + j];
      const float *value = v + (h * n + j) * d;
      squares += Dot(value, value, d);
    }
    scores[j - scored_from] = static_cast<double>(attention) * std::sqrt(squares);
  }
  const double total = std::accumulate(scores.begin(), scores.end(), 0.0);
  for (double &score : scores) score = static_cast<float>(score / total);
  return scores;
}

double UnbiasedVariance(const std::vector<double> &values) {
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
  double squares = 0;
  for (double value : values) squares += (value - mean) * (value - mean);
  return squares / (values.size() - 1);
}

// Pruning: the prefix tokens first (CLS, the distillation token or the registers), then the
// most significant tokens; equal scores keep token order.
Layout Pruning(const std::vector<double> &patch_scores, const Dims &s, const Prefix &p) {
  const int64_t first = p.count, offset = p.scored_from;
  std::vector<int64_t> order(s.tokens - first);
  std::iota(order.begin(), order.end(), first);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t i, int64_t j) { return patch_scores[i - offset] > patch_scores[j - offset]; });
  Layout layout;
  for (int64_t t = 0; t < first; ++t) layout.keep.push_back(t);
  layout.keep.insert(layout.keep.end(), order.begin(), order.begin() + (s.kept - first));
  return layout;
}

// Gather the kept tokens; each merged token joins its slot as a size-weighted mean,
// and sizes add up.
void Apply(const Layout &layout, const float *x, const float *size, const Dims &s, float *out_x,
           float *out_size) {
  const int64_t c = s.channels;
  for (int64_t j = 0; j < s.kept; ++j) {
    std::memcpy(out_x + j * c, x + layout.keep[j] * c, c * sizeof(float));
    out_size[j] = size[layout.keep[j]];
  }
  if (layout.src.empty()) return;
  std::vector<bool> receives(s.kept, false);
  for (int64_t slot : layout.slot) {
    if (!receives[slot]) {
      float *row = out_x + slot * c;
      for (int64_t i = 0; i < c; ++i) row[i] *= out_size[slot];
      receives[slot] = true;
    }
  }
  for (size_t m = 0; m < layout.src.size(); ++m) {
    const float weight = size[layout.src[m]];
    const float *from = x + layout.src[m] * c;
    float *row = out_x + layout.slot[m] * c;
    for (int64_t i = 0; i < c; ++i) row[i] += weight * from[i];
    out_size[layout.slot[m]] += weight;
  }
  for (int64_t slot = 0; slot < s.kept; ++slot) {
    if (!receives[slot]) continue;
    float *row = out_x + slot * c;
    for (int64_t i = 0; i < c; ++i) row[i] /= out_size[slot];
  }
}

template <typename PerImage>
void ForEachImage(int64_t batch, PerImage per_image) {
  const int64_t workers = std::min<int64_t>(batch, std::max(1u, std::thread::hardware_concurrency()));
  if (workers <= 1) {
    for (int64_t b = 0; b < batch; ++b) per_image(b);
    return;
  }
  std::vector<std::thread> threads;
  for (int64_t w = 0; w < workers; ++w) {
    threads.emplace_back([=]() {
      for (int64_t b = w; b < batch; b += workers) per_image(b);
    });
  }
  for (std::thread &thread : threads) thread.join();
}

bool AllFloat32(int count, const char **dtypes) {
  for (int i = 0; i < count; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

Prefix ReadPrefix(const float *settings) {
  return Prefix{settings[1] != 0, settings[3] != 0, static_cast<int64_t>(settings[2]), static_cast<int64_t>(settings[4]),
                static_cast<int64_t>(settings[5])};
}

// What both entry points receive: x, size and k first; settings, then the three outputs, last.
struct StepArgs {
  const float *x, *size, *k;
  float threshold;
  Prefix prefix;
  float *out_x, *out_size, *out_decisions;
  Dims s;

  StepArgs(int nparam, void **params, int64_t **shapes)
      : x(static_cast<const float *>(params[0])),
        size(static_cast<const float *>(params[1])),
        k(static_cast<const float *>(params[2])),
        threshold(static_cast<const float *>(params[nparam - 4])[0]),
        prefix(ReadPrefix(static_cast<const float *>(params[nparam - 4]))),
        out_x(static_cast<float *>(params[nparam - 3])),
        out_size(static_cast<float *>(params[nparam - 2])),
        out_decisions(static_cast<float *>(params[nparam - 1])),
        s{shapes[0][0], shapes[0][1], shapes[nparam - 3][1], shapes[0][2], shapes[2][1], shapes[2][3]} {}

  const float *Keys(int64_t b) const { return k + b * s.heads * s.tokens * s.head_dim; }

  // Image b's reduced tokens and sizes, laid out as `layout` says.
  void Write(int64_t b, const Layout &layout, bool pooled = false, double variance = 0) const {
    Apply(layout, x + b * s.tokens * s.channels, size + b * s.tokens, s, out_x + b * s.kept * s.channels,
          out_size + b * s.kept);
    out_decisions[2 * b] = pooled ? 1.0f : 0.0f;
    out_decisions[2 * b + 1] = static_cast<float>(variance);
  }
};

}  // namespace

// params: x, size, k, settings -> x', size', decisions (zeros)
extern "C" int ToMeStep(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                        void *stream, void *extra) {
  if (nparam != 7 || !AllFloat32(nparam, dtypes)) return 1;
  const StepArgs step(nparam, params, shapes);
  ForEachImage(step.s.batch, [&](int64_t b) { step.Write(b, Pooling(step.Keys(b), step.s, step.prefix)); });
  return 0;
}

// params: x, size, k, v, probs, settings -> x', size', decisions
extern "C" int PPTStep(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                       void *stream, void *extra) {
  if (nparam != 9 || !AllFloat32(nparam, dtypes)) return 1;
  const StepArgs step(nparam, params, shapes);
  const Dims &s = step.s;
  const float *v = static_cast<const float *>(params[3]);
  const float *probs = static_cast<const float *>(params[4]);
  ForEachImage(s.batch, [&](int64_t b) {
    const std::vector<double> scores = PatchScores(probs + b * s.heads * s.tokens * s.tokens,
                                                   v + b * s.heads * s.tokens * s.head_dim, s, step.prefix.scored_from);
    const double variance = UnbiasedVariance(scores);
    const bool pooled = variance < step.threshold;
    step.Write(b, pooled ? Pooling(step.Keys(b), s, step.prefix) : Pruning(scores, s, step.prefix), pooled,
               variance);
  });
  return 0;
}
