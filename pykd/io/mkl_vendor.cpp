// Preloaded (LD_PRELOAD, by path.sh) on x86 CPUs not made by Intel, so that MKL -- linked into
// PyTorch's CPU library, which does float32 matrix products with it -- picks its kernels by the
// CPU's instruction sets instead of its vendor. MKL asks mkl_serv_intel_cpu_true() whether the
// CPU is Intel's and, when not, runs generic kernels: on session 19's AMD EPYC (AVX-512) a
// 256 x 1024 x 1024 product at ~205 GFLOPS instead of ~450, the teacher's CE training at 5.7k
// instead of 9.6k frames/s. A well-known workaround, written for pykd; see docs/training.md.
extern "C" int mkl_serv_intel_cpu_true() { return 1; }
