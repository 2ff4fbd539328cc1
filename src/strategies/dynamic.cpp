// dynamic: dynamic quantization. Weights of Gemm and MatMul nodes are stored as symmetric
// int8; each activation is quantized with its own range at run time (DynamicQuantizeLinear),
// so no calibration data is needed. Made for MatMul-heavy (transformer) models.
#include "edgeforge/lower.h"
#include "edgeforge/quantize.h"
#include "edgeforge/strategy.h"

namespace edgeforge {
namespace {

class Dynamic : public Strategy {
 public:
  std::string name() const override { return "dynamic"; }
  std::string summary() const override {
    return "dynamic quantization: int8 Gemm/MatMul weights, activation ranges taken at run "
           "time";
  }
  std::string needs() const override { return "the model only"; }
  std::vector<OptionSpec> options() const override {
    return {{"weights", "per-channel", "weight scales: per-channel or per-tensor",
             check_choice({"per-channel", "per-tensor"})},
            {"weight-bits", "7",
             "int8 weights in 7 bits ([-63, 63]: exact on every CPU) or 8 ([-127, 127]: exact "
             "only on CPUs with VNNI; elsewhere such layers run float)",
             check_choice({"7", "8"})}};
  }

  Graph apply(const Graph& model, const StrategyOptions& opts, StrategyContext&,
              nlohmann::json& report) const override {
    Graph g = model;
    const std::vector<QuantUnit> units = find_quant_units(g, /*linear_only=*/true);
    QdqOptions q;
    q.per_channel = opts.text("weights") == "per-channel";
    q.weight_bits = static_cast<int>(opts.integer("weight-bits"));
    write_dynamic(g, units, q);
    LoweringReport lowering;
    lower_int8(g, &lowering);
    report["quantized_nodes"] = units.size();
    report["dynamic_int8_nodes"] = lowering.dynamic_nodes.size();
    for (const auto& [node, why] : lowering.kept_float) report["kept_float"][node] = why;
    return g;
  }
};

}  // namespace
EF_REGISTER_STRATEGY(Dynamic);
}  // namespace edgeforge
