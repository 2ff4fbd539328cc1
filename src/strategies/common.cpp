#include "common.h"

#include <ATen/ATen.h>

#include <map>

#include "edgeforge/dataset.h"
#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/ops.h"
#include "edgeforge/runtime.h"

namespace edgeforge::strategies {

std::string model_modality(const Graph& model, const std::string& dataset) {
  return open_dataset(model, dataset)->modality();
}

KdSettings default_kd(const std::string& modality) {
  return modality == "text" ? KdSettings{0.0, 2.0} : KdSettings{0.5, 1.0};
}

std::vector<OptionSpec> training_options(const std::string& epochs_help,
                                         const std::string& lr_help) {
  return {
      {"epochs", "auto", epochs_help, check_auto_or(check_int(1, 1000))},
      {"lr", "auto", lr_help,
       check_auto_or(check_double(0, 10, true, false))},
      {"batch-size", "auto", "samples per step (auto: 128 images, 32 text)",
       check_auto_or(check_int(1, 1 << 16))},
      {"alpha", "auto", "weight of the label loss; 1 - alpha on the teacher (auto: 0.5 images, 0 text)",
       check_auto_or(check_double(0, 1))},
      {"temperature", "auto", "distillation temperature (auto: 1 images, 2 text)",
       check_auto_or(check_double(0, 100, true, false))},
      {"dataset", "", "training data set, as --data takes it (empty: the model's own)", check_dataset()},
  };
}

TrainRecipe finetune_recipe(const std::string& modality, const StrategyOptions& opts,
                            int default_epochs, double default_lr, const StrategyContext& ctx) {
  TrainRecipe r;
  if (modality == "image") {
    r.batch_size = 128;
    r.optimizer = "sgd";
    r.weight_decay = 5e-4;
    r.warmup_share = 0.05;
  } else {
    r.batch_size = 32;
    r.optimizer = "adamw";
    r.weight_decay = 0.01;
    r.warmup_share = 0.1;
    r.grad_clip_norm = 1.0;
  }
  r.epochs = opts.text("epochs") == "auto" ? default_epochs : static_cast<int>(opts.integer("epochs"));
  r.lr = opts.text("lr") == "auto" ? default_lr : opts.number("lr");
  if (opts.text("batch-size") != "auto") r.batch_size = opts.integer("batch-size");
  r.seed = ctx.seed;
  r.threads = ctx.threads;
  return r;
}

KdSettings kd_settings(const std::string& modality, const StrategyOptions& opts) {
  KdSettings kd = default_kd(modality);
  if (opts.text("alpha") != "auto") kd.alpha = opts.number("alpha");
  if (opts.text("temperature") != "auto") kd.temperature = opts.number("temperature");
  return kd;
}

TaskData training_data(const Graph& model, const StrategyOptions& opts,
                       const StrategyContext& ctx) {
  TaskData data = strategy_training_data(model, opts.text("dataset"), ctx.train_limit, ctx.seed);
  if (!data.labels.defined() && data.size() > 0) {
    // A data set without labels: the model's own predictions stand in for them, so fine-tuning
    // learns to agree with the model it starts from (what `eval --reference` then measures).
    data.labels = teacher_logits(model, data, ctx.threads).argmax(1);
    if (ctx.log)
      ctx.log("data set " + data.dataset + " has no labels: fine-tuning toward model '" + model.name() +
              "''s own predictions on its " + std::to_string(data.size()) + " training samples");
  }
  return data;
}

at::Tensor teacher_logits(const Graph& teacher, const TaskData& data, int threads) {
  InferenceSession session(teacher);
  RunOptions run;
  run.threads = threads;
  at::NoGradGuard no_grad;
  const int64_t n = data.size();
  std::vector<at::Tensor> rows;
  for (int64_t lo = 0; lo < n; lo += 256) {
    const at::Tensor idx = at::arange(lo, std::min(n, lo + 256), at::kLong);
    at::Tensor out = session.run(data.batch_inputs(teacher, idx), run)[0];
    EF_CHECK(out.dim() == 2 && out.size(0) == idx.size(0), "teacher '", teacher.name(),
             "': first output has shape ", out.sizes(), ", expected [batch, classes]");
    rows.push_back(out.to(at::kFloat).clone());  // the session reuses its output buffers
  }
  EF_CHECK(!rows.empty(), "teacher '", teacher.name(), "': no training samples to distil on");
  return at::cat(rows, 0);
}

std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const std::vector<at::Tensor>&,
                         const at::Tensor&)>
distillation_hook(at::Tensor logits, KdSettings kd) {
  return [logits, kd](const at::Tensor& student, const at::Tensor& labels,
                      const std::vector<at::Tensor>&, const at::Tensor& indices) {
    return distillation_loss(student, logits.index_select(0, indices), labels, kd.alpha,
                             kd.temperature);
  };
}

std::string unprunable_weights_reason(const Graph& model) {
  int64_t weighted = 0, shared = 0;
  std::map<std::string, int> uses;
  for (const Node& n : model.nodes())
    for (const std::string& in : n.inputs) ++uses[in];
  for (const Node& n : model.nodes()) {
    const OpDef* def = OpRegistry::global().find(n.op_type, n.domain);
    if (def == nullptr || def->caps.units.role != UnitRole::kWeighted || n.inputs.size() < 2)
      continue;
    ++weighted;
    const std::string& w = n.inputs[1];
    if (!model.has_initializer(w) || uses[w] > 1) ++shared;
  }
  if (shared == 0) return "";
  return detail::concat(shared, " of its ", weighted, " Conv, Gemm and MatMul nodes read a weight computed "
                        "at run time or shared with another node (torch.onnx.export shares equal weights "
                        "through Identity nodes), which pruning cannot cut for one node alone");
}

int64_t output_classes(const Graph& model, const TaskData& sample) {
  EF_CHECK(!model.outputs().empty(), "model '", model.name(), "' has no output");
  const ValueInfo& out = model.outputs()[0];
  if (out.has_shape && !out.shape.empty() && out.shape.back().is_fixed())
    return out.shape.back().size;
  Executor exec(model);
  at::NoGradGuard no_grad;
  RunOptions run;
  const at::Tensor logits =
      exec.run(sample.batch_inputs(model, at::zeros({1}, at::kLong)), run)[0];
  return logits.size(-1);
}

}  // namespace edgeforge::strategies
