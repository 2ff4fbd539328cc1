// edgeforge/task.h: binds a data set to a model's inputs.
//
// A TaskData holds one split of a data set as tensors keyed by the graph input name they feed
// ("input" for images; "input_ids", "attention_mask", "token_type_ids" for text), plus labels.
// Training and evaluation take batches of it by sample index.
//
//   Tokenizer tok = tokenizer_from_model(graph);              // text models embed theirs
//   TaskData test = load_task_data("spam", "test", {}, &tok);
//   std::vector<at::Tensor> in = test.batch_inputs(graph, at::arange(0, 32));
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "edgeforge/graph.h"
#include "edgeforge/tokenizer.h"

namespace edgeforge {

inline constexpr const char* kDatasetFashionMnist = "fashion-mnist";
inline constexpr const char* kDatasetSpam = "spam";

struct TaskDataOptions {
  int64_t limit = 0;      // 0 = the whole split, else its first `limit` samples
  int64_t seq_len = 128;  // text: tokens per sample, [CLS] included
  std::string dir;        // the data folder; "" the installed one (FashionMnistOptions, SpamOptions)
};

struct TaskData {
  std::string dataset;  // the data set's name (DataSpec::name())
  std::string split;    // "train", "validation" or "test"
  std::map<std::string, at::Tensor> features;  // by graph input name, each [N, ...]
  at::Tensor labels;                           // int64 [N]; undefined when the set has none
  int64_t num_classes = 0;                     // 0 when unknown (no labels, no class names)
  std::vector<std::string> class_names;
  // A large split is materialised per batch instead of held in `features`: `fetch` returns the
  // features of the samples `indices` (int64 [B]) and `count` says how many there are.
  std::function<std::map<std::string, at::Tensor>(const at::Tensor& indices)> fetch;
  int64_t count = 0;

  int64_t size() const;
  // The graph's inputs, in its declared order, for the samples `indices` (int64 [B]).
  // Throws Error naming a graph input this data set does not provide.
  std::vector<at::Tensor> batch_inputs(const Graph& graph, const at::Tensor& indices) const;
  // The samples `indices`, in that order (features, labels and fetch alike).
  TaskData subset(const at::Tensor& indices) const;
};

// Modality of a data set: "image" or "text". Throws Error listing known data sets.
std::string dataset_modality(const std::string& dataset);

// Loads one split. Text data sets need `tokenizer`.
TaskData load_task_data(const std::string& dataset, const std::string& split,
                        const TaskDataOptions& opts, const Tokenizer* tokenizer = nullptr);

// The name of the data set a model carries (DataSpec::name of kMetaDataset); Error, with the
// hint to pass --data, when it carries none.
std::string model_dataset(const Graph& graph);
// The tokenizer a text model embeds (metadata kMetaTokenizer); Error when it has none.
Tokenizer tokenizer_from_model(const Graph& graph);
// Embeds `tokenizer` into the model's metadata.
void embed_tokenizer(Graph& graph, const Tokenizer& tokenizer);
// Tokens per sample a text model expects (metadata kMetaPreprocess "seq_len", else its data
// spec's max_length, else 128).
int64_t model_seq_len(const Graph& graph);

}  // namespace edgeforge
