// Host/device portability macros: the same inline functions compile for the CPU
// reference and inside CUDA kernels, which is what makes the twins byte-identical.
#pragma once

#if defined(__CUDACC__)
#define GZ_HD __host__ __device__ __forceinline__
#else
#define GZ_HD inline
#endif
