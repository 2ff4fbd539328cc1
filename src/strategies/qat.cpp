// qat: quantization-aware training. Fake quantization goes where sptq puts Q/DQ pairs (unit
// inputs and outputs: uint8 per tensor; weights: int8 symmetric per output channel), the model
// is fine-tuned through it with straight-through gradients, and the result is converted to
// the same QDQ form sptq writes, so it runs on the same int8 kernels.
//
// Schedule (the study's for images): 8 epochs of 30 iterations at batch 128; activation
// observers (moving-average min/max, constant 0.01, started from a min/max calibration) are
// frozen after epoch 3 and batch-norm statistics after epoch 2. Batch norms stay separate
// while training and are folded at conversion: with per-channel weight scales, folding
// commutes exactly with weight quantization, so what is trained is what is deployed. Text: 3
// epochs, lr 2e-5, batch 8, observers frozen after epoch 2.
#include <ATen/ATen.h>

#include <memory>

#include "common.h"
#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/quantize.h"

namespace edgeforge {
namespace {

struct Observer {
  float lo = 0, hi = 0;
};

class Qat : public Strategy {
 public:
  std::string name() const override { return "qat"; }
  std::string summary() const override {
    return "quantization-aware training: fine-tune through fake int8 quantization, then "
           "convert to the int8 QDQ model sptq writes";
  }
  std::string needs() const override { return "training data"; }
  std::vector<OptionSpec> options() const override {
    return {
        {"epochs", "auto", "epochs (auto: 8 images, 3 text)", check_auto_or(check_int(1, 1000))},
        {"iterations", "auto", "steps per epoch; 0 = a full pass (auto: 30 images, 0 text)",
         check_auto_or(check_int(0, 1 << 30))},
        {"batch-size", "auto", "samples per step (auto: 128 images, 8 text)",
         check_auto_or(check_int(1, 1 << 16))},
        {"lr", "auto", "peak learning rate (auto: 1e-3 SGD images, 2e-5 AdamW text)",
         check_auto_or(check_double(0, 10, true, false))},
        {"freeze-observers", "auto", "epoch after which activation ranges stay fixed (auto: 3 images, 2 text)",
         check_auto_or(check_int(0, 1000))},
        {"freeze-bn", "auto", "epoch after which batch-norm statistics stay fixed (auto: 2)",
         check_auto_or(check_int(0, 1000))},
        {"samples", "100", "calibration samples that start the observers", check_int(1, 1000000)},
        {"weights", "per-channel", "weight scales: per-channel or per-tensor",
         check_choice({"per-channel", "per-tensor"})},
        {"weight-bits", "7",
         "int8 weights in 7 bits ([-63, 63]: exact on every CPU) or 8 ([-127, 127]: exact only "
         "on CPUs with VNNI; elsewhere such layers run float)",
         check_choice({"7", "8"})},
        {"dataset", "", "training data set: fashion-mnist or spam (empty: the model's own)", check_dataset()},
    };
  }

  Graph apply(const Graph& model, const StrategyOptions& opts, StrategyContext& ctx,
              nlohmann::json& report) const override {
    const std::string modality = strategies::model_modality(model, opts.text("dataset"));
    const bool image = modality == "image";
    auto int_or = [&](const char* key, int64_t fallback) {
      return opts.text(key) == "auto" ? fallback : opts.integer(key);
    };
    const int64_t epochs = int_or("epochs", image ? 8 : 3);
    const int64_t iterations = int_or("iterations", image ? 30 : 0);
    const int64_t freeze_observers = int_or("freeze-observers", image ? 3 : 2);
    const int64_t freeze_bn = int_or("freeze-bn", 2);
    QdqOptions qdq;
    qdq.per_channel = opts.text("weights") == "per-channel";
    qdq.weight_bits = static_cast<int>(opts.integer("weight-bits"));

    // The points and units sptq would quantize, named as in the unfolded graph.
    Graph folded = model;
    fold_batch_norm(folded);
    const std::vector<QuantUnit> units = find_quant_units(folded);
    EF_CHECK(!units.empty(), "model '", model.name(),
             "' has no quantizable node (Conv, Gemm or MatMul with a constant weight)");
    const std::vector<std::string> points = activation_points(units);

    int64_t samples = opts.integer("samples");
    if (ctx.train_limit > 0) samples = std::min(samples, ctx.train_limit);
    const TaskData calibration =
        strategy_training_data(model, opts.text("dataset"), samples, ctx.seed);
    CalibrationOptions minmax;
    minmax.method = CalibrationMethod::kMinMax;
    const Ranges initial =
        calibrate(model, points, input_batches(model, calibration, 32), minmax, ctx.threads);

    Graph train = model.clone();  // trained in place
    const std::map<std::string, std::string> observed = write_fake_quant(train, units, initial, qdq);
    auto observers = std::make_shared<std::map<std::string, Observer>>();
    for (const auto& [p, r] : initial) (*observers)[p] = Observer{r.first, r.second};

    TrainRecipe recipe;
    recipe.epochs = static_cast<int>(epochs);
    recipe.batch_size = int_or("batch-size", image ? 128 : 8);
    recipe.lr = opts.text("lr") == "auto" ? (image ? 1e-3 : 2e-5) : opts.number("lr");
    recipe.optimizer = image ? "sgd" : "adamw";
    recipe.weight_decay = image ? 5e-4 : 0.01;
    recipe.warmup_share = image ? 0.0 : 0.1;
    recipe.grad_clip_norm = image ? 0.0 : 1.0;
    recipe.seed = ctx.seed;
    recipe.threads = ctx.threads;
    const TaskData data = strategies::training_data(model, opts, ctx);
    const int64_t full = (data.size() + recipe.batch_size - 1) / recipe.batch_size;
    const int64_t per_epoch = iterations > 0 ? std::min(iterations, full) : full;
    const int64_t observer_stop = freeze_observers * per_epoch;
    const int64_t bn_stop = freeze_bn * per_epoch;
    auto step_now = std::make_shared<int64_t>(0);

    TrainHooks hooks;
    hooks.steps_per_epoch = per_epoch;
    for (const auto& [p, v] : observed) hooks.fetch.push_back(v);
    hooks.before_step = [step_now](Graph&, int64_t step, int64_t) { *step_now = step; };
    hooks.batch_norm_training = [step_now, bn_stop]() { return *step_now < bn_stop; };
    Graph* train_ptr = &train;
    hooks.observe = [=](const std::map<std::string, at::Tensor>& values) {
      if (*step_now >= observer_stop) return;
      at::NoGradGuard no_grad;
      for (const auto& [p, v] : observed) {
        const auto [lo, hi] = at::aminmax(values.at(v).detach());  // one pass
        Observer& o = observers->at(p);
        o.lo += 0.01f * (lo.item<float>() - o.lo);  // moving-average min/max
        o.hi += 0.01f * (hi.item<float>() - o.hi);
        const QuantParams q = uint8_params(o.lo, o.hi);
        const auto [scale, zero_point] = fake_quant_params(p);
        train_ptr->initializers().at(scale).fill_(static_cast<float>(q.scale));
        train_ptr->initializers().at(zero_point).fill_(static_cast<float>(q.zero_point));
      }
    };
    if (ctx.log)
      ctx.log("qat: " + std::to_string(units.size()) + " nodes, " + std::to_string(points.size()) +
              " activations; " + std::to_string(epochs) + " epochs x " + std::to_string(per_epoch) +
              " steps of " + std::to_string(recipe.batch_size) + ", observers frozen after epoch " +
              std::to_string(freeze_observers) +
              (image ? ", batch norm after epoch " + std::to_string(freeze_bn) : ""));
    const TrainReport tr = train_graph(train, data, recipe, ctx.progress, hooks);

    // The trained float weights (and batch-norm statistics) back into the plain graph.
    Graph g = model;
    for (auto& [name, t] : g.initializers()) {
      auto it = train.initializers().find(name);
      if (it != train.initializers().end()) t = it->second.detach().contiguous();
    }
    Ranges ranges;
    for (const auto& [p, o] : *observers) ranges[p] = {o.lo, o.hi};
    fold_batch_norm(g);
    write_qdq(g, find_quant_units(g), ranges, qdq);
    LoweringReport lowering;
    lower_int8(g, &lowering);
    report["quantized_nodes"] = units.size();
    report["int8_nodes"] = lowering.int8_nodes.size();
    report["epochs"] = epochs;
    report["steps_per_epoch"] = per_epoch;
    report["observers_frozen_at_step"] = observer_stop;
    if (image) report["batch_norm_frozen_at_step"] = bn_stop;
    report["first_loss"] = tr.first_loss;
    report["final_loss"] = tr.final_loss;
    return g;
  }
};

}  // namespace
EF_REGISTER_STRATEGY(Qat);
}  // namespace edgeforge
