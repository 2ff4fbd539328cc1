// sptq: static post-training quantization to int8 in QDQ form. Batch norms are folded into
// their convolutions, activation ranges are calibrated on training samples, weights are
// symmetric int8 (per output channel by default). edgeforge/quantize.h does the graph work.
#include <ATen/ATen.h>

#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/quantize.h"
#include "edgeforge/strategy.h"

namespace edgeforge {
namespace {

class Sptq : public Strategy {
 public:
  std::string name() const override { return "sptq"; }
  std::string summary() const override {
    return "static post-training quantization: int8 weights and activations, ranges "
           "calibrated on training samples, stored as ONNX QDQ";
  }
  std::string needs() const override { return "calibration samples from the training split"; }
  std::vector<OptionSpec> options() const override {
    return {
        {"method", "percentile", "activation range: minmax, percentile or entropy (KL)",
         check_choice({"minmax", "percentile", "entropy"})},
        {"samples", "100", "calibration samples, drawn from the training split",
         check_int(1, 1000000)},
        {"percentile", "99.99", "percentile method: the percentile kept, in (50, 100]",
         check_double(50, 100, true, false)},
        {"weights", "per-channel", "weight scales: per-channel or per-tensor",
         check_choice({"per-channel", "per-tensor"})},
        {"weight-bits", "7",
         "int8 weights in 7 bits ([-63, 63]: exact on every CPU) or 8 ([-127, 127]: exact only "
         "on CPUs with VNNI; elsewhere such layers run float)",
         check_choice({"7", "8"})},
        {"dataset", "", "calibration data set: fashion-mnist or spam (empty: the model's own)", check_dataset()},
    };
  }

  Graph apply(const Graph& model, const StrategyOptions& opts, StrategyContext& ctx,
              nlohmann::json& report) const override {
    Graph g = model;
    const int folded = fold_batch_norm(g);
    const std::vector<QuantUnit> units = find_quant_units(g);
    EF_CHECK(!units.empty(), "model '", model.name(),
             "' has no quantizable node (Conv, Gemm or MatMul with a constant weight)");
    int64_t samples = opts.integer("samples");
    if (ctx.train_limit > 0) samples = std::min(samples, ctx.train_limit);
    const TaskData data = strategy_training_data(model, opts.text("dataset"), samples, ctx.seed);
    CalibrationOptions cal;
    cal.method = parse_calibration_method(opts.text("method"));
    cal.percentile = opts.number("percentile");
    const std::vector<std::string> points = activation_points(units);
    if (ctx.log)
      ctx.log("sptq: calibrating " + std::to_string(points.size()) + " activations of " +
              std::to_string(units.size()) + " nodes on " + std::to_string(data.size()) +
              " samples (" + opts.text("method") + ")");
    const Ranges ranges = calibrate(g, points, input_batches(g, data, 32), cal, ctx.threads);
    QdqOptions q;
    q.per_channel = opts.text("weights") == "per-channel";
    q.weight_bits = static_cast<int>(opts.integer("weight-bits"));
    write_qdq(g, units, ranges, q);
    LoweringReport lowering;
    lower_int8(g, &lowering);
    report["folded_batch_norms"] = folded;
    report["quantized_nodes"] = units.size();
    report["calibrated_activations"] = points.size();
    report["calibration_samples"] = data.size();
    report["int8_nodes"] = lowering.int8_nodes.size();
    for (const auto& [node, why] : lowering.kept_float) report["kept_float"][node] = why;
    return g;
  }
};

}  // namespace
EF_REGISTER_STRATEGY(Sptq);
}  // namespace edgeforge
