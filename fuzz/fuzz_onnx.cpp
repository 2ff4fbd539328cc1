// Fuzz target: an ONNX model as it enters edgeforge (graph_from_onnx_bytes: parsing, the ONNX
// checker, conversion and the validation pass), then one inference of what loaded, on the
// inference plan every command runs (InferenceSession), with inputs of the model's shapes.
// Seeds: the exported models in tests/data/exports and the zoo's small models.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <google/protobuf/stubs/logging.h>

#include "edgeforge/onnx_io.h"
#include "edgeforge/lower.h"
#include "edgeforge/runtime.h"
#include "fuzz_util.h"

using namespace edgeforge;

namespace {

// Inputs of the model's fixed shapes (symbolic and unknown dimensions 1); none when one would
// exceed 16 MB, which the fuzzer would only spend its time allocating. Seeded, so that an
// input that crashes once crashes every time it is replayed.
bool sample_inputs(const Graph& g, std::vector<at::Tensor>* out) {
  at::manual_seed(0);
  for (const ValueInfo& v : g.inputs()) {
    std::vector<int64_t> shape;
    int64_t n = 1;
    for (const Dim& d : v.shape) {
      const int64_t s = d.is_fixed() ? d.size : 1;
      if (s > (int64_t{1} << 24) || (s > 0 && n > (int64_t{1} << 24) / s)) return false;
      n *= s;
      shape.push_back(s);
    }
    if (n * 8 > (int64_t{16} << 20)) return false;
    const at::ScalarType t = v.dtype;
    out->push_back(at::isFloatingType(t) ? at::rand(shape, at::TensorOptions(t))
                                         : at::zeros(shape, at::TensorOptions(t)));
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::refused_or_ok([&] {
    const Graph g = graph_from_onnx_bytes(fuzz::bytes_of(data, size), "fuzz.onnx");
    std::vector<at::Tensor> inputs;
    if (!sample_inputs(g, &inputs)) return;
    InferenceSession session(g);
    RunOptions opts;
    opts.threads = 1;
    (void)session.run(inputs, opts);
  });
  return 0;
}
