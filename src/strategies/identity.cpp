// identity: the unmodified model, the baseline every strategy is compared with.
#include "edgeforge/strategy.h"

namespace edgeforge {
namespace {

class Identity : public Strategy {
 public:
  std::string name() const override { return "identity"; }
  std::string summary() const override { return "the unmodified model (the baseline)"; }
  std::string needs() const override { return "the model only"; }
  std::vector<OptionSpec> options() const override { return {}; }
  Graph apply(const Graph& model, const StrategyOptions&, StrategyContext&,
              nlohmann::json&) const override {
    return model;
  }
};

}  // namespace
EF_REGISTER_STRATEGY(Identity);
}  // namespace edgeforge
