// Exact GELU and LayerNorm, and the patch and head layout copies, as CPU kernels for MindSpore's
// AOT custom operator (ops.Custom, func_type "aot"); see cpu_layers.py for the Python side.
//
// MindSpore 2.10's CPU Erf handles a few values per nanosecond and its LayerNorm
// a fraction of what the memory allows: together about a quarter of a DeiT-S
// forward.  These loops are written so the compiler vectorises them, and large
// tensors are split across threads.  Float32, row-major:
//   Gelu:      x [...] (+ bias [C] over the last axis) -> x * Phi(x), Phi the standard normal CDF
//   Softmax:   x [..., N] (+ bias [B, N] per batch) -> exp(x - max) / sum exp(x - max) over the last axis
//   LayerNorm: x [M, C], weight [C], bias [C], eps [1] -> (x - mean) / sqrt(var + eps) * weight + bias
//              (mean and biased variance of each row)
//   SplitHeads: x [B, N, G * H * d] -> G tensors [B, H, N, d]; MergeHeads the inverse (any 2- or 4-byte dtype)
//   BiasSplitHeads: the same for float32 with (x + bias) * scale[g] into group g
//   ImagePatches: image [B, C, H, W] -> patches [B (H / p) (W / p), C p p]; PatchesImage the inverse (same)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

// VECTOR_CLONES (clones for several x86-64 levels) comes with the compile flags: ppt_ms/native.py.
namespace {

constexpr int64_t kMinPerThread = 1 << 16;  // below this many values a second thread costs more than it saves

int64_t HardwareThreads() { return std::max(1u, std::thread::hardware_concurrency()); }

// f(chunk, begin, end) over [0, count), in one chunk per hardware thread when the work is large
// (chunk numbers below HardwareThreads()).
template <typename F>
void SplitNumbered(int64_t count, int64_t values_per_item, F f) {
  const int64_t threads = std::min(HardwareThreads(), std::max<int64_t>(1, count * values_per_item / kMinPerThread));
  if (threads <= 1) {
    f(0, 0, count);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t chunk = (count + threads - 1) / threads;
  for (int64_t begin = chunk; begin < count; begin += chunk) {
    pool.emplace_back(f, begin / chunk, begin, std::min(count, begin + chunk));
  }
  f(0, 0, std::min(count, chunk));
  for (std::thread &thread : pool) thread.join();
}

// f(begin, end) over [0, count), split as SplitNumbered does.
template <typename F>
void Split(int64_t count, int64_t values_per_item, F f) {
  SplitNumbered(count, values_per_item, [&f](int64_t, int64_t begin, int64_t end) { f(begin, end); });
}

// e^a for -87 <= a <= 0: a = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor polynomial
// to degree 7 (relative error below 1e-7), 2^n put into the exponent bits.
inline float ExpNonPositive(float a) {
  a = std::max(a, -87.0f);
  // round to nearest as truncation of y - 1/2 (y <= 0): a float-to-int conversion, which every x86-64
  // vector unit has (floor needs SSE4.1)
  const float n = static_cast<float>(static_cast<int32_t>(a * 1.44269504088896341f - 0.5f));
  float r = a - n * 0.693145751953125f;  // ln 2 in two parts, so r is exact enough
  r = r - n * 1.428606765330187e-06f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Phi(x) = 1 - erfc(x / sqrt 2) / 2 (x >= 0) or erfc(|x| / sqrt 2) / 2 (x < 0), with
// erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z / 2): the Chebyshev fit of Numerical Recipes
// (relative error below 1.2e-7 for every z >= 0).  Over all float32 x, x * Phi(x) is within
// 4e-7 of the exact GELU, less than MindSpore's own x / 2 * (1 + erf(x / sqrt 2)) differs from it.
// Beyond |x| = 9 sqrt 2, Phi is 0 or 1 to float32 precision (erfc(9) < 5e-37) and taken as exactly that.
inline float Phi(float x) {
  const float unclamped = std::fabs(x) * 0.70710678118654752f;
  const float z = std::min(unclamped, 9.0f);
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  // computed for every x, then masked (a select around the call would stop the vectorisation)
  const float half_erfc = 0.5f * t * ExpNonPositive(p - z * z) * static_cast<float>(unclamped < 9.0f);
  return x >= 0.0f ? 1.0f - half_erfc : half_erfc;
}

inline float Gelu(float x) { return x * Phi(x); }

// d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density; x phi(x) is 0 to float32
// precision beyond |x| = 13 and taken as exactly that (masked, as in Phi).
inline float GeluDerivative(float x) {
  const float square = std::min(x * x, 169.0f);
  return Phi(x) + x * 0.39894228040143268f * ExpNonPositive(-0.5f * square) * static_cast<float>(x * x < 169.0f);
}

// Sum of f(x[i]) in double, over 32 partial sums so the compiler can vectorise it and overlap the adds.
// Always inlined: a call would run the default x86-64 build (2 doubles per vector) from every
// VECTOR_CLONES caller, which made LayerNorm twice as slow on an AVX-512 CPU.
template <typename F>
__attribute__((always_inline)) inline double Sum(const float *x, int64_t c, F f) {
  double lanes[32] = {};
  int64_t i = 0;
  for (; i + 32 <= c; i += 32) {
    for (int t = 0; t < 32; ++t) lanes[t] += f(x[i + t]);
  }
  double sum = 0;
  for (; i < c; ++i) sum += f(x[i]);
  for (int t = 0; t < 32; ++t) sum += lanes[t];
  return sum;
}

VECTOR_CLONES void NormalizeRow(const float *x, const float *weight, const float *bias, float eps, int64_t c, float *y) {
  const double mean = Sum(x, c, [](float v) { return static_cast<double>(v); }) / c;
  const double var = Sum(x, c, [mean](float v) { return (v - mean) * (v - mean); }) / c;
  const float m = static_cast<float>(mean), rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
  for (int64_t i = 0; i < c; ++i) y[i] = (x[i] - m) * rstd * weight[i] + bias[i];
}

VECTOR_CLONES void GeluRange(const float *x, int64_t begin, int64_t end, float *y) {
  for (int64_t i = begin; i < end; ++i) y[i] = Gelu(x[i]);
}

// Rows [begin, end) of x [M, C] with bias [C] added before the GELU.
VECTOR_CLONES void BiasGeluRows(const float *x, const float *bias, int64_t c, int64_t begin, int64_t end, float *y) {
  for (int64_t row = begin; row < end; ++row) {
    const float *in = x + row * c;
    float *out = y + row * c;
    for (int64_t i = 0; i < c; ++i) out[i] = Gelu(in[i] + bias[i]);
  }
}

// Softmax of each row of x [M, N] (plus a bias row of N values, when kBias), rows [begin, end):
// the maximum and the sum over 16 partial results (so both vectorise), the exponentials in a
// loop of their own.  Row r takes bias row r / rows_per_bias.
template <bool kBias>
__attribute__((always_inline)) inline void SoftmaxRowsOf(const float *__restrict x, const float *__restrict bias,
                                                         int64_t rows_per_bias, int64_t n, int64_t begin,
                                                         int64_t end, float *__restrict y) {
  for (int64_t row = begin; row < end; ++row) {
    const float *in = x + row * n;
    const float *b = kBias ? bias + row / rows_per_bias * n : nullptr;
    const auto value = [in, b](int64_t i) { return kBias ? in[i] + b[i] : in[i]; };
    float *out = y + row * n;
    float tops[16], sums[16] = {};
    for (int t = 0; t < 16; ++t) tops[t] = value(0);
    const int64_t blocks = n / 16 * 16;
    for (int64_t i = 0; i < blocks; i += 16) {
      for (int t = 0; t < 16; ++t) tops[t] = std::max(tops[t], value(i + t));
    }
    float top = value(0);
    for (int64_t i = blocks; i < n; ++i) top = std::max(top, value(i));
    for (int t = 0; t < 16; ++t) top = std::max(top, tops[t]);
    for (int64_t i = 0; i < n; ++i) out[i] = ExpNonPositive(value(i) - top);
    for (int64_t i = 0; i < blocks; i += 16) {
      for (int t = 0; t < 16; ++t) sums[t] += out[i + t];
    }
    float sum = 0;
    for (int64_t i = blocks; i < n; ++i) sum += out[i];
    for (int t = 0; t < 16; ++t) sum += sums[t];
    const float inverse = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i) out[i] *= inverse;
  }
}

VECTOR_CLONES void SoftmaxRows(const float *x, int64_t n, int64_t begin, int64_t end, float *y) {
  SoftmaxRowsOf<false>(x, nullptr, 1, n, begin, end, y);
}

VECTOR_CLONES void BiasSoftmaxRows(const float *x, const float *bias, int64_t rows_per_bias, int64_t n,
                                   int64_t begin, int64_t end, float *y) {
  SoftmaxRowsOf<true>(x, bias, rows_per_bias, n, begin, end, y);
}

VECTOR_CLONES void GeluGradRange(const float *x, const float *dy, int64_t begin, int64_t end, float *dx) {
  for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * GeluDerivative(x[i]);
}

// One row of LayerNorm's backward.  With xhat = (x - mean) rstd and g = dy * weight:
// dx = rstd (g - mean(g) - xhat mean(g xhat)); the row's dy xhat and dy are added to dweight, dbias (double).
VECTOR_CLONES void NormalizeRowGrad(const float *x, const float *weight, const float *dy, float eps, int64_t c,
                                    float *dx, double *dweight, double *dbias) {
  const double mean = Sum(x, c, [](float v) { return static_cast<double>(v); }) / c;
  const double var = Sum(x, c, [mean](float v) { return (v - mean) * (v - mean); }) / c;
  const float m = static_cast<float>(mean), rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
  double g_sum = 0, gx_sum = 0;
  for (int64_t i = 0; i < c; ++i) {
    const float xhat = (x[i] - m) * rstd, g = dy[i] * weight[i];
    g_sum += g;
    gx_sum += g * xhat;
    dweight[i] += dy[i] * xhat;
    dbias[i] += dy[i];
  }
  const float g_mean = static_cast<float>(g_sum / c), gx_mean = static_cast<float>(gx_sum / c);
  for (int64_t i = 0; i < c; ++i) dx[i] = rstd * (dy[i] * weight[i] - g_mean - (x[i] - m) * rstd * gx_mean);
}

// Attention's head layout: tokens [B, N, G * H * d] <-> G tensors [B, H, N, d], where head h of
// group g (q, k, v for G = 3) is columns (g H + h) d .. (g H + h + 1) d of each token row.
// f(g, column, token, head) for every head of every token row, with the offsets (in values) of
// its d values: `column` within the row, `token` in the tokens, `head` in group g's tensor.
// The rows are split over threads.
template <typename F>
void ForEachHeadSlice(int64_t groups, const int64_t *head_shape, F f) {
  const int64_t batch = head_shape[0], h = head_shape[1], n = head_shape[2], d = head_shape[3];
  const int64_t row = groups * h * d;
  Split(batch * n, row, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / n, t = r % n;
      for (int64_t g = 0; g < groups; ++g) {
        for (int64_t j = 0; j < h; ++j) {
          const int64_t column = (g * h + j) * d;
          f(g, column, r * row + column, ((b * h + j) * n + t) * d);
        }
      }
    }
  });
}

// `kToHeads` copies the token rows into the heads; otherwise the heads back into the rows.
template <bool kToHeads>
void MoveHeads(int64_t groups, char *tokens, char **heads, const int64_t *head_shape, int64_t element_bytes) {
  const int64_t head_bytes = head_shape[3] * element_bytes;
  ForEachHeadSlice(groups, head_shape, [&](int64_t g, int64_t, int64_t token, int64_t head) {
    char *row = tokens + token * element_bytes, *slice = heads[g] + head * element_bytes;
    std::memcpy(kToHeads ? slice : row, kToHeads ? row : slice, head_bytes);
  });
}

// The patch embedding's layout: image [B, C, gh p, gw p] <-> patches [B gh gw, C p p], where row
// (b, i, j) holds patch (i, j) of image b flattened as (channel, row, column).  `kToPatches` copies
// the image into the rows; otherwise the rows back into the image.
// `row_values` is C p p, the length of a patch row.
template <bool kToPatches>
void MovePatches(char *image, char *patches, const int64_t *image_shape, int64_t row_values, int64_t element_bytes) {
  const int64_t channels = image_shape[1], height = image_shape[2], width = image_shape[3];
  const int64_t p = static_cast<int64_t>(std::lround(std::sqrt(row_values / channels)));
  const int64_t gh = height / p, gw = width / p, piece = p * element_bytes;
  Split(image_shape[0] * gh * gw, channels * p * p, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / (gh * gw), i = r / gw % gh, j = r % gw;
      for (int64_t c = 0; c < channels; ++c) {
        for (int64_t y = 0; y < p; ++y) {
          char *row = patches + (r * channels * p + c * p + y) * piece;
          char *pixels = image + (((b * channels + c) * height + i * p + y) * width + j * p) * element_bytes;
          std::memcpy(kToPatches ? row : pixels, kToPatches ? pixels : row, piece);
        }
      }
    }
  });
}

// y = (x + bias) * scale over d values.
VECTOR_CLONES void AddScale(const float *x, const float *bias, float scale, int64_t d, float *y) {
  for (int64_t i = 0; i < d; ++i) y[i] = (x[i] + bias[i]) * scale;
}

// MoveHeads<true> for float32 with a bias and a scale per group: head h of group g gets
// (token columns + bias columns) * scale[g].
void BiasScaleHeads(int64_t groups, const float *tokens, const float *bias, const float *scale, float **heads,
                    const int64_t *head_shape) {
  ForEachHeadSlice(groups, head_shape, [&](int64_t g, int64_t column, int64_t token, int64_t head) {
    AddScale(tokens + token, bias + column, scale[g], head_shape[3], heads[g] + head);
  });
}

// Bytes per value of the dtypes the layout kernels copy (0 for others); all params must share it.
int64_t ElementBytes(int count, const char **dtypes) {
  for (int i = 1; i < count; ++i) {
    if (std::strcmp(dtypes[i], dtypes[0]) != 0) return 0;
  }
  if (std::strcmp(dtypes[0], "float32") == 0) return 4;
  if (std::strcmp(dtypes[0], "float16") == 0 || std::strcmp(dtypes[0], "bfloat16") == 0) return 2;
  return 0;
}

// Both patch layout kernels: the input is params[0], the output params[1]; the image is 4-d, the
// patches 2-d.  Returns 1 for other shapes or dtypes.
template <bool kToPatches>
int PatchLayoutKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  const int image = kToPatches ? 0 : 1, patches = 1 - image;
  const int64_t element_bytes = ElementBytes(nparam, dtypes);
  if (nparam != 2 || element_bytes == 0 || ndims[image] != 4 || ndims[patches] != 2) return 1;
  MovePatches<kToPatches>(static_cast<char *>(params[image]), static_cast<char *>(params[patches]), shapes[image],
                          shapes[patches][1], element_bytes);
  return 0;
}

bool AllFloat32(int count, const char **dtypes) {
  for (int i = 0; i < count; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

int64_t Elements(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

}  // namespace

// params: x -> y, same shape
extern "C" int GeluKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                          void *stream, void *extra) {
  if (nparam != 2 || !AllFloat32(nparam, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[1]);
  Split(Elements(ndims[0], shapes[0]), 1, [&](int64_t begin, int64_t end) { GeluRange(x, begin, end, y); });
  return 0;
}

// params: x [..., C], bias [C] -> y [..., C] = GELU(x + bias)
extern "C" int BiasGeluKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                              void *stream, void *extra) {
  if (nparam != 3 || !AllFloat32(nparam, dtypes) || ndims[1] != 1) return 1;
  const int64_t c = shapes[0][ndims[0] - 1];
  if (shapes[1][0] != c) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *bias = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  Split(Elements(ndims[0], shapes[0]) / c, c, [&](int64_t begin, int64_t end) {
    BiasGeluRows(x, bias, c, begin, end, y);
  });
  return 0;
}

// params: x [..., N] -> y [..., N], the softmax of each row;
// or x [B, ..., N], bias [B, N] -> y, the softmax of each row of x plus its batch's bias row
extern "C" int SoftmaxKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                             void *stream, void *extra) {
  if ((nparam != 2 && nparam != 3) || !AllFloat32(nparam, dtypes)) return 1;
  const int64_t n = shapes[0][ndims[0] - 1], rows = Elements(ndims[0], shapes[0]) / n;
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[nparam - 1]);
  if (nparam == 2) {
    Split(rows, n, [&](int64_t begin, int64_t end) { SoftmaxRows(x, n, begin, end, y); });
    return 0;
  }
  const float *bias = static_cast<const float *>(params[1]);
  if (ndims[1] != 2 || shapes[1][0] != shapes[0][0] || shapes[1][1] != n) return 1;
  const int64_t rows_per_bias = rows / shapes[0][0];
  Split(rows, n, [&](int64_t begin, int64_t end) { BiasSoftmaxRows(x, bias, rows_per_bias, n, begin, end, y); });
  return 0;
}

// params: x, dy -> dx, all of one shape
extern "C" int GeluGradKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                              void *stream, void *extra) {
  if (nparam != 3 || !AllFloat32(nparam, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *dy = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[2]);
  Split(Elements(ndims[0], shapes[0]), 1, [&](int64_t begin, int64_t end) { GeluGradRange(x, dy, begin, end, dx); });
  return 0;
}

// params: x [..., C], weight [C], bias [C], eps [1] -> y [..., C]
extern "C" int LayerNormKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                               void *stream, void *extra) {
  if (nparam != 5 || !AllFloat32(nparam, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *weight = static_cast<const float *>(params[1]);
  const float *bias = static_cast<const float *>(params[2]);
  const float eps = static_cast<const float *>(params[3])[0];
  float *y = static_cast<float *>(params[4]);
  const int64_t c = shapes[0][ndims[0] - 1];
  Split(Elements(ndims[0], shapes[0]) / c, c, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) NormalizeRow(x + row * c, weight, bias, eps, c, y + row * c);
  });
  return 0;
}

// params: x [..., C], weight [C], dy [..., C], eps [1] -> dx [..., C], dweight [C], dbias [C]
// Each thread sums dweight and dbias over its rows in double; the partial sums are added in a fixed order.
extern "C" int LayerNormGradKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                   void *stream, void *extra) {
  if (nparam != 7 || !AllFloat32(nparam, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *weight = static_cast<const float *>(params[1]);
  const float *dy = static_cast<const float *>(params[2]);
  const float eps = static_cast<const float *>(params[3])[0];
  float *dx = static_cast<float *>(params[4]);
  float *dweight = static_cast<float *>(params[5]);
  float *dbias = static_cast<float *>(params[6]);
  const int64_t c = shapes[0][ndims[0] - 1], rows = Elements(ndims[0], shapes[0]) / c;
  const int64_t slots = HardwareThreads();
  std::vector<double> partial(2 * c * slots, 0.0);  // per chunk: dweight, then dbias
  SplitNumbered(rows, c, [&](int64_t chunk, int64_t begin, int64_t end) {
    double *sums = partial.data() + 2 * c * chunk;
    for (int64_t row = begin; row < end; ++row) {
      NormalizeRowGrad(x + row * c, weight, dy + row * c, eps, c, dx + row * c, sums, sums + c);
    }
  });
  for (int64_t i = 0; i < c; ++i) {
    double w = 0, b = 0;
    for (int64_t s = 0; s < slots; ++s) {
      w += partial[2 * c * s + i];
      b += partial[2 * c * s + c + i];
    }
    dweight[i] = static_cast<float>(w);
    dbias[i] = static_cast<float>(b);
  }
  return 0;
}

// params: x [B, N, G * H * d] -> G tensors [B, H, N, d] (the heads of each group)
extern "C" int SplitHeadsKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                void *stream, void *extra) {
  const int64_t element_bytes = ElementBytes(nparam, dtypes);
  if (nparam < 2 || element_bytes == 0 || ndims[0] != 3 || ndims[1] != 4) return 1;
  MoveHeads<true>(nparam - 1, static_cast<char *>(params[0]), reinterpret_cast<char **>(params + 1), shapes[1],
                  element_bytes);
  return 0;
}

// params: x [B, N, G * H * d], bias [G * H * d], scale [G] -> G tensors [B, H, N, d], float32:
// head h of group g is (x + bias) * scale[g] at columns (g H + h) d .. (g H + h + 1) d
extern "C" int BiasSplitHeadsKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                    void *stream, void *extra) {
  const int64_t groups = nparam - 3;
  if (groups < 1 || !AllFloat32(nparam, dtypes) || ndims[0] != 3 || ndims[1] != 1 || ndims[2] != 1 ||
      ndims[3] != 4 || shapes[1][0] != shapes[0][2] || shapes[2][0] != groups) {
    return 1;
  }
  BiasScaleHeads(groups, static_cast<const float *>(params[0]), static_cast<const float *>(params[1]),
                 static_cast<const float *>(params[2]), reinterpret_cast<float **>(params + 3), shapes[3]);
  return 0;
}

// params: G tensors [B, H, N, d] -> y [B, N, G * H * d] (SplitHeads inverted)
extern "C" int MergeHeadsKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                void *stream, void *extra) {
  const int64_t element_bytes = ElementBytes(nparam, dtypes);
  if (nparam < 2 || element_bytes == 0 || ndims[0] != 4 || ndims[nparam - 1] != 3) return 1;
  MoveHeads<false>(nparam - 1, static_cast<char *>(params[nparam - 1]), reinterpret_cast<char **>(params),
                   shapes[0], element_bytes);
  return 0;
}

// params: image [B, C, H, W] -> patches [B (H / p) (W / p), C p p]
extern "C" int ImagePatchesKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                  void *stream, void *extra) {
  return PatchLayoutKernel<true>(nparam, params, ndims, shapes, dtypes);
}

// params: patches [B (H / p) (W / p), C p p] -> image [B, C, H, W] (ImagePatches inverted)
extern "C" int PatchesImageKernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                  void *stream, void *extra) {
  return PatchLayoutKernel<false>(nparam, params, ndims, shapes, dtypes);
}
