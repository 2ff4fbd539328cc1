// The two built-in data sets as data-set kinds: fashion-mnist (images) and spam (text).
#include <ATen/ATen.h>

#include "edgeforge/data.h"
#include "edgeforge/dataset.h"
#include "edgeforge/error.h"
#include "spec_fields.h"

namespace edgeforge {
namespace {

// The largest side of a frame a request may carry (the study's frames are at most 8192).
constexpr int64_t kMaxFrameSide = 65536;

// Fields both built-ins accept: `dir` (the data folder; default: the installed one) and, for
// the captured frame of an image, `frame_height` / `frame_width`.
void check_builtin(DataSpec& spec, const std::string& base_dir) {
  data::Fields f(spec, base_dir);
  if (f.has("dir")) f.path("dir", true);
  if (spec.kind == kDatasetFashionMnist) {
    if (f.has("frame_height")) f.integer("frame_height", 224, 1, 8192);
    if (f.has("frame_width")) f.integer("frame_width", 224, 1, 8192);
  }
  f.done();
}

class FashionMnist : public Dataset {
 public:
  FashionMnist(const DataSpec& spec, const Graph& model) {
    spec_ = spec;
    model_ = model.name();
    EF_CHECK(!model.inputs().empty(), "model '", model.name(), "' has no inputs");
    const ValueInfo& in = model.inputs()[0];
    if (in.shape.size() == 4 && in.shape[2].is_fixed() && in.shape[3].is_fixed()) {
      height_ = in.shape[2].size;
      width_ = in.shape[3].size;
      grey_ = in.shape[1].size == 1;
    }
    auto it = model.metadata().find(kMetaPreprocess);
    if (it != model.metadata().end()) {
      const nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
      EF_CHECK(j.is_object(), "model '", model.name(), "': metadata '", kMetaPreprocess,
               "' is not a JSON object");
      mean_ = j.value("mean", mean_);
      std_ = j.value("std", std_);
      EF_CHECK(std_ > 0, "model '", model.name(), "': preprocessing std must be > 0");
    }
  }
  std::string modality() const override { return "image"; }
  std::vector<std::string> class_names() const override { return fashion_mnist_class_names(); }
  bool has_labels() const override { return true; }
  std::string metric_setting() const override { return "top1"; }
  int64_t split_size(const std::string& split) const override { return load(split, 0).size(); }

  TaskData load(const std::string& split, int64_t limit) const override {
    TaskDataOptions o;
    o.limit = limit;
    o.dir = spec_.fields.value("dir", std::string());
    TaskData data = load_task_data(kDatasetFashionMnist, split, o, nullptr);
    if (!grey_ || height_ <= 0 || (height_ == kFashionMnistSize && width_ == kFashionMnistSize))
      return data;
    // A model of another size reads the images as the frames bring them (preprocess): nearest
    // up to the frame, area down to its input (without the 8-bit roundings). A batch at a time:
    // the training split at 224x224 would take 12 GB.
    const int64_t h = height_, w = width_;
    const int64_t fh = spec_.fields.value("frame_height", int64_t{224});
    const int64_t fw = spec_.fields.value("frame_width", int64_t{224});
    const std::map<std::string, at::Tensor> small = std::move(data.features);
    data.features.clear();
    data.count = data.labels.size(0);
    data.fetch = [small, h, w, fh, fw](const at::Tensor& indices) {
      std::map<std::string, at::Tensor> out;
      for (const auto& [name, t] : small) {
        const at::Tensor frame = at::upsample_nearest2d(t.index_select(0, indices), {fh, fw});
        out[name] = at::adaptive_avg_pool2d(frame, {h, w}).contiguous();
      }
      return out;
    };
    return data;
  }

  std::vector<Payload> payloads(const std::string& split, int64_t limit) const override {
    const int64_t fh = spec_.fields.value("frame_height", int64_t{224});
    const int64_t fw = spec_.fields.value("frame_width", int64_t{224});
    FashionMnistOptions fo;
    fo.limit = limit;
    fo.dir = spec_.fields.value("dir", std::string());
    const ImageSet set = load_fashion_mnist(split, fo);
    const int64_t h = set.images.size(1), w = set.images.size(2);
    // Nearest: frame pixel (y, x) shows image pixel (y * h / H, x * w / W).
    const at::Tensor rows = at::floor_divide(at::arange(fh, at::kLong) * h, fh);
    const at::Tensor cols = at::floor_divide(at::arange(fw, at::kLong) * w, fw);
    std::vector<Payload> out;
    for (int64_t i = 0; i < set.images.size(0); ++i) {
      const at::Tensor grey = set.images[i].index_select(0, rows).index_select(1, cols);
      const at::Tensor rgb = grey.unsqueeze(-1).expand({fh, fw, 3}).contiguous();
      Payload p;
      p.kind = "frame";
      p.height = fh;
      p.width = fw;
      p.bytes.assign(static_cast<const char*>(rgb.data_ptr()), static_cast<size_t>(rgb.numel()));
      p.label = set.labels[i].item<int64_t>();
      out.push_back(std::move(p));
    }
    return out;
  }

  std::vector<at::Tensor> preprocess(const Payload& p) const override {
    EF_CHECK(height_ > 0 && grey_, "model '", model_,
             "': its first input is not a grey image [N,1,H,W] with fixed H and W, so a frame "
             "cannot be prepared for it");
    EF_CHECK(p.kind == "frame", "model '", model_, "' takes a frame, not ", p.kind);
    // Each side bounded before they are multiplied: a request's 0x5555555555555556 x 1 would
    // wrap height * width * 3 around to a small size.
    EF_CHECK(p.height >= 1 && p.width >= 1 && p.height <= kMaxFrameSide && p.width <= kMaxFrameSide,
             "frame: ", p.width, "x", p.height, " is not 1..", kMaxFrameSide, " pixels a side");
    EF_CHECK(static_cast<int64_t>(p.bytes.size()) == p.height * p.width * 3,
             "frame: ", p.bytes.size(), " bytes for ", p.width, "x", p.height,
             " RGB (expected ", p.height * p.width * 3, ")");
    const at::Tensor rgb = at::from_blob(const_cast<char*>(p.bytes.data()), {p.height, p.width, 3},
                                         at::kByte).to(at::kFloat);
    // ITU-R 601 luma, rounded to 8 bits as an image library's grey conversion does.
    const at::Tensor grey = at::round(rgb.select(2, 0) * 0.299f + rgb.select(2, 1) * 0.587f +
                                      rgb.select(2, 2) * 0.114f);
    // Area resize to the model's size (an exact mean when the frame is a whole multiple of it).
    const at::Tensor small =
        at::round(at::adaptive_avg_pool2d(grey.unsqueeze(0).unsqueeze(0), {height_, width_}))
            .clamp(0, 255);
    return {(small / 255.0 - mean_) / std_};
  }

  nlohmann::json describe() const override {
    return {{"preprocess", {{"frame", "224x224 RGB (nearest from 28x28)"},
                            {"grey", "ITU-R 601 luma"}, {"resize", "area"},
                            {"mean", mean_}, {"std", std_}}}};
  }

 private:
  std::string model_;
  int64_t height_ = 0, width_ = 0;
  bool grey_ = false;
  double mean_ = kFashionMnistMean, std_ = kFashionMnistStd;
};

class Spam : public Dataset {
 public:
  Spam(const DataSpec& spec, const Graph& model) {
    spec_ = spec;
    model_ = model.name();
    for (const ValueInfo& v : model.inputs())
      if (!model.has_initializer(v.name)) inputs_.push_back(v.name);
    if (model.metadata().count(kMetaTokenizer) != 0)
      tokenizer_ = std::make_shared<Tokenizer>(tokenizer_from_model(model));
    seq_len_ = model_seq_len(model);
  }
  std::string modality() const override { return "text"; }
  std::vector<std::string> class_names() const override { return {"ham", "spam"}; }
  bool has_labels() const override { return true; }
  std::string metric_setting() const override { return "f1"; }
  int64_t split_size(const std::string& split) const override {
    SpamOptions so;
    so.dir = spec_.fields.value("dir", std::string());
    return static_cast<int64_t>(load_spam(split, so).size());
  }

  TaskData load(const std::string& split, int64_t limit) const override {
    TaskDataOptions o;
    o.limit = limit;
    o.seq_len = seq_len_;
    o.dir = spec_.fields.value("dir", std::string());
    return load_task_data(kDatasetSpam, split, o, &tokenizer());
  }

  std::vector<Payload> payloads(const std::string& split, int64_t limit) const override {
    SpamOptions so;
    so.limit = limit;
    so.dir = spec_.fields.value("dir", std::string());
    std::vector<Payload> out;
    for (const Mail& m : load_spam(split, so)) {
      Payload p;
      p.kind = "text";
      p.bytes = m.text;
      p.label = m.label;
      out.push_back(std::move(p));
    }
    return out;
  }

  std::vector<at::Tensor> preprocess(const Payload& p) const override {
    EF_CHECK(p.kind == "text", "model '", model_, "' takes text, not ", p.kind);
    const Tokenizer::Batch b = tokenizer().encode_batch({p.bytes}, seq_len_);
    std::vector<at::Tensor> out;
    for (const std::string& name : inputs_) {
      if (name == "input_ids") out.push_back(b.input_ids);
      else if (name == "attention_mask") out.push_back(b.attention_mask);
      else if (name == "token_type_ids") out.push_back(at::zeros_like(b.input_ids));
      else throw Error(detail::concat("model '", model_, "': text input '", name,
                                      "' is not one a tokenizer makes (input_ids, attention_mask, token_type_ids)"));
    }
    return out;
  }

  nlohmann::json describe() const override {
    nlohmann::json j = {{"seq_len", seq_len_}};
    if (tokenizer_) j["tokenizer"] = {{"kind", "sentencepiece " + tokenizer_->kind()},
                                      {"vocab_size", tokenizer_->vocab_size()}};
    return j;
  }

 private:
  const Tokenizer& tokenizer() const {
    EF_CHECK(tokenizer_ != nullptr, "model '", model_, "' has no embedded tokenizer (metadata '",
             kMetaTokenizer, "'), so it cannot read the spam data set");
    return *tokenizer_;
  }
  std::string model_;
  std::vector<std::string> inputs_;
  std::shared_ptr<Tokenizer> tokenizer_;
  int64_t seq_len_ = 128;
};

}  // namespace

EF_REGISTER_DATA_KIND((DataKind{
    kDatasetFashionMnist, "Fashion-MNIST (Debian's dataset-fashion-mnist), 28x28 grey, 10 classes",
    "image", check_builtin,
    [](const DataSpec& s, const Graph& m, const std::string&) -> std::unique_ptr<Dataset> {
      return std::make_unique<FashionMnist>(s, m);
    }}));

EF_REGISTER_DATA_KIND((DataKind{
    kDatasetSpam, "the SpamAssassin public corpus (ham or spam), tokenised by the model's own tokenizer",
    "text", check_builtin,
    [](const DataSpec& s, const Graph& m, const std::string&) -> std::unique_ptr<Dataset> {
      return std::make_unique<Spam>(s, m);
    }}));

}  // namespace edgeforge
