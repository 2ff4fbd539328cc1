// edgeforge/train.h: training and evaluation of graphs with the reference executor.
//
// Training runs the graph's own executor in training mode (autograd through the ATen
// kernels), so what is trained is exactly the ONNX graph that is saved. Evaluation always
// runs in inference mode on a held-out split, never on training data.
//
//   TrainRecipe recipe = default_recipe("resnet");
//   Graph g = train_zoo_model("resnet", recipe);              // uses the cache when it can
//   EvalResult r = evaluate(g, EvalOptions{});                // test split of its data set
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "edgeforge/graph.h"
#include "edgeforge/task.h"

namespace edgeforge {

// Everything that determines a trained model; its hash keys the model cache.
struct TrainRecipe {
  int epochs = 3;
  int64_t batch_size = 128;
  double lr = 0.05;              // peak learning rate
  double weight_decay = 5e-4;
  std::string optimizer = "sgd"; // "sgd" (momentum 0.9, nesterov) or "adamw"
  double warmup_share = 0.1;     // share of steps with a linear warm-up, then cosine decay to 0
  double label_smoothing = 0.0;
  double grad_clip_norm = 0.0;   // clip the global gradient L2 norm to this; 0 = off
  int64_t train_limit = 0;       // 0 = the whole training split
  int64_t seq_len = 128;         // text models: tokens per sample
  int64_t vocab_size = 8000;     // text models: tokenizer vocabulary
  uint64_t seed = 0;
  int threads = 2;               // intra-op threads; not part of the cache key
  // 4-D activations and weights in channels-last (NHWC) memory while training, so LibTorch's
  // oneDNN convolutions skip a layout reorder on every call (bench/train_memory_format).
  // Speed only, so not part of the cache key; each step agrees with NCHW to float rounding.
  bool channels_last = true;

  std::string to_json() const;   // every field but threads and channels_last
};

// The default recipe for a zoo model; `quick` gives a seconds-long recipe for tests.
TrainRecipe default_recipe(const std::string& zoo_name, bool quick = false);

struct TrainProgress {
  int epoch = 0, epochs = 0;
  int64_t step = 0, steps = 0;
  double loss = 0.0;            // running mean over the last steps
  double samples_per_s = 0.0;
  double elapsed_s = 0.0;
};
using ProgressFn = std::function<void(const TrainProgress&)>;

struct TrainReport {
  double first_loss = 0.0;      // mean loss of the first 10% of steps
  double final_loss = 0.0;      // mean loss of the last 10% of steps
  double seconds = 0.0;
  int64_t samples_seen = 0;
};

// How strategies customise training (distillation, pruning masks, quantization-aware
// schedules). Every member is optional.
struct TrainHooks {
  // The loss of a batch; default cross-entropy on the labels (with the recipe's smoothing).
  // `inputs` are the batch's graph inputs, `indices` its samples' rows in the training data
  // (a distillation hook looks the teacher's outputs up by them).
  std::function<at::Tensor(const at::Tensor& logits, const at::Tensor& labels,
                           const std::vector<at::Tensor>& inputs, const at::Tensor& indices)>
      loss;
  // Before each step (0-based) of `steps`: schedules (sparsity, freezing observers).
  std::function<void(Graph& graph, int64_t step, int64_t steps)> before_step;
  // After each optimizer step: re-applies pruning masks and the like.
  std::function<void(Graph& graph)> after_step;
  // Values to fetch on every training forward pass, handed to `observe` (QAT observers).
  std::vector<std::string> fetch;
  std::function<void(const std::map<std::string, at::Tensor>& values)> observe;
  // Batch-norm statistics: false runs batch norm on its running statistics while training
  // (frozen), as QAT does after a share of its schedule. Read before every step.
  std::function<bool()> batch_norm_training;
  // Steps per epoch (each on a fresh shuffle); 0 = one pass over the data.
  int64_t steps_per_epoch = 0;
  // Initializers that stay fixed (besides batch-norm statistics).
  std::vector<std::string> frozen;
};

// Trains `graph` in place (its initializers) on `data` with `recipe`. Trainable parameters are
// the floating-point initializers with more than one element, except batch-norm running
// statistics, which training updates through the executor instead.
TrainReport train_graph(Graph& graph, const TaskData& data, const TrainRecipe& recipe,
                        const ProgressFn& progress = {}, const TrainHooks& hooks = {});

// Knowledge-distillation loss: alpha * CE(student, labels) + (1 - alpha) * T^2 *
// KL(softmax(teacher / T) || softmax(student / T)), as in Hinton et al.
at::Tensor distillation_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                             const at::Tensor& labels, double alpha, double temperature);

struct TrainZooResult {
  Graph graph;
  TrainReport report;
  bool from_cache = false;
  std::string cache_path;
};

// Builds the zoo model, trains it on its data set's training split with `recipe`, and caches
// the result under cache_dir()/models keyed by a hash of the recipe and the untrained graph.
TrainZooResult train_zoo_model(const std::string& zoo_name, const TrainRecipe& recipe,
                               bool use_cache = true, const ProgressFn& progress = {});

// Gives an untrained text model of `family` ("bert" or "roberta") what train_zoo_model gives
// a trained one besides its weights: the tokenizer the zoo trains on the spam training split
// (cached; unigram for bert, BPE for roberta, `vocab_size` pieces), the sequence length and
// the data set. An image model gets Fashion-MNIST's normalisation and data set.
void prepare_untrained(Graph& graph, const std::string& family, int64_t vocab_size = 8000,
                       int64_t seq_len = 128);

struct EvalOptions {
  std::string dataset;         // a --data argument (parse_data_spec); "" = the model's own
  std::string split = "test";
  int64_t limit = 0;           // 0 = the whole split
  int64_t batch_size = 256;
  int threads = 2;
  // Also measure agreement with this model (top-1 agreement, mean KL of its softmax to the
  // evaluated model's) on the same inputs: what a user without labels can still trust.
  const Graph* reference = nullptr;
  // Runs the evaluated model on one batch of its inputs and returns its first output; empty:
  // an InferenceSession of the graph (a partitioned deployment passes its two parts here).
  std::function<at::Tensor(const std::vector<at::Tensor>& inputs)> run;
};

struct EvalResult {
  std::string dataset, split;
  int64_t samples = 0;
  std::string metric;                   // the data set's metric: top1, f1, accuracy, f1_macro, agreement
  double value = 0.0;                   // its value
  bool labelled = true;                 // false: only agreement was measured
  double accuracy = 0.0;                // top-1
  double top5 = 0.0;
  bool has_top5 = false;                // when there are more than 5 classes
  double f1 = 0.0, precision = 0.0, recall = 0.0;  // of class 1, with two classes
  bool has_f1 = false;
  double f1_macro = 0.0;                // mean F1 over classes, with more than two
  bool has_f1_macro = false;
  double agreement = 0.0, kl = 0.0;     // with EvalOptions::reference
  bool has_agreement = false;
  std::vector<uint8_t> correct;         // per sample, in split order (agreement when unlabelled)
  double seconds = 0.0;
};

// Scores predicted classes against labels (int64 [N]): accuracy and per-sample correctness;
// with `binary_f1`, precision, recall and F1 of class 1; with `num_classes` > 2, macro F1.
EvalResult score_predictions(const std::vector<int64_t>& predicted, const at::Tensor& labels,
                             bool binary_f1, int64_t num_classes = 0);

// Runs the graph in inference mode over a split and scores it with its data set's metric.
EvalResult evaluate(const Graph& graph, const EvalOptions& opts);

}  // namespace edgeforge
