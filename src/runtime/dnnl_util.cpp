#include "dnnl_util.h"

#include <cstdlib>
#include <map>
#include <string>

namespace edgeforge::plan {

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpu_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

namespace {

memory::data_type dnnl_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return memory::data_type::f32;
    case at::kByte: return memory::data_type::u8;
    case at::kChar: return memory::data_type::s8;
    case at::kInt: return memory::data_type::s32;
    default: break;
  }
  throw Error(detail::concat("plan: tensor type ", c10::toString(type), " has no oneDNN type"));
}

Dims plain_strides(const Dims& d) {
  Dims strides(d.size(), 1);
  for (size_t k = d.size(); k-- > 1;) strides[k - 1] = strides[k] * d[k];
  return strides;
}

int64_t block_of(const memory::desc& md) {
  if (md.dims().size() != 4) return 0;
  for (int64_t b : {8, 16})
    if (md == memory::desc(md.dims(), md.data_type(),
                           b == 8 ? memory::format_tag::nChw8c : memory::format_tag::nChw16c))
      return b;
  return 0;
}

}  // namespace

memory::desc activation_desc(const at::Tensor& t, int64_t channels, memory::data_type type) {
  if (t.dim() == 5) {
    const int64_t b = t.size(4);
    EF_CHECK((b == 8 || b == 16) && t.size(1) * b >= channels && t.is_contiguous(),
             "plan: a blocked activation ", t.sizes(), " does not hold ", channels, " channels");
    return memory::desc({t.size(0), channels, t.size(2), t.size(3)}, type,
                        b == 8 ? memory::format_tag::nChw8c : memory::format_tag::nChw16c);
  }
  return plain_desc(t, type);
}

bool representable(const memory::desc& md) {
  if (md.dims().size() != 4) return false;
  const Dims d = md.dims();
  const auto type = md.data_type();
  return md == memory::desc(d, type, memory::format_tag::nchw) ||
         md == memory::desc(d, type, memory::format_tag::nhwc) || block_of(md) != 0;
}

at::Tensor tensor_for(const memory::desc& md, at::ScalarType type) {
  EF_ASSERT(dnnl_type(type) == md.data_type(), "plan: tensor type does not match its descriptor");
  const Dims d = md.dims();
  if (d.size() != 4) return {};
  const auto opts = at::TensorOptions().dtype(type);
  if (md == memory::desc(d, md.data_type(), memory::format_tag::nchw))
    return at::empty({d[0], d[1], d[2], d[3]}, opts);
  if (md == memory::desc(d, md.data_type(), memory::format_tag::nhwc))
    return at::empty({d[0], d[1], d[2], d[3]}, opts.memory_format(at::MemoryFormat::ChannelsLast));
  const int64_t b = block_of(md);
  if (b == 0) return {};
  return at::empty({d[0], (d[1] + b - 1) / b, d[2], d[3], b}, opts);
}

at::Tensor reuse_or_make(Buffer& cache, const memory::desc& md, at::ScalarType type) {
  // Reused when nothing else holds the tensor or a view of it: the last run's reader is done.
  if (unshared(cache.tensor) && cache.md == md && cache.tensor.scalar_type() == type)
    return cache.tensor;
  at::Tensor t = tensor_for(md, type);
  const Dims d = md.dims();
  if (!t.defined() && md == memory::desc(d, md.data_type(), plain_strides(d)))
    t = at::empty(std::vector<int64_t>(d.begin(), d.end()), at::TensorOptions().dtype(type));
  if (!t.defined())  // a layout no tensor shape describes: a flat buffer of its bytes
    t = at::empty({static_cast<int64_t>(md.get_size() / at::elementSize(type))},
                  at::TensorOptions().dtype(type));
  cache.tensor = t;
  cache.md = md;
  return t;
}

void reorder(const memory::desc& src_md, void* src, const memory::desc& dst_md, void* dst) {
  // Reorder primitives are made once per pair of layouts (this thread's cache, keyed by the
  // descriptors' bytes): creating one costs more than running it on a small tensor.
  thread_local std::map<std::string, dnnl::reorder> cache;
  std::string key(reinterpret_cast<const char*>(&src_md.data), sizeof src_md.data);
  key.append(reinterpret_cast<const char*>(&dst_md.data), sizeof dst_md.data);
  auto it = cache.find(key);
  if (it == cache.end())
    it = cache.emplace(key, dnnl::reorder(dnnl::reorder::primitive_desc(
                                cpu_engine(), src_md, cpu_engine(), dst_md)))
             .first;
  memory s(src_md, cpu_engine(), src), d(dst_md, cpu_engine(), dst);
  it->second.execute(cpu_stream(), s, d);
}

memory prepack(const memory::desc& user, const void* data, const memory::desc& wanted) {
  memory packed(wanted, cpu_engine());
  reorder(user, const_cast<void*>(data), wanted, packed.get_data_handle());
  return packed;
}

void append_activation(dnnl::post_ops& ops, const Activation& a, float scale) {
  using A = dnnl::algorithm;
  if (a.kind == "hardsigmoid" && a.alpha > 0.f) {
    // alpha * clip(x, -beta / alpha, (1 - beta) / alpha) + beta: the bounds first, then one
    // linear post-op that also takes `scale` (a linear post-op before a clip gives wrong int8
    // results in oneDNN 2.6).
    ops.append_eltwise(1.f, A::eltwise_clip, -a.beta / a.alpha, (1.f - a.beta) / a.alpha);
    ops.append_eltwise(1.f, A::eltwise_linear, a.alpha * scale, a.beta * scale);
    return;
  }
  if (a.kind == "hardsigmoid") {  // max(0, min(1, alpha x + beta))
    ops.append_eltwise(1.f, A::eltwise_linear, a.alpha, a.beta);
    ops.append_eltwise(1.f, A::eltwise_clip, 0.f, 1.f);
  }
  if (a.kind == "relu") ops.append_eltwise(1.f, A::eltwise_relu, 0.f, 0.f);
  if (a.kind == "clip") ops.append_eltwise(1.f, A::eltwise_clip, a.alpha, a.beta);
  if (a.kind == "hardswish") ops.append_eltwise(1.f, A::eltwise_hardswish, 0.f, 0.f);
  if (a.kind == "sigmoid") ops.append_eltwise(1.f, A::eltwise_logistic, 0.f, 0.f);
  if (a.kind == "swish") ops.append_eltwise(1.f, A::eltwise_swish, a.alpha, 0.f);
  if (scale != 1.f) ops.append_eltwise(1.f, A::eltwise_linear, scale, 0.f);
}

}  // namespace edgeforge::plan

namespace edgeforge {

bool int8_products_saturate() {
  using dnnl::cpu_isa;
  static const bool saturate = [] {
    switch (dnnl::get_effective_cpu_isa()) {
      case cpu_isa::avx512_core_amx:
      case cpu_isa::avx512_core_bf16:
      case cpu_isa::avx512_core_vnni:
      case cpu_isa::avx2_vnni:
        return false;
      default:
        return true;
    }
  }();
  const char* forced = std::getenv("EDGEFORGE_NO_VNNI");
  return saturate || (forced != nullptr && std::string(forced) == "1");
}

int64_t exact_int8_weight_limit() { return int8_products_saturate() ? 64 : 127; }

std::string plan_cpu_isa() {
  using dnnl::cpu_isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case cpu_isa::avx512_core_amx:
      return "avx512_core_amx (int8 and bf16 on AMX tiles, AVX-512 VNNI elsewhere)";
    case cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16 (int8 dot products: AVX-512 VNNI)";
    case cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni (int8 dot products: AVX-512 VNNI)";
    case cpu_isa::avx2_vnni:
      return "avx2_vnni (int8 dot products: AVX-VNNI)";
    case cpu_isa::avx512_core:
      return "avx512_core (int8 without a dot-product instruction)";
    case cpu_isa::avx2:
      return "avx2 (int8 without a dot-product instruction)";
    default:
      return "below avx2 (oneDNN's reference kernels for much of the plan)";
  }
}

}  // namespace edgeforge
