#include "edgeforge/task.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <functional>

#include "edgeforge/data.h"
#include "edgeforge/dataset.h"
#include "edgeforge/error.h"
#include "edgeforge/util.h"

namespace edgeforge {

int64_t TaskData::size() const {
  if (labels.defined()) return labels.size(0);
  if (fetch) return count;
  return features.empty() ? 0 : features.begin()->second.size(0);
}

std::vector<at::Tensor> TaskData::batch_inputs(const Graph& graph,
                                               const at::Tensor& indices) const {
  std::map<std::string, at::Tensor> fetched;
  if (fetch) fetched = fetch(indices);
  const std::map<std::string, at::Tensor>& have = fetch ? fetched : features;
  std::vector<at::Tensor> inputs;
  inputs.reserve(graph.inputs().size());
  for (const ValueInfo& v : graph.inputs()) {
    auto it = have.find(v.name);
    if (it == have.end()) {
      std::string names;
      for (const auto& [name, t] : have) names += (names.empty() ? "" : ", ") + name;
      throw Error("model '" + graph.name() + "': input '" + v.name + "' is not provided by the " +
                  dataset + " data set (it provides: " + names + ")");
    }
    inputs.push_back(fetch ? it->second : it->second.index_select(0, indices));
  }
  return inputs;
}

TaskData TaskData::subset(const at::Tensor& indices) const {
  TaskData out = *this;
  for (auto& [name, t] : out.features) t = t.index_select(0, indices);
  if (labels.defined()) out.labels = labels.index_select(0, indices);
  if (fetch) {
    const at::Tensor picked = indices.to(at::kLong).contiguous();
    auto inner = fetch;
    out.fetch = [inner, picked](const at::Tensor& idx) { return inner(picked.index_select(0, idx)); };
    out.count = picked.numel();
  }
  return out;
}

std::string dataset_modality(const std::string& dataset) {
  if (dataset == kDatasetFashionMnist) return "image";
  if (dataset == kDatasetSpam) return "text";
  throw Error("unknown data set '" + dataset + "'; valid data sets: " + kDatasetFashionMnist +
              ", " + kDatasetSpam);
}

TaskData load_task_data(const std::string& dataset, const std::string& split,
                        const TaskDataOptions& opts, const Tokenizer* tokenizer) {
  EF_CHECK(split == "train" || split == "validation" || split == "test", "unknown split '", split,
           "'; valid splits: train, validation, test");
  EF_CHECK(opts.limit >= 0, "limit: ", opts.limit, " is negative");
  TaskData data;
  data.dataset = dataset;
  data.split = split;
  if (dataset_modality(dataset) == "image") {
    FashionMnistOptions fo;
    fo.limit = opts.limit;
    fo.dir = opts.dir;
    ImageSet set = load_fashion_mnist(split, fo);
    data.features["input"] = normalize_images(set.images);
    data.labels = set.labels;
    data.num_classes = 10;
    data.class_names = set.class_names;
    return data;
  }
  EF_CHECK(tokenizer != nullptr, "data set '", dataset, "' is text and needs a tokenizer");
  EF_CHECK(opts.seq_len >= 2, "seq_len: ", opts.seq_len, " is too short (expected >= 2)");
  SpamOptions so;
  so.limit = opts.limit;
  so.dir = opts.dir;
  std::vector<Mail> mails = load_spam(split, so);
  std::vector<std::string> texts;
  std::vector<int64_t> labels;
  texts.reserve(mails.size());
  for (const Mail& m : mails) {
    texts.push_back(m.text);
    labels.push_back(m.label);
  }
  Tokenizer::Batch batch = tokenizer->encode_batch(texts, opts.seq_len);
  data.features["input_ids"] = batch.input_ids;
  data.features["attention_mask"] = batch.attention_mask;
  data.features["token_type_ids"] = at::zeros_like(batch.input_ids);
  data.labels = at::tensor(labels, at::kLong);
  data.num_classes = 2;
  data.class_names = {"ham", "spam"};
  return data;
}

std::string model_dataset(const Graph& graph) { return open_dataset(graph)->spec().name(); }

Tokenizer tokenizer_from_model(const Graph& graph) {
  auto it = graph.metadata().find(kMetaTokenizer);
  EF_CHECK(it != graph.metadata().end(), "model '", graph.name(),
           "' has no embedded tokenizer (metadata '", kMetaTokenizer, "'), so it cannot read text");
  return Tokenizer::from_bytes(
      base64_decode(it->second, "model '" + graph.name() + "' tokenizer metadata"));
}

void embed_tokenizer(Graph& graph, const Tokenizer& tokenizer) {
  graph.metadata()[kMetaTokenizer] = base64_encode(tokenizer.to_bytes());
}

int64_t model_seq_len(const Graph& graph) {
  auto it = graph.metadata().find(kMetaPreprocess);
  if (it != graph.metadata().end()) {
    nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
    EF_CHECK(!j.is_discarded() && j.is_object(), "model '", graph.name(), "': metadata '",
             kMetaPreprocess, "' is not a JSON object");
    if (j.contains("seq_len")) return j.value("seq_len", int64_t{128});
  }
  // A user's text data set says its length (max_length, completed for the model).
  if (std::optional<DataSpec> spec = model_data_spec(graph))
    return spec->fields.value("max_length", int64_t{128});
  return 128;
}

}  // namespace edgeforge
