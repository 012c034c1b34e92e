// Adam's update of float32 tensors in one pass over memory, rounding exactly as PyTorch's default
// CPU Adam (torch.optim.Adam, per-tensor loop): written for pykd, no library offers it.
//
// PyTorch's loop makes ~8 passes over each parameter's state (lerp, mul, addcmul, sqrt, div,
// add, addcdiv); this does the same float32 operations, in the same order, block by block, so
// every block stays in cache. The per-element sequence (m: exp_avg, v: exp_avg_sq, g: grad):
//   m = lerp(m, g, 1 - beta1)           fma(w, g - m, m) when PyTorch's lerp uses FMA
//   v = v * beta2 + ((1 - beta2) * g) * g   the last add fused when PyTorch's addcmul is
//   d = sqrt(v) / sqrt(bias_correction2) + eps   sqrt: MKL VML's vsSqrt (as PyTorch's sqrt where it
//                                           is built with MKL) or the correctly rounded one
//   p = p + ((-step_size) * m) / d
// Which variant matches this machine's PyTorch is decided by pykd/train/adam.py, which compares
// the results with PyTorch's bit for bit before using this code (and falls back otherwise).
#include <algorithm>
#include <cmath>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define PYKD_X86 1
#endif

namespace {

typedef void (*VectorSqrt)(int n, const float* in, float* out, long long mode);
typedef int (*SetThreadsLocal)(int n);  // MKL's MKL_Set_Num_Threads_Local (by value)

constexpr long kBlock = 16384;  // floats per block: 4 arrays x 64 KB stay in L2

struct TensorJob {
  float* p;
  const float* g;
  float* m;
  float* v;
  long n;
  float bc2_sqrt;   // sqrt(1 - beta2^step)
  float neg_step;   // -lr / (1 - beta1^step)
};

struct Scalars {
  float w;          // 1 - beta1 (lerp weight)
  float beta2;
  float omb2;       // 1 - beta2 (addcmul value)
  float eps;
  VectorSqrt vsqrt;  // null: std::sqrt
  long long vml_mode;
};

#if PYKD_X86 && defined(__GNUC__)
#define PYKD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PYKD_CLONES
#endif

template <bool kLerpFma, bool kAddcmulFma>
PYKD_CLONES void moments(float* __restrict m, float* __restrict v, const float* __restrict g,
                         long n, float w, float beta2, float omb2) {
  for (long i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = m[i];
    m[i] = kLerpFma ? std::fma(w, gi - mi, mi) : mi + w * (gi - mi);
    const float vi = v[i] * beta2;
    const float t = omb2 * gi;
    v[i] = kAddcmulFma ? std::fma(t, gi, vi) : vi + t * gi;
  }
}

PYKD_CLONES void correct_sqrt(const float* __restrict v, float* __restrict out, long n) {
  for (long i = 0; i < n; ++i) out[i] = std::sqrt(v[i]);
}

PYKD_CLONES void apply(float* __restrict p, const float* __restrict m, const float* __restrict root,
                       long n, float bc2_sqrt, float eps, float neg_step) {
  for (long i = 0; i < n; ++i) {
    const float d = root[i] / bc2_sqrt + eps;
    p[i] = p[i] + (neg_step * m[i]) / d;
  }
}

template <bool kLerpFma, bool kAddcmulFma>
void update_block(const TensorJob& t, long start, long end, const Scalars& s, float* root) {
  const long n = end - start;
  moments<kLerpFma, kAddcmulFma>(t.m + start, t.v + start, t.g + start, n, s.w, s.beta2, s.omb2);
  if (s.vsqrt != nullptr) {
    s.vsqrt(static_cast<int>(n), t.v + start, root, s.vml_mode);
  } else {
    correct_sqrt(t.v + start, root, n);
  }
  apply(t.p + start, t.m + start, root, n, t.bc2_sqrt, s.eps, t.neg_step);
}

typedef void (*BlockFn)(const TensorJob&, long, long, const Scalars&, float*);

BlockFn block_fn(int variant) {
  switch (variant & 3) {
    case 0: return update_block<false, false>;
    case 1: return update_block<true, false>;
    case 2: return update_block<false, true>;
    default: return update_block<true, true>;
  }
}

}  // namespace

extern "C" {

// One Adam step over `count` tensors. variant: bit 0 lerp with FMA, bit 1 addcmul with FMA.
// vsqrt: MKL's vsSqrt (called with vml_mode) or null for std::sqrt; mkl_threads: MKL's
// MKL_Set_Num_Threads_Local, so that each thread's vsSqrt runs on that thread alone (as inside
// PyTorch's parallel loops) instead of starting MKL's own threads. Blocks are shared out to
// `threads` OpenMP threads (PyTorch's own pool: this library is loaded after PyTorch and links the
// same libgomp.so.1), each with the caller's floating-point control word (flush-to-zero).
void pykd_adam_step(int count, float* const* p, const float* const* g, float* const* m,
                    float* const* v, const long* n, const float* bc2_sqrt, const float* neg_step,
                    float one_minus_beta1, float beta2, float one_minus_beta2, float eps,
                    int variant, void* vsqrt, long long vml_mode, void* mkl_threads,
                    int threads) {
  std::vector<TensorJob> jobs(count);
  std::vector<std::pair<int, long>> blocks;
  for (int k = 0; k < count; ++k) {
    jobs[k] = TensorJob{p[k], g[k], m[k], v[k], n[k], bc2_sqrt[k], neg_step[k]};
    for (long s = 0; s < n[k]; s += kBlock) blocks.emplace_back(k, s);
  }
  const Scalars s{one_minus_beta1, beta2, one_minus_beta2, eps,
                  reinterpret_cast<VectorSqrt>(vsqrt), vml_mode};
  const BlockFn fn = block_fn(variant);
  const SetThreadsLocal set_local = reinterpret_cast<SetThreadsLocal>(mkl_threads);
#if PYKD_X86
  const unsigned int csr = _mm_getcsr();
#endif
  const long count_blocks = static_cast<long>(blocks.size());
#pragma omp parallel num_threads(std::max(1, threads))
  {
#if PYKD_X86
    _mm_setcsr(csr);
#endif
    const int previous = set_local != nullptr ? set_local(1) : 0;
    std::vector<float> root(kBlock);
#pragma omp for schedule(static)
    for (long b = 0; b < count_blocks; ++b) {
      const TensorJob& t = jobs[blocks[b].first];
      const long start = blocks[b].second;
      fn(t, start, std::min(start + kBlock, t.n), s, root.data());
    }
    if (set_local != nullptr) set_local(previous);
  }
}

}  // extern "C"
