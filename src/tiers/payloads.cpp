// What a deployment is sent (edgeforge/deploy.h): payloads from the model's data set, and the
// preprocessing that turns one into the model's inputs.
#include <optional>

#include "edgeforge/data.h"
#include "edgeforge/dataset.h"
#include "edgeforge/deploy.h"
#include "edgeforge/error.h"
#include "edgeforge/util.h"

namespace edgeforge {

std::vector<Payload> make_payloads(const Graph& model, const PayloadOptions& opts) {
  EF_CHECK(opts.inputs >= 1, "inputs: ", opts.inputs, " must be at least 1");
  std::optional<DataSpec> spec = model_data_spec(model);
  std::unique_ptr<Dataset> data;
  if (spec && (spec->kind == kDatasetFashionMnist || spec->kind == kDatasetSpam)) {
    EF_CHECK(opts.frame_height >= 1 && opts.frame_width >= 1 && opts.frame_height <= 8192 &&
                 opts.frame_width <= 8192,
             "frame size ", opts.frame_width, "x", opts.frame_height, " must be 1..8192 a side");
    if (spec->kind == kDatasetFashionMnist) {
      spec->fields["frame_height"] = opts.frame_height;
      spec->fields["frame_width"] = opts.frame_width;
    }
    if (!opts.data_dir.empty()) spec->fields["dir"] = opts.data_dir;
    data = find_data_kind(spec->kind)->open(*spec, model, "");
  } else {
    data = open_dataset(model);
  }
  std::vector<Payload> out = data->payloads(opts.split, opts.inputs);
  EF_CHECK(!out.empty(), "the ", opts.split, " split of ", data->spec().name(), " has no samples");
  return out;
}

struct Preprocessor::Impl {
  std::unique_ptr<Dataset> data;
  std::string key;
};

Preprocessor::Preprocessor(const Graph& model) : impl_(std::make_unique<Impl>()) {
  impl_->data = open_dataset(model);
  // What preparing a payload reads: the data set (with its fields), the preprocessing and the
  // tokenizer from the metadata, and the inputs it makes.
  std::string key;
  for (const char* meta : {kMetaDataset, kMetaPreprocess, kMetaTokenizer}) {
    auto it = model.metadata().find(meta);
    key += std::string(meta) + "=" + (it == model.metadata().end() ? "" : it->second) + "\n";
  }
  for (const ValueInfo& v : model.inputs()) {
    if (model.has_initializer(v.name)) continue;
    key += v.name + ":" + std::to_string(static_cast<int>(v.dtype));
    for (const Dim& d : v.shape) key += "," + (d.is_fixed() ? std::to_string(d.size) : std::string("?"));
    key += "\n";
  }
  impl_->key = hex64(fnv1a64(key));
}

const std::string& Preprocessor::key() const { return impl_->key; }

Preprocessor::~Preprocessor() = default;
Preprocessor::Preprocessor(Preprocessor&&) noexcept = default;

std::vector<at::Tensor> Preprocessor::operator()(const Payload& p) const {
  return impl_->data->preprocess(p);
}

}  // namespace edgeforge
