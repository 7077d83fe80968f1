// Bicubic resize of an RGB uint8 image followed by a crop, computing only the cropped pixels;
// called through ctypes (resize_crop.py).
//
// The values are those of Pillow's bicubic resampling (antialiased, a = -0.5), which MindSpore's
// Resize(Inter.PILCUBIC) reproduces: per axis, each output sample is a normalised weighted sum of
// the input samples within 2 * max(scale, 1) of its centre, weights in fixed point with 22
// fractional bits, the horizontal pass first and its result rounded to uint8 before the vertical
// pass.  Each output pixel depends only on its own row's and column's weights, so the crop can be
// computed without the rest of the resized image.
//
// Both passes run as "vertical" passes (the same weights applied to whole rows, which vectorise);
// the horizontal one works on the transposed image.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

// VECTOR_CLONES (clones for several x86-64 levels) comes with the compile flags: ppt_ms/native.py.
namespace {

constexpr int kChannels = 3;
constexpr int kFractionBits = 22;  // 32 bits minus 8 for the value and 2 for the filter's overshoot

double Bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Weights of output samples [begin, begin + count) of an axis resampled from in_size to out_size:
// sample i reads inputs first[i] .. first[i] + size - 1 (weights past the filter's reach are zero).
struct Taps {
  int size = 0;
  std::vector<int> first;
  std::vector<int32_t> weight;  // [count][size]
};

Taps MakeTaps(int in_size, int out_size, int begin, int count) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double stretch = std::max(scale, 1.0);  // widen the filter when shrinking (antialiasing)
  const double reach = 2.0 * stretch;
  Taps taps;
  taps.size = static_cast<int>(std::ceil(reach)) * 2 + 1;
  taps.first.resize(count);
  taps.weight.assign(static_cast<size_t>(count) * taps.size, 0);
  std::vector<double> w(taps.size);
  for (int i = 0; i < count; ++i) {
    const double center = (begin + i + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - reach + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + reach + 0.5), in_size);
    double total = 0.0;
    for (int x = lo; x < hi; ++x) {
      w[x - lo] = Bicubic((x - center + 0.5) / stretch);
      total += w[x - lo];
    }
    int32_t *fixed = &taps.weight[static_cast<size_t>(i) * taps.size];
    for (int x = 0; x < hi - lo; ++x) {
      const double v = (total != 0.0 ? w[x] / total : w[x]) * (1 << kFractionBits);
      fixed[x] = static_cast<int32_t>(v < 0 ? v - 0.5 : v + 0.5);  // rounded half away from zero
    }
    taps.first[i] = lo;
  }
  return taps;
}

// The inputs [first, end) that the taps read.
std::pair<int, int> Reach(const Taps &taps, int in_size) {
  int end = 0;
  for (int f : taps.first) end = std::max(end, std::min(in_size, f + taps.size));
  return {taps.first.front(), end};
}

// src rows [in_rows][row_len] (row i at src + i * stride) -> out [taps.first.size()][row_len]:
// output row i = sum over t of weight[i][t] * input row first[i] + t, rounded to uint8.
VECTOR_CLONES void Resample(const uint8_t *src, int in_rows, int row_len, int64_t stride, const Taps &taps,
                            int first_offset, uint8_t *out) {
  std::vector<int32_t> sum(row_len);
  for (size_t i = 0; i < taps.first.size(); ++i) {
    const int first = taps.first[i] - first_offset;
    const int32_t *weight = &taps.weight[i * taps.size];
    std::fill(sum.begin(), sum.end(), 1 << (kFractionBits - 1));
    for (int t = 0; t < std::min(taps.size, in_rows - first); ++t) {
      const uint8_t *row = src + (first + t) * stride;
      const int32_t w = weight[t];
      for (int x = 0; x < row_len; ++x) sum[x] += row[x] * w;
    }
    uint8_t *dst = out + i * row_len;
    for (int x = 0; x < row_len; ++x) dst[x] = static_cast<uint8_t>(std::clamp(sum[x] >> kFractionBits, 0, 255));
  }
}

// Pixels [rows][cols] (row r at src + r * stride) -> [cols][rows], contiguous.
void Transpose(const uint8_t *src, int rows, int cols, int64_t stride, uint8_t *dst) {
  constexpr int kBlock = 32;
  for (int r0 = 0; r0 < rows; r0 += kBlock) {
    for (int c0 = 0; c0 < cols; c0 += kBlock) {
      for (int r = r0; r < std::min(rows, r0 + kBlock); ++r) {
        for (int c = c0; c < std::min(cols, c0 + kBlock); ++c) {
          const uint8_t *from = src + r * stride + c * kChannels;
          uint8_t *to = dst + (static_cast<int64_t>(c) * rows + r) * kChannels;
          to[0] = from[0];
          to[1] = from[1];
          to[2] = from[2];
        }
      }
    }
  }
}

}  // namespace

// image [height][width][3] -> crop [crop_height][crop_width][3]: rows top.., columns left.. of the
// image resized to [resized_height][resized_width].  Returns 0, or 1 if the crop is not inside.
extern "C" int ResizeCropBicubic(const uint8_t *image, int height, int width, int resized_height, int resized_width,
                                 int top, int left, int crop_height, int crop_width, uint8_t *crop) {
  if (top < 0 || left < 0 || top + crop_height > resized_height || left + crop_width > resized_width) return 1;
  const Taps columns = MakeTaps(width, resized_width, left, crop_width);
  const Taps rows = MakeTaps(height, resized_height, top, crop_height);
  const auto [row_begin, row_end] = Reach(rows, height);
  const int used_rows = row_end - row_begin;
  // horizontal pass over the rows the vertical pass reads, as a vertical pass over the columns
  std::vector<uint8_t> columns_first(static_cast<size_t>(width) * used_rows * kChannels);
  std::vector<uint8_t> narrowed_t(static_cast<size_t>(crop_width) * used_rows * kChannels);
  std::vector<uint8_t> narrowed(narrowed_t.size());
  Transpose(image + static_cast<int64_t>(row_begin) * width * kChannels, used_rows, width,
            static_cast<int64_t>(width) * kChannels, columns_first.data());
  Resample(columns_first.data(), width, used_rows * kChannels, static_cast<int64_t>(used_rows) * kChannels, columns, 0,
           narrowed_t.data());
  Transpose(narrowed_t.data(), crop_width, used_rows, static_cast<int64_t>(used_rows) * kChannels, narrowed.data());
  Resample(narrowed.data(), used_rows, crop_width * kChannels, static_cast<int64_t>(crop_width) * kChannels, rows,
           row_begin, crop);
  return 0;
}
