# Fallback build of the CPU addon with node-gyp, for machines without the cmake program.
# CMakeLists.txt is the primary build; keep the source lists of the two in step. This build is
# CPU-only: it never defines KDFUSE_HAVE_CUDA, so kd.cuda reports "kdfuse was built without CUDA".
{
  "targets": [
    {
      "target_name": "kdfuse_avx2",
      "type": "static_library",
      "sources": ["native/core/chunk_kernels_avx2.cpp", "native/core/small_rows_avx2.cpp", "native/core/gemm_avx2.cpp"],
      "include_dirs": ["native/core"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O3", "-mavx2", "-mfma", "-ffp-contract=off", "-fPIC"]
    },
    {
      "target_name": "kdfuse",
      "dependencies": ["kdfuse_avx2"],
      "sources": [
        "native/core/checks.cpp",
        "native/core/cpu.cpp",
        "native/core/thread_pool.cpp",
        "native/core/softmax.cpp",
        "native/core/distill_loss.cpp",
        "native/core/topk_checks.cpp",
        "native/core/topk_loss.cpp",
        "native/core/ig.cpp",
        "native/core/gemm.cpp",
        "native/core/linear_distill.cpp",
        "native/core/chunk_kernels_generic.cpp",
        "native/addon/addon.cpp",
        "native/addon/args.cpp",
        "native/addon/output_buffers.cpp",
        "native/addon/kernels_binding.cpp",
        "native/addon/backend_dispatch.cpp",
        "native/addon/cuda_binding.cpp",
        "native/addon/ig_binding.cpp",
        "native/addon/topk_binding.cpp",
        "native/addon/linear_binding.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native/core"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "KDFUSE_HAVE_AVX2=1"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-ffp-contract=off"]
    }
  ]
}
