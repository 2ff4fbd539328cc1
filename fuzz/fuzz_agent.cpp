// Fuzz target: what an agent decodes from a caller. The input is a serialised InferRequest as
// it arrives off the wire (protobuf parsing); its tensors are decoded as the agent decodes
// them (decode_tensors) and its payload is preprocessed as a request's first tier does
// (a Fashion-MNIST model's frame: the size checks of issue 22), and a LoadRequest of the same
// bytes is parsed. Seeds: fuzz/corpus/agent, written by scripts/fuzz from encode_tensors and a
// frame request.
#include <google/protobuf/stubs/logging.h>

#include "edgeforge/agent.pb.h"
#include "edgeforge/deploy.h"
#include "edgeforge/task.h"
#include "edgeforge/wire.h"
#include "edgeforge/zoo.h"
#include "fuzz_util.h"

using namespace edgeforge;
namespace pb = edgeforge::agent;

namespace {
const Preprocessor& frame_preprocessor() {
  static const Preprocessor p = [] {
    Graph g = build_zoo_model("resnet-small", ZooBuildOptions{});
    g.metadata()[kMetaDataset] = kDatasetFashionMnist;
    return Preprocessor(g);
  }();
  return p;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // bad UTF-8 in a string field is logged, then refused
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes = fuzz::bytes_of(data, size);
  pb::InferRequest req;
  if (req.ParseFromString(bytes)) {
    fuzz::refused_or_ok([&] {
      if (req.input_case() == pb::InferRequest::kTensors) (void)decode_tensors(req.tensors(), "fuzz: tensors");
    });
    fuzz::refused_or_ok([&] {
      if (!req.has_payload()) return;
      Payload p;
      p.kind = req.payload().kind();
      p.bytes = req.payload().bytes();
      p.height = req.payload().height();
      p.width = req.payload().width();
      (void)frame_preprocessor()(p);
    });
  }
  pb::LoadRequest load;
  (void)load.ParseFromString(bytes);
  return 0;
}
