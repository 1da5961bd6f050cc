// sgemm: packed, cache-blocked matrix product (the GotoBLAS / BLIS loop structure, written here).
//
//   for each NC-wide column block of C        (packed B block KC x NC: lives in L2/L3)
//     for each KC slice of the k dimension    (fixed boundaries: the k sum order never changes)
//       pack B[KC, NC] into NR-wide panels
//       for each MC-tall row block              (packed A block MC x KC: lives in L2)
//         pack A[MC, KC] into MR-tall panels
//         for each NR panel, for each MR panel: micro-kernel (B panel KC x NR stays in L1)
//
// Threads take disjoint column (or row) ranges of C and run this whole nest on their own, so no
// element's k sum is ever split between threads and C is bit-identical for any thread count.
//
// Built with KDFUSE_HAVE_BLAS (CMake found a BLAS with CBLAS: OpenBLAS, BLIS, Accelerate), sgemm
// calls that library's cblas_sgemm instead, unless sgemm_force_builtin(true) says otherwise.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

#ifdef KDFUSE_HAVE_BLAS
#ifdef __APPLE__
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif
#endif

#include "gemm_kernels.h"
#include "kdfuse_core.h"
#include "thread_pool.h"

namespace kdfuse {

namespace {

// KC x NR x 4 bytes = 16 KiB of B panel stays in a 32 KiB L1 beside the streaming A panel
// (6 KiB); MC x KC x 4 = 144 KiB of packed A leaves room in a 512 KiB L2 for the B panels that
// pass through; a KC x NC B block of 4 MiB sits in L3.
constexpr int64_t kKC = 256;
constexpr int64_t kMC = 144;   // a multiple of MR
constexpr int64_t kNC = 4096;  // a multiple of NR
// With a single MC block each B panel is used once right after packing, so a narrow B block
// (256 KiB) keeps it in L2 between the pack and the use.
constexpr int64_t kNCSingleRowBlock = 256;

static_assert(kMC % kGemmMR == 0 && kNC % kGemmNR == 0 && kNCSingleRowBlock % kGemmNR == 0, "block sizes");

bool g_force_generic = false;

void micro_generic(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, float alpha, float beta, int mr,
                   int nr) {
  float acc[kGemmMR * kGemmNR] = {};
  for (int64_t p = 0; p < kc; ++p, pa += kGemmMR, pb += kGemmNR) {
    for (int r = 0; r < kGemmMR; ++r) {
      const float ar = pa[r];
      for (int j = 0; j < kGemmNR; ++j) acc[r * kGemmNR + j] += ar * pb[j];
    }
  }
  for (float& v : acc) v *= alpha;
  gemm_write_tile(acc, c, ldc, beta, mr, nr);
}

// What the CPU runs: the micro-kernel, and the full-panel packs that need a transpose (null: the
// scalar loops below).
struct Kernels {
  GemmMicroKernel micro;
  void (*pack_a_rows)(const float* a, int64_t lda, int64_t kc, float* dst);
  void (*pack_b_rows)(const float* b, int64_t ldb, int64_t kc, float* dst);
};

Kernels pick_kernels() {
#if defined(KDFUSE_HAVE_AVX2)
  if (!g_force_generic && cpu_has_avx2_fma()) return {&sgemm_micro_avx2, &sgemm_pack_a_rows_avx2, &sgemm_pack_b_rows_avx2};
#endif
  return {&micro_generic, nullptr, nullptr};
}

// A 64-byte aligned float buffer that only grows, so a thread allocates once and reuses it.
class PackBuffer {
 public:
  ~PackBuffer() { std::free(p_); }
  float* get(int64_t n) {
    if (n > cap_) {
      std::free(p_);
      const size_t bytes = (size_t(n) * sizeof(float) + 63) / 64 * 64;
      p_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p_) throw std::bad_alloc();
      cap_ = n;
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  int64_t cap_ = 0;
};

struct Operands {
  bool trans_a, trans_b;
  int64_t m, n, k;
  float alpha, beta;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  Kernels kernels;
};

// op(A)[i0 + r, p0 + p] for r < rows into MR-tall panels; rows past `rows` are zero.
void pack_a(const Operands& o, int64_t i0, int64_t rows, int64_t p0, int64_t kc, float* dst) {
  for (int64_t ir = 0; ir < rows; ir += kGemmMR, dst += kGemmMR * kc) {
    const int mr = int(std::min<int64_t>(kGemmMR, rows - ir));
    if (o.trans_a) {
      // op(A) column p is a contiguous run of a's row p0 + p
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = o.a + (p0 + p) * o.lda + i0 + ir;
        float* d = dst + p * kGemmMR;
        for (int r = 0; r < mr; ++r) d[r] = src[r];
        for (int r = mr; r < kGemmMR; ++r) d[r] = 0.0f;
      }
    } else if (mr == kGemmMR && o.kernels.pack_a_rows) {
      o.kernels.pack_a_rows(o.a + (i0 + ir) * o.lda + p0, o.lda, kc, dst);
    } else {
      // each of the MR rows is read sequentially, so the reads stay streams
      for (int r = 0; r < kGemmMR; ++r) {
        float* d = dst + r;
        if (r < mr) {
          const float* src = o.a + (i0 + ir + r) * o.lda + p0;
          for (int64_t p = 0; p < kc; ++p) d[p * kGemmMR] = src[p];
        } else {
          for (int64_t p = 0; p < kc; ++p) d[p * kGemmMR] = 0.0f;
        }
      }
    }
  }
}

// op(B)[p0 + p, j0 + j] for j < cols into NR-wide panels; columns past `cols` are zero.
void pack_b(const Operands& o, int64_t p0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
  for (int64_t jr = 0; jr < cols; jr += kGemmNR, dst += kGemmNR * kc) {
    const int nr = int(std::min<int64_t>(kGemmNR, cols - jr));
    if (o.trans_b && nr == kGemmNR && o.kernels.pack_b_rows) {
      o.kernels.pack_b_rows(o.b + (j0 + jr) * o.ldb + p0, o.ldb, kc, dst);
    } else if (o.trans_b) {
      for (int j = 0; j < kGemmNR; ++j) {
        float* d = dst + j;
        if (j < nr) {
          const float* src = o.b + (j0 + jr + j) * o.ldb + p0;
          for (int64_t p = 0; p < kc; ++p) d[p * kGemmNR] = src[p];
        } else {
          for (int64_t p = 0; p < kc; ++p) d[p * kGemmNR] = 0.0f;
        }
      }
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = o.b + (p0 + p) * o.ldb + j0 + jr;
        float* d = dst + p * kGemmNR;
        for (int j = 0; j < nr; ++j) d[j] = src[j];
        for (int j = nr; j < kGemmNR; ++j) d[j] = 0.0f;
      }
    }
  }
}

// A rectangle of a source matrix (rows of `len` contiguous floats, `ld` apart) that the next pack
// will read. The packs read many rows at once, more streams than the hardware prefetcher follows,
// so the block after the current one is fetched into L2 while the micro-kernels run.
struct Region {
  const float* base = nullptr;
  int64_t ld = 0, rows = 0, len = 0;
};

Region a_region(const Operands& o, int64_t i0, int64_t rows, int64_t p0, int64_t kc) {
  if (o.trans_a) return {o.a + p0 * o.lda + i0, o.lda, kc, rows};
  return {o.a + i0 * o.lda + p0, o.lda, rows, kc};
}

Region b_region(const Operands& o, int64_t p0, int64_t kc, int64_t j0, int64_t cols) {
  if (o.trans_b) return {o.b + j0 * o.ldb + p0, o.ldb, cols, kc};
  return {o.b + p0 * o.ldb + j0, o.ldb, kc, cols};
}

// Part `part` of `parts` of the region's rows, one prefetch per 64-byte line.
void prefetch_part(const Region& r, int64_t part, int64_t parts) {
#if defined(__GNUC__) || defined(__clang__)
  for (int64_t i = r.rows * part / parts, e = r.rows * (part + 1) / parts; i < e; ++i) {
    const char* row = reinterpret_cast<const char*>(r.base + i * r.ld);
    const char* end = reinterpret_cast<const char*>(r.base + i * r.ld + r.len);
    for (const char* q = row; q < end; q += 64) __builtin_prefetch(q, 0, 2);
  }
#else
  (void)r, (void)part, (void)parts;
#endif
}

// Every micro-tile of one (MC x NC) block of C for one KC slice, spreading the prefetch of the
// next blocks' sources over the NR panels so it overlaps the arithmetic instead of queueing.
void block_product(const Operands& o, const float* pa, const float* pb, int64_t ic, int64_t mc, int64_t jc, int64_t nc,
                   int64_t kc, float beta, const Region& next_a, const Region& next_b) {
  const int64_t panels = (nc + kGemmNR - 1) / kGemmNR;
  for (int64_t q = 0; q < panels; ++q) {
    const int64_t jr = q * kGemmNR;
    const int nr = int(std::min<int64_t>(kGemmNR, nc - jr));
    const float* pbj = pb + jr * kc;
    for (int64_t ir = 0; ir < mc; ir += kGemmMR) {
      const int mr = int(std::min<int64_t>(kGemmMR, mc - ir));
      o.kernels.micro(kc, pa + ir * kc, pbj, o.c + (ic + ir) * o.ldc + jc + jr, o.ldc, o.alpha, beta, mr, nr);
    }
    prefetch_part(next_a, q, panels);
    prefetch_part(next_b, q, panels);
  }
}

// The whole blocked nest over rows [i0, i1) and columns [j0, j1) of C, on the calling thread.
void product_range(const Operands& o, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  thread_local PackBuffer a_buf, b_buf;
  const int64_t rows = i1 - i0;
  const int64_t nc_max = rows <= kMC ? kNCSingleRowBlock : kNC;
  const int64_t mc_max = std::min(kMC, (rows + kGemmMR - 1) / kGemmMR * kGemmMR);
  float* pa = a_buf.get(mc_max * std::min(kKC, o.k) + 8);  // + 8: pack_a_rows may write 2 past
  float* pb = b_buf.get(std::min(nc_max, (j1 - j0 + kGemmNR - 1) / kGemmNR * kGemmNR) * std::min(kKC, o.k));
  // with one row block and one k slice the packed A is the same for every column block
  const bool a_once = rows <= kMC && o.k <= kKC;
  if (a_once) pack_a(o, i0, rows, 0, o.k, pa);
  for (int64_t jc = j0; jc < j1; jc += nc_max) {
    const int64_t nc = std::min(nc_max, j1 - jc);
    for (int64_t pc = 0; pc < o.k; pc += kKC) {
      const int64_t kc = std::min(kKC, o.k - pc);
      const float beta = pc == 0 ? o.beta : 1.0f;  // later slices add onto the first
      pack_b(o, pc, kc, jc, nc, pb);
      // the (k slice, column block) packed after this one, if any
      int64_t next_pc = pc + kKC, next_jc = jc;
      if (next_pc >= o.k) next_pc = 0, next_jc = jc + nc;
      const bool has_next = next_jc < j1;
      const int64_t next_kc = std::min(kKC, o.k - next_pc), next_nc = std::min(nc_max, j1 - next_jc);
      for (int64_t ic = i0; ic < i1; ic += kMC) {
        const int64_t mc = std::min(kMC, i1 - ic);
        const bool last_ic = ic + kMC >= i1;
        if (!a_once) pack_a(o, ic, mc, pc, kc, pa);
        Region next_a, next_b;
        if (!a_once && !last_ic) next_a = a_region(o, ic + kMC, std::min(kMC, i1 - ic - kMC), pc, kc);
        if (!a_once && last_ic && has_next) next_a = a_region(o, i0, std::min(kMC, rows), next_pc, next_kc);
        if (last_ic && has_next) next_b = b_region(o, next_pc, next_kc, next_jc, next_nc);
        block_product(o, pa, pb, ic, mc, jc, nc, kc, beta, next_a, next_b);
      }
    }
  }
}

// C = beta * C without touching A or B (k = 0 or alpha = 0).
void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    if (beta == 0.0f) {
      std::fill(ci, ci + n, 0.0f);
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < n; ++j) ci[j] *= beta;
    }
  }
}

}  // namespace

void sgemm_force_generic_for_testing(bool generic) { g_force_generic = generic; }

namespace {
std::atomic<bool> g_force_builtin{false};
}  // namespace

void sgemm_force_builtin(bool builtin) { g_force_builtin = builtin; }

const char* sgemm_backend() {
#ifdef KDFUSE_HAVE_BLAS
  if (!g_force_builtin) return KDFUSE_BLAS_NAME;
#endif
  return (!g_force_generic && cpu_has_avx2_fma()) ? "kdfuse-avx2" : "kdfuse-generic";
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int threads) {
  if (m <= 0 || n <= 0) return;
#ifdef KDFUSE_HAVE_BLAS
  // a BLAS found at build time (CMake option KDFUSE_BLAS): its own threads, its own blocking
  if (!g_force_builtin && k > 0 && m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX && lda <= INT32_MAX &&
      ldb <= INT32_MAX && ldc <= INT32_MAX) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(m), int(n),
                int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
    return;
  }
#endif
  if (k <= 0 || alpha == 0.0f) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  const Operands o{trans_a, trans_b, m, n, k, alpha, beta, a, lda, b, ldb, c, ldc, pick_kernels()};
  // work in units of 16 multiply-adds, about the cost of one loss element in parts_for's scale
  const int64_t work = m * n / 16 * k + 1;
  const int64_t m_panels = (m + kGemmMR - 1) / kGemmMR, n_panels = (n + kGemmNR - 1) / kGemmNR;
  // each thread packs all of the operand along the dimension it does not split: split the longer
  // side so the duplicated packing is the smaller operand
  bool split_n = n >= m;
  if (split_n && n_panels < 2) split_n = false;
  if (!split_n && m_panels < 2) split_n = true;
  const int64_t items = split_n ? n_panels : m_panels;
  const int parts = parts_for(threads_for(threads, work), work, items);
  if (parts <= 1) {
    product_range(o, 0, m, 0, n);
    return;
  }
  parallel_for(parts, items, [&](int64_t b0, int64_t b1) {
    if (split_n) {
      product_range(o, 0, m, b0 * kGemmNR, std::min(n, b1 * kGemmNR));
    } else {
      product_range(o, b0 * kGemmMR, std::min(m, b1 * kGemmMR), 0, n);
    }
  });
}

}  // namespace kdfuse
