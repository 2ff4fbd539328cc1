// prune: pattern (block) pruning by magnitude, as in the study. Blocks of the weights are
// zeroed on a gradual cubic schedule while the model is fine-tuned with distillation from the
// unpruned model; the zeros stay stored (the model stays dense, so kernels do not get faster:
// "logical" pruning). Defaults: 2x1 blocks at 75% for image models, 4x1 at 90% for text.
#include "edgeforge/prune.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <set>

#include "common.h"
#include "edgeforge/error.h"
#include "edgeforge/quantize.h"

namespace edgeforge {

BlockShape parse_block_shape(const std::string& text) {
  const size_t x = text.find('x');
  BlockShape b;
  try {
    size_t used_r = 0, used_c = 0;
    EF_CHECK(x != std::string::npos, "");
    b.rows = std::stoll(text.substr(0, x), &used_r);
    b.cols = std::stoll(text.substr(x + 1), &used_c);
    EF_CHECK(used_r == x && used_c == text.size() - x - 1 && b.rows >= 1 && b.cols >= 1, "");
  } catch (const std::exception&) {
    throw Error("block shape '" + text + "' is not ROWSxCOLS with positive sizes, e.g. 2x1");
  }
  return b;
}

at::Tensor block_mask(const at::Tensor& weight, BlockShape block, double sparsity, bool in_out) {
  EF_CHECK(sparsity >= 0 && sparsity < 1, "sparsity ", sparsity, " is outside [0, 1)");
  EF_CHECK(weight.dim() >= 2, "pruning needs a weight of rank >= 2, got ", weight.sizes());
  at::NoGradGuard no_grad;
  at::Tensor w = (in_out ? weight.t() : weight).detach().to(at::kFloat).contiguous();
  const int64_t out = w.size(0), cols = w.numel() / out;
  w = w.reshape({out, cols});
  const int64_t R = block.rows, C = block.cols;
  const int64_t out_p = (out + R - 1) / R * R, cols_p = (cols + C - 1) / C * C;
  at::Tensor padded = at::constant_pad_nd(w, {0, cols_p - cols, 0, out_p - out});
  const at::Tensor scores =
      padded.reshape({out_p / R, R, cols_p / C, C}).pow(2).sum({1, 3}).reshape({-1});
  const int64_t blocks = scores.numel();
  const auto k = static_cast<int64_t>(std::llround(sparsity * static_cast<double>(blocks)));
  at::Tensor keep = at::ones({blocks}, at::kFloat);
  if (k > 0) {
    // A stable sort, so equal scores are pruned in block order and the count is exact.
    const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, 0, false));
    keep.index_fill_(0, order.slice(0, 0, k), 0.0);
  }
  at::Tensor mask = keep.reshape({out_p / R, 1, cols_p / C, 1})
                        .expand({out_p / R, R, cols_p / C, C})
                        .reshape({out_p, cols_p})
                        .slice(0, 0, out)
                        .slice(1, 0, cols);
  mask = in_out ? mask.reshape(weight.t().sizes()).t() : mask.reshape(weight.sizes());
  return mask.contiguous().to(weight.scalar_type());
}

double cubic_sparsity(double final_sparsity, int64_t step, int64_t ramp_steps) {
  if (ramp_steps <= 0 || step >= ramp_steps) return final_sparsity;
  const double t = static_cast<double>(step) / static_cast<double>(ramp_steps);
  return final_sparsity * (1.0 - std::pow(1.0 - t, 3.0));
}

std::vector<PruneTarget> prune_targets(const Graph& graph) {
  std::vector<PruneTarget> targets;
  std::set<std::string> inputs, outputs;
  for (const ValueInfo& v : graph.inputs()) inputs.insert(v.name);
  for (const ValueInfo& v : graph.outputs()) outputs.insert(v.name);
  for (const QuantUnit& u : find_quant_units(graph)) {
    if (inputs.count(u.input) || outputs.count(u.output)) continue;
    const Node* n = graph.find_node(u.node);
    if (n != nullptr && outputs.count(n->outputs[0])) continue;
    targets.push_back({u.node, u.weight, u.weight_in_out});
  }
  return targets;
}

namespace {

class Prune : public Strategy {
 public:
  std::string name() const override { return "prune"; }
  std::string summary() const override {
    return "pattern pruning: zero blocks of weights by magnitude on a gradual schedule, "
           "fine-tuned with distillation from the unpruned model; stays dense (logical)";
  }
  std::string needs() const override { return "training data; the input model is the teacher"; }
  std::vector<OptionSpec> options() const override {
    std::vector<OptionSpec> o = {
        {"sparsity", "auto", "share of blocks zeroed per layer, in [0, 1) (auto: 0.75 images, 0.9 text)",
         check_auto_or(check_double(0, 1, false, true))},
        {"block", "auto", "block ROWSxCOLS: output units x inputs (auto: 2x1 images, 4x1 text)",
         check_auto_or([](const std::string& v) { parse_block_shape(v); })},
        {"ramp", "0.5", "share of the fine-tuning over which sparsity grows to its target",
         check_double(0, 1)},
    };
    for (OptionSpec& s : strategies::training_options(
             "fine-tuning epochs (auto: 2)",
             "peak learning rate (auto: 0.01 SGD images, 2e-4 AdamW text)"))
      o.push_back(std::move(s));
    return o;
  }

  Graph apply(const Graph& model, const StrategyOptions& opts, StrategyContext& ctx,
              nlohmann::json& report) const override {
    const std::string modality = strategies::model_modality(model, opts.text("dataset"));
    const bool image = modality == "image";
    const double sparsity = opts.text("sparsity") == "auto" ? (image ? 0.75 : 0.9)
                                                            : opts.number("sparsity");
    const BlockShape block = parse_block_shape(
        opts.text("block") == "auto" ? (image ? "2x1" : "4x1") : opts.text("block"));
    Graph g = model.clone();  // trained in place; the teacher stays unpruned
    const std::vector<PruneTarget> targets = prune_targets(g);
    if (targets.empty()) {
      const std::string why = strategies::unprunable_weights_reason(model);
      throw Error("prune: model '" + model.name() + "' has no Conv, Gemm or MatMul weight to prune" +
                  (why.empty() ? "" : ": " + why));
    }
    const TaskData data = strategies::training_data(model, opts, ctx);
    TrainRecipe recipe =
        strategies::finetune_recipe(modality, opts, 2, image ? 0.01 : 2e-4, ctx);
    auto masks = std::make_shared<std::map<std::string, at::Tensor>>();
    auto apply_masks = [masks, targets](Graph& graph) {
      for (const PruneTarget& t : targets) {
        auto m = masks->find(t.weight);
        if (m != masks->end()) graph.initializers().at(t.weight).mul_(m->second);
      }
    };
    const int64_t steps_per_epoch = (data.size() + recipe.batch_size - 1) / recipe.batch_size;
    const int64_t steps = steps_per_epoch * recipe.epochs;
    const auto ramp = static_cast<int64_t>(opts.number("ramp") * static_cast<double>(steps));
    // Masks are recomputed about 50 times along the ramp, then held.
    const int64_t interval = std::max<int64_t>(1, ramp / 50);
    TrainHooks hooks;
    hooks.loss = strategies::distillation_hook(strategies::teacher_logits(model, data, ctx.threads),
                                               strategies::kd_settings(modality, opts));
    hooks.before_step = [=](Graph& graph, int64_t step, int64_t) {
      if (step % interval != 0 && step != ramp) return;
      if (step > ramp && !masks->empty()) return;
      at::NoGradGuard no_grad;
      const double s = cubic_sparsity(sparsity, step + interval, ramp);
      for (const PruneTarget& t : targets) {
        at::Tensor& w = graph.initializers().at(t.weight);
        (*masks)[t.weight] = block_mask(w, block, s, t.in_out);
      }
      apply_masks(graph);
    };
    hooks.after_step = apply_masks;
    if (ctx.log)
      ctx.log("prune: " + std::to_string(targets.size()) + " layers to " +
              std::to_string(sparsity).substr(0, 5) + " sparsity in " +
              std::to_string(block.rows) + "x" + std::to_string(block.cols) +
              " blocks, fine-tuning " + std::to_string(recipe.epochs) + " epochs on " +
              std::to_string(data.size()) + " samples");
    const TrainReport tr = train_graph(g, data, recipe, ctx.progress, hooks);
    // The final masks, exactly: training ends on them, this makes it explicit.
    {
      at::NoGradGuard no_grad;
      for (const PruneTarget& t : targets) {
        at::Tensor& w = g.initializers().at(t.weight);
        w.mul_(block_mask(w, block, sparsity, t.in_out));
      }
    }
    int64_t zeros = 0, total = 0;
    nlohmann::json layers = nlohmann::json::object();
    for (const PruneTarget& t : targets) {
      const at::Tensor& w = g.initializers().at(t.weight);
      const int64_t z = w.eq(0).sum().item<int64_t>();
      zeros += z;
      total += w.numel();
      layers[t.node] = {{"weights", w.numel()},
                        {"sparsity", static_cast<double>(z) / static_cast<double>(w.numel())}};
    }
    report["block"] = std::to_string(block.rows) + "x" + std::to_string(block.cols);
    report["target_sparsity"] = sparsity;
    report["sparsity"] = total > 0 ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0;
    report["layers"] = layers;
    report["epochs"] = recipe.epochs;
    report["first_loss"] = tr.first_loss;
    report["final_loss"] = tr.final_loss;
    report["train_samples"] = data.size();
    if (ctx.log) {
      char line[160];
      std::snprintf(line, sizeof line, "prune: %.4f of %lld prunable weights are zero (%zu layers)",
                    report["sparsity"].get<double>(), static_cast<long long>(total), targets.size());
      ctx.log(line);
    }
    return g;
  }
};

}  // namespace
EF_REGISTER_STRATEGY(Prune);
}  // namespace edgeforge
