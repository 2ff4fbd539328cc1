// oneDNN helpers shared by the inference plan's kernels (src/runtime/plan_ops.cpp,
// src/runtime/plan_int8.cpp): the engine and stream, memory descriptors of ATen tensors, and
// the convention by which a tensor carries a oneDNN blocked layout between plan nodes.
//
// Layout convention. A plan value is an at::Tensor in one of three forms:
//   - a 4-D float tensor, contiguous (NCHW) or channels-last (NHWC): a plain layout, readable
//     by any kernel;
//   - a 5-D float tensor [N, ceil(C / b), H, W, b]: oneDNN's nChw{b}c blocked layout (b = 8 or
//     16), read only by plan kernels, which know the true channel count C from their weights.
// The lowering pass (lower_plan.cpp) lets a node emit the blocked form only when every reader
// is a plan kernel that accepts it, so no other kernel ever sees a 5-D activation.
#pragma once

#include <ATen/ATen.h>

#include <dnnl.hpp>

#include <string>
#include <unordered_map>
#include <vector>

#include "../ops/lowering.h"
#include "edgeforge/error.h"

namespace edgeforge::plan {

using dnnl::memory;
using Dims = memory::dims;

// The process-wide CPU engine and this thread's stream (oneDNN runs on the calling thread,
// with OpenMP's thread count, which at::set_num_threads sets).
const dnnl::engine& cpu_engine();
dnnl::stream& cpu_stream();

// dims of a tensor as oneDNN takes them.
inline Dims dims_of(at::IntArrayRef sizes) { return Dims(sizes.begin(), sizes.end()); }

// The descriptor of a plain tensor of logical shape `sizes` with its own strides.
inline memory::desc plain_desc(const at::Tensor& t, memory::data_type type) {
  return memory::desc(dims_of(t.sizes()), type, dims_of(t.strides()));
}

// The descriptor of a 4-D activation in either plain form or the 5-D blocked form, with
// `channels` the true channel count (ignored for the plain form).
memory::desc activation_desc(const at::Tensor& t, int64_t channels, memory::data_type type);

// A tensor that holds data laid out as `md` (a 4-D activation descriptor): 4-D contiguous
// for nchw, 4-D channels-last for nhwc, 5-D for nChw8c / nChw16c. Undefined when `md` is
// none of these; the caller then reorders to nchw.
at::Tensor tensor_for(const memory::desc& md, at::ScalarType type);

// `md` is one of the layouts tensor_for can hold.
bool representable(const memory::desc& md);

// Nothing but the caller holds `t` or a view of its storage: a kernel may write into it again.
inline bool unshared(const at::Tensor& t) {
  return t.defined() && t.use_count() == 1 && t.storage().use_count() == 1;
}

// A buffer a kernel keeps between runs, with the layout it was made for.
struct Buffer {
  at::Tensor tensor;
  memory::desc md;
};

// A tensor laid out as `md`: the cached one when it has that layout and nothing else holds it
// or a view of it any more, else a new one (kept in `cache` for the next run). 4-D activation
// layouts get the tensor forms above, row-major layouts a tensor of their shape, any other
// layout a flat buffer of its size.
at::Tensor reuse_or_make(Buffer& cache, const memory::desc& md, at::ScalarType type);

// Copies `src` (described by `src_md`) into a new tensor laid out as `dst_md`.
void reorder(const memory::desc& src_md, void* src, const memory::desc& dst_md, void* dst);

// A primitive with its argument memories, made once; each run points the memories at that
// run's data (set_data_handle) instead of creating them, which costs microseconds per call.
struct Bound {
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  void set(int arg, const memory::desc& md, void* data) {
    auto it = args.find(arg);
    if (it == args.end()) args.emplace(arg, memory(md, cpu_engine(), data));
    else it->second.set_data_handle(data);
  }
  void run() { prim.execute(cpu_stream(), args); }
};

// Constant weights `data`, laid out as `user`, reordered once into a new memory in the layout
// a primitive chose (`wanted`).
memory prepack(const memory::desc& user, const void* data, const memory::desc& wanted);

// `data`, laid out as `given`, as the primitive wants it (`want`): `data` itself when the
// layouts agree, else its reorder into `cache`.
inline void* in_layout(Buffer& cache, const memory::desc& given, const memory::desc& want,
                       void* data, at::ScalarType type) {
  if (given == want) return data;
  at::Tensor converted = reuse_or_make(cache, want, type);
  reorder(given, data, want, converted.data_ptr());
  return converted.data_ptr();
}

// The output dims {N, C_out, H, W} of a 2-D convolution of `src` ({N, C, H, W}) with kernel
// `kernel` ({kH, kW}); dilations in oneDNN's convention (0 = none). Error naming `where` when
// the input is smaller than the kernel.
inline Dims conv_dst_dims(const Dims& src, int64_t c_out, const Dims& kernel, const Dims& strides,
                          const Dims& dilations, const Dims& pad_l, const Dims& pad_r,
                          const std::string& where) {
  Dims dst = {src[0], c_out, 0, 0};
  for (int k = 0; k < 2; ++k) {
    const int64_t extent = (kernel[k] - 1) * (dilations[k] + 1) + 1;
    dst[2 + k] = (src[2 + k] + pad_l[k] + pad_r[k] - extent) / strides[k] + 1;
    EF_CHECK(dst[2 + k] >= 1, where, ": an input of ", src[2], "x", src[3],
             " is too small for the kernel");
  }
  return dst;
}


// The post-ops of a fused node's activation (lowering.h), on the values the primitive computes,
// and a multiplication of the result by `scale` (an int8 kernel's 1 / output scale).
void append_activation(dnnl::post_ops& ops, const Activation& activation, float scale = 1.f);

}  // namespace edgeforge::plan
