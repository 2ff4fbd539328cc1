// Helpers shared by the training strategies in src/strategies (distill, prune,
// prune-structured, qat): modality defaults, fine-tuning recipes and distillation hooks.
#pragma once

#include <memory>
#include <string>

#include "edgeforge/graph.h"
#include "edgeforge/strategy.h"
#include "edgeforge/train.h"

namespace edgeforge::strategies {

// "image" or "text", from the model's data set (or `dataset` when given).
std::string model_modality(const Graph& model, const std::string& dataset = "");

// The study's distillation settings: image CE/KL 0.5/0.5 at T = 1, text pure KD at T = 2.
struct KdSettings {
  double alpha = 0.5;  // weight of cross-entropy on the labels; 1 - alpha on the soft targets
  double temperature = 1.0;
};
KdSettings default_kd(const std::string& modality);

// Options every training strategy shares, with "auto" defaults per modality:
// epochs, lr, batch-size, alpha, temperature, dataset.
std::vector<OptionSpec> training_options(const std::string& epochs_help,
                                         const std::string& lr_help);

// A fine-tuning recipe for `model`: the modality's optimizer, schedule and batch size, with
// the given defaults for epochs and peak lr unless the options set them.
TrainRecipe finetune_recipe(const std::string& modality, const StrategyOptions& opts,
                            int default_epochs, double default_lr, const StrategyContext& ctx);
KdSettings kd_settings(const std::string& modality, const StrategyOptions& opts);

// Training data for a strategy: the model's training split, capped by ctx.train_limit.
TaskData training_data(const Graph& model, const StrategyOptions& opts,
                       const StrategyContext& ctx);

// The teacher's first output (logits) for every sample of `data`, row i for sample i, run once
// on the inference plan in batches of 256 (a QDQ teacher on its int8 kernels, as deployed).
// Training data is not augmented, so these are the soft targets of every epoch: computing them
// once beats running the teacher on every training batch (bench/strategies prints both).
at::Tensor teacher_logits(const Graph& teacher, const TaskData& data, int threads);

// A loss hook distilling from `logits` (from teacher_logits on the training data): a batch's
// soft targets are the rows of its sample indices.
std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const std::vector<at::Tensor>&,
                         const at::Tensor&)>
distillation_hook(at::Tensor logits, KdSettings kd);

// Why a model offers a pruning strategy no weight: "" when nothing explains it, else a clause
// such as "its 24 Conv, Gemm and MatMul nodes read weights computed at run time or shared
// through Identity nodes (as torch.onnx.export writes equal weights)".
std::string unprunable_weights_reason(const Graph& model);

// Output classes of a model (its first output's last dimension, from a run on one sample).
int64_t output_classes(const Graph& model, const TaskData& sample);

}  // namespace edgeforge::strategies
