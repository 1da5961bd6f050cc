// Turns libFuzzer's bytes into shapes, options and float data for the kdfuse core.
//
// The layout is fixed (a header of choices, then per-element bytes) so that the seed writer
// (make_seeds.cpp) can spell test cases as bytes and the fuzzer's mutations stay meaningful.
// Every choice byte picks from a table of interesting values (the documented range's ends, just
// outside them, NaN, +-Inf, huge, subnormal) or, for its last entries, reads raw bits. When the
// bytes run out, the remaining elements come from a generator seeded by the header, so a short
// input can still describe a long row (chunked passes, split rows) without thousands of bytes.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace kdfuse_fuzz {

constexpr float kInfF = std::numeric_limits<float>::infinity();
constexpr float kNaNF = std::numeric_limits<float>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  bool empty() const { return i_ >= n_; }
  uint8_t u8() { return i_ < n_ ? p_[i_++] : 0; }
  uint16_t u16() { return uint16_t(u8() | (uint16_t(u8()) << 8)); }
  uint32_t u32() { return uint32_t(u16()) | (uint32_t(u16()) << 16); }
  uint64_t u64() { return uint64_t(u32()) | (uint64_t(u32()) << 32); }
  float raw_f32() {
    const uint32_t b = u32();
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  double raw_f64() {
    const uint64_t b = u64();
    double d;
    std::memcpy(&d, &b, 8);
    return d;
  }
  // One of table[0..n), or raw bits when the byte is past the table.
  template <size_t N>
  double pick(const double (&table)[N]) {
    const uint8_t b = u8();
    return b < N ? table[b] : raw_f64();
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t i_ = 0;
};

// splitmix64: the filler for elements the bytes did not spell.
struct Filler {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
  double normal() {  // Box-Muller, one output
    const double u = 1.0 - uniform(), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

// The special float values an element may take.
inline float special_f32(uint8_t k) {
  static const float table[] = {0.0f, -0.0f, kNaNF, kInfF, -kInfF, std::numeric_limits<float>::max(),
                                -std::numeric_limits<float>::max(), std::numeric_limits<float>::min(),
                                std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min(),
                                1e30f, -1e30f, 88.72f, -103.97f, 1e6f, -1e6f, 3.4e37f, 1.0f, -1.0f, 1e-30f};
  return table[k % (sizeof table / sizeof table[0])];
}

// How a row of elements is spelt and filled.
struct ValueMode {
  double scale = 1.0;     // magnitude of the generated values
  unsigned special = 0;   // filler: one element in 2^(8 - special/32) is special (0: none)
  bool neg_inf_only = false;  // filler specials are -Inf only (valid input that masks classes)
};

inline ValueMode read_mode(Bytes& in) {
  static const double scales[] = {1.0, 4.0, 0.01, 30.0, 100.0, 1e3, 1e4, 1e-6, 1e20, 1e37};
  ValueMode m;
  m.scale = scales[in.u8() % (sizeof scales / sizeof scales[0])];
  const uint8_t sp = in.u8();
  m.special = sp < 128 ? 0 : sp - 127;
  m.neg_inf_only = (sp & 1) != 0;
  return m;
}

// n floats: each spelt element is a class byte (< 160: a 16-bit value times the scale; < 240: a
// special value; else raw float bits); after the bytes end, the filler.
inline std::vector<float> read_floats(Bytes& in, size_t n, const ValueMode& m, Filler& fill) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    if (!in.empty()) {
      const uint8_t c = in.u8();
      if (c < 160) v[i] = float(double(int16_t(in.u16())) / 4096.0 * m.scale);
      else if (c < 240) v[i] = special_f32(uint8_t(c - 160));
      else v[i] = in.raw_f32();
      continue;
    }
    if (m.special && (fill.next() & ((uint64_t(1) << (8 - m.special / 32)) - 1)) == 0)
      v[i] = m.neg_inf_only ? -kInfF : special_f32(uint8_t(fill.next()));
    else
      v[i] = float(fill.normal() * m.scale);
  }
  return v;
}

// Temperatures: the documented accuracy range is [0.05, 100] (README, "Accuracy and determinism").
inline bool in_documented_temperature_range(double t) { return t >= 0.05 && t <= 100.0; }

}  // namespace kdfuse_fuzz
