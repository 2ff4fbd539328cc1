#include "edgeforge/task.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "edgeforge/data.h"
#include "edgeforge/error.h"
#include "edgeforge/util.h"

namespace edgeforge {

std::vector<at::Tensor> TaskData::batch_inputs(const Graph& graph,
                                               const at::Tensor& indices) const {
  std::vector<at::Tensor> inputs;
  inputs.reserve(graph.inputs().size());
  for (const ValueInfo& v : graph.inputs()) {
    auto it = features.find(v.name);
    if (it == features.end()) {
      std::string have;
      for (const auto& [name, t] : features) have += (have.empty() ? "" : ", ") + name;
      throw Error("model '" + graph.name() + "': input '" + v.name + "' is not provided by the " +
                  dataset + " data set (it provides: " + have + ")");
    }
    inputs.push_back(it->second.index_select(0, indices));
  }
  return inputs;
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

std::string model_dataset(const Graph& graph) {
  auto it = graph.metadata().find(kMetaDataset);
  EF_CHECK(it != graph.metadata().end(), "model '", graph.name(),
           "' does not say which data set it was trained on; pass --data");
  return it->second;
}

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
  if (it == graph.metadata().end()) return 128;
  nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
  EF_CHECK(!j.is_discarded() && j.is_object(), "model '", graph.name(), "': metadata '",
           kMetaPreprocess, "' is not a JSON object");
  return j.value("seq_len", int64_t{128});
}

}  // namespace edgeforge
