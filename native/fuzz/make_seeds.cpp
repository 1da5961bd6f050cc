// Writes the fuzz targets' seed corpus: the shapes, options and special cases of the C++ and
// vitest suites (cols 1, 2, 10, 1000, 1025; T 0.05..100; every divergence, reduction and label
// case) and the cases issue 13 reports, spelt in the byte layout the targets decode (fuzz_bytes.h
// and the headers of each fuzz_*.cpp). Usage: kdfuse_fuzz_seeds OUT_DIR (writes OUT_DIR/<target>/).
#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Seed {
  std::vector<uint8_t> b;
  void u8(unsigned v) { b.push_back(uint8_t(v)); }
  void u16(unsigned v) { u8(v & 0xff); u8((v >> 8) & 0xff); }
  void u64(uint64_t v) { for (int i = 0; i < 8; ++i) u8(unsigned(v >> (8 * i)) & 0xff); }
  void f32(float f) {  // class 240: raw bits
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u8(240);
    u16(u & 0xffff);
    u16(u >> 16);
  }
};

void write(const std::string& dir, const std::string& name, const Seed& s) {
  mkdir(dir.c_str(), 0755);
  const std::string path = dir + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) { std::perror(path.c_str()); return; }
  std::fwrite(s.b.data(), 1, s.b.size(), f);
  std::fclose(f);
}

// Table indices (see the kTemps / kUnit / kGrad tables in fuzz_distill_loss.cpp).
enum { T1 = 0, T2 = 1, T4 = 2, T005 = 3, T100 = 4, T05 = 5, T3 = 6, T73 = 7, T20 = 8, T1e4 = 14, T1e6 = 15 };
enum { U05 = 0, U0 = 1, U1 = 2, U09 = 3, U01 = 4 };

struct Distill {
  unsigned rows = 4, cols = 10, t = T1, alpha = U05, eps = U0, beta = U05, grad = 0;
  bool t2 = true, labels = false, want_rows = true, gs = true, gt = true, gor = false;
  unsigned red = 0, div = 0, threads = 1, isa = 0, scale = 0;
  uint64_t seed = 1;
  std::vector<float> s, t_;  // spelt logits (the rest from the filler)
  std::vector<unsigned> label_bytes;
};

Seed encode(const Distill& d) {
  Seed s;
  s.u8(d.rows - 1);
  s.u16(d.cols - 1);
  s.u8(d.t);
  s.u8(d.alpha);
  s.u8(d.eps);
  s.u8(d.eps == U0 ? 1 : 0);
  s.u8(d.beta);
  s.u8(d.grad);
  s.u8((d.t2 ? 1 : 0) | (d.labels ? 2 : 0) | (d.want_rows ? 4 : 0) | (d.gs ? 8 : 0) | (d.gt ? 16 : 0) | (d.gor ? 32 : 0));
  s.u8(0);  // flags2: no null inputs, finite gradOutput rows
  s.u8(d.red);
  s.u8(d.div);
  s.u8(0);  // ignoreIndex -100
  s.u8(d.threads - 1);
  s.u8(d.isa);
  s.u8(d.scale); s.u8(0);  // student mode: scale, no specials
  s.u8(d.scale); s.u8(0);  // teacher mode
  s.u64(d.seed);
  if (d.labels)
    for (unsigned r = 0; r < d.rows; ++r) s.u8(r < d.label_bytes.size() ? d.label_bytes[r] : r % 12);
  if (d.gor)
    for (unsigned r = 0; r < d.rows; ++r) s.u8(r % 4);
  if (!d.s.empty() || !d.t_.empty()) {
    const size_t n = size_t(d.rows) * d.cols;
    for (size_t i = 0; i < n; ++i) s.f32(i < d.s.size() ? d.s[i] : 0.0f);
    for (size_t i = 0; i < n && i < d.t_.size(); ++i) s.f32(d.t_[i]);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  mkdir(out.c_str(), 0755);
  const std::string dd = out + "/distill_loss";
  int n = 0;
  // the suites' sweep: shapes x temperatures x divergences x reductions, with and without labels
  const unsigned cols[] = {1, 2, 10, 64, 65, 1000, 1025, 2048};
  const unsigned temps[] = {T005, T1, T2, T4, T100, T73};
  for (unsigned ci = 0; ci < 8; ++ci)
    for (unsigned ti = 0; ti < 6; ++ti) {
      Distill d;
      d.cols = cols[ci];
      d.rows = 1 + (ci * 5 + ti) % 9;
      d.t = temps[ti];
      d.div = (ci + ti) % 3;
      d.red = ti % 3;
      d.labels = (ci + ti) % 2;
      d.alpha = d.labels ? U09 : U05;
      d.eps = ci % 3 == 0 && d.labels ? U01 : U0;
      d.gor = d.red == 2 && ci % 2;
      d.threads = 1 + ci % 4;
      d.isa = ti % 3;
      d.scale = ci % 4;
      d.seed = 1000 + ci * 10 + ti;
      write(dd, "sweep_" + std::to_string(++n), encode(d));
    }
  // issue 13 item 4: the 4x10 case at T = 1e4 and 1e6 (outside the documented range)
  for (unsigned t : {T1e4, T1e6}) {
    Distill d;
    d.t = t;
    d.seed = 4;
    write(dd, "issue13_item4_T" + std::to_string(t), encode(d));
  }
  // issue 13 item 6: student [0, -Inf], teacher [0, -6], T = 0.05 (the float64 loss is Infinity)
  {
    Distill d;
    d.rows = 1; d.cols = 2; d.t = T005; d.gt = true;
    d.s = {0.0f, -INFINITY};
    d.t_ = {0.0f, -6.0f};
    write(dd, "issue13_item6_underflow", encode(d));
  }
  // issue 13 item 7: KL on near one-hot rows at T = 0.05
  {
    Distill d;
    d.rows = 1; d.cols = 4; d.t = T005;
    d.s = {3.0f, 2.2f, -1.0f, 0.4f};
    d.t_ = {3.1f, 2.5f, 0.2f, -0.3f};
    write(dd, "issue13_item7_near_one_hot", encode(d));
  }
  // labels: ignored rows, out of range, every row ignored
  {
    Distill d;
    d.labels = true; d.alpha = U05; d.label_bytes = {12, 3, 14, 13};
    write(dd, "labels_out_of_range", encode(d));
    d.label_bytes = {12, 13, 12, 13};
    write(dd, "labels_all_ignored", encode(d));
    d.label_bytes = {0, 12, 5, 9};
    d.red = 0;
    write(dd, "labels_some_ignored", encode(d));
  }
  // -Inf masks and extreme values
  {
    Distill d;
    d.rows = 2; d.cols = 5; d.t = T1;
    d.s = {0.f, -INFINITY, 1.f, -INFINITY, 2.f, -INFINITY, -INFINITY, -INFINITY, -INFINITY, 5.f};
    d.t_ = {0.f, -INFINITY, 1.f, 2.f, -INFINITY, -INFINITY, 3.f, -INFINITY, -INFINITY, 5.f};
    write(dd, "neg_inf_masks", encode(d));
    d.s = {3e38f, -3e38f, 1e-45f, 0.f, 1.f, 1e30f, -1e30f, 0.f, 1.f, 2.f};
    d.t_ = {1e30f, 0.f, 0.f, 0.f, 0.f, 0.f, 1e-38f, 1e-45f, 0.f, 1.f};
    d.t = T100;
    write(dd, "huge_and_subnormal", encode(d));
  }

  // softmax forward: rows, cols, T, log, threads, isa, mode(2), seed
  const std::string sd = out + "/softmax";
  n = 0;
  const unsigned stemps[] = {0, 1, 2, 3, 4, 7};  // 1, 2, 4, 0.05, 100, 7.3 in fuzz_softmax.cpp's table
  for (unsigned ci = 0; ci < 8; ++ci)
    for (unsigned ti = 0; ti < 6; ++ti) {
      Seed s;
      s.u8((ci * 3 + ti) % 9);
      s.u16(cols[ci] - 1);
      s.u8(stemps[ti]);
      s.u8(ti % 2);
      s.u8(ci % 4);
      s.u8(ti % 3);
      s.u8(ci % 4);
      s.u8(ti == 5 ? 200 : 0);  // one in a few with specials in the filler
      s.u64(2000 + ci * 10 + ti);
      write(sd, "sweep_" + std::to_string(++n), s);
    }
  {
    Seed s;  // one row, -Inf around a single finite logit, T = 0.05
    s.u8(0); s.u16(3); s.u8(3); s.u8(1); s.u8(0); s.u8(0); s.u8(0); s.u8(0); s.u64(7);
    for (float v : {-INFINITY, 5.0f, -INFINITY, -INFINITY}) s.f32(v);
    write(sd, "single_finite", s);
  }

  // softmax backward: rows, cols, T, flags (log, y from forward), threads, isa, mode y, mode dy, seed
  const std::string bd = out + "/softmax_backward";
  n = 0;
  for (unsigned ci = 0; ci < 8; ++ci)
    for (unsigned ti = 0; ti < 6; ++ti) {
      Seed s;
      s.u8((ci * 3 + ti) % 9);
      s.u16(cols[ci] - 1);
      s.u8(stemps[ti] < 6 ? stemps[ti] : 5);
      s.u8(2 | (ti % 2));
      s.u8(ci % 4);
      s.u8(ti % 3);
      s.u8(ci % 4); s.u8(0);
      s.u8(0); s.u8(0);
      s.u64(3000 + ci * 10 + ti);
      write(bd, "sweep_" + std::to_string(++n), s);
    }

  // ig: accumulate?, x rows, baseline rows, features, points, flags, mode(2), seed
  const std::string id = out + "/ig";
  n = 0;
  const unsigned feats[] = {1, 3, 64, 784, 300};
  for (unsigned fi = 0; fi < 5; ++fi)
    for (unsigned acc = 0; acc < 2; ++acc) {
      Seed s;
      s.u8(acc);
      s.u8(fi % 4);
      s.u8((fi + acc) % 3);
      s.u16(feats[fi] - 1);
      s.u8(fi == 0 ? 0 : 4 + fi * 5);
      s.u8(0);
      s.u8(fi % 4); s.u8(0);
      s.u64(4000 + fi * 2 + acc);
      write(id, "sweep_" + std::to_string(++n), s);
    }
  std::printf("seeds written under %s\n", out.c_str());
  return 0;
}
