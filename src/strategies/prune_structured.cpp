// prune-structured (beyond the study): remove whole units so the model is physically smaller
// and really faster. The units that must go together (a conv's output channels, and every
// channel tied to them by residual adds, squeeze-excitation products and depthwise convs; a
// feed-forward layer's hidden units) are found by a dependency analysis of the graph
// (prunable_dimensions, edgeforge/prune.h), so it works on any exported graph, not only the zoo's.
// Units are ranked by importance (the L2 norm of a unit's producing weights, scaled by its
// batch-norm factor, times the L2 norm of its consuming weights), the lowest `ratio` of each
// dimension are zeroed (masked dense: the unit's output is exactly 0), the model is fine-tuned
// with distillation from the original while the mask holds, and the units are then cut out.
// Cutting a unit whose output is exactly 0 changes nothing, so the smaller model computes what
// the masked dense one does.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "common.h"
#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "edgeforge/prune.h"

namespace edgeforge {

namespace {

// The dependency analysis behind prunable_dimensions: sets of units ("spaces") joined with a
// union-find, each value that carries units knowing its space, where the units lie and whether
// a removed unit is exactly 0 in it.
class UnitAnalysis {
 public:
  explicit UnitAnalysis(const Graph& g) : g_(g) {
    for (const Node& n : g.nodes()) order_.emplace(n.name, order_.size());
    for (const Node& n : g.nodes())
      for (const std::string& in : n.inputs)
        if (!in.empty()) ++uses_[in];
  }

  std::vector<PrunableDimension> run() {
    for (size_t i = 0; i < g_.nodes().size(); ++i) visit(g_.nodes()[i], static_cast<int>(i));
    for (const ValueInfo& v : g_.outputs()) block(v.name);
    std::map<int, PrunableDimension*> by_root;
    std::vector<std::pair<int, PrunableDimension>> found;  // (first producer's index, dimension)
    for (size_t s = 0; s < spaces_.size(); ++s) {
      if (find(static_cast<int>(s)) != static_cast<int>(s)) continue;
      Space& sp = spaces_[s];
      if (sp.blocked || sp.dim.produced.empty() || sp.dim.consumed.empty()) continue;
      int64_t groups = 1;
      bool ok = true;
      for (int64_t gr : sp.group_constraints) {
        if (gr <= 1) continue;
        ok = ok && (groups == 1 || groups == gr);
        groups = gr;
      }
      if (!ok || sp.dim.units % groups != 0) continue;
      sp.dim.groups = groups;
      for (std::vector<std::string>* names : {&sp.dim.producers, &sp.dim.consumers})
        std::sort(names->begin(), names->end(), [&](const std::string& a, const std::string& b) {
          return order_.at(a) < order_.at(b);
        });
      sp.dim.name = sp.dim.producers.front();
      found.emplace_back(sp.first, std::move(sp.dim));
    }
    std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<PrunableDimension> dims;
    for (auto& [first, d] : found) dims.push_back(std::move(d));
    return dims;
  }

 private:
  enum class Layout { kChannels, kLast };  // units on axis 1 (NCHW), or on the last axis
  struct Carried {
    int space = -1;
    Layout layout = Layout::kChannels;
    bool zero = true;         // a removed unit is exactly 0 here
    bool spatial_one = false;  // [N, C, 1, 1] (after global pooling)
  };
  struct Space {
    int parent = 0, first = 0;
    bool blocked = false;
    std::vector<int64_t> group_constraints;
    PrunableDimension dim;
  };

  int find(int s) {
    while (spaces_[static_cast<size_t>(s)].parent != s) s = spaces_[static_cast<size_t>(s)].parent = spaces_[static_cast<size_t>(spaces_[static_cast<size_t>(s)].parent)].parent;
    return s;
  }
  Space& space(int s) { return spaces_[static_cast<size_t>(find(s))]; }
  int new_space(int64_t units, int node_index) {
    Space sp;
    sp.parent = static_cast<int>(spaces_.size());
    sp.first = node_index;
    sp.dim.units = units;
    spaces_.push_back(std::move(sp));
    return spaces_.back().parent;
  }
  template <typename T>
  static void append(std::vector<T>& to, const std::vector<T>& from) { to.insert(to.end(), from.begin(), from.end()); }
  int join(int a, int b) {
    a = find(a);
    b = find(b);
    if (a == b) return a;
    Space& x = spaces_[static_cast<size_t>(a)];
    Space& y = spaces_[static_cast<size_t>(b)];
    x.blocked = x.blocked || y.blocked || x.dim.units != y.dim.units;
    x.first = std::min(x.first, y.first);
    append(x.group_constraints, y.group_constraints);
    append(x.dim.producers, y.dim.producers);
    append(x.dim.consumers, y.dim.consumers);
    append(x.dim.produced, y.dim.produced);
    append(x.dim.consumed, y.dim.consumed);
    append(x.dim.zeroed, y.dim.zeroed);
    append(x.dim.kept_vectors, y.dim.kept_vectors);
    append(x.dim.norms, y.dim.norms);
    append(x.dim.depthwise, y.dim.depthwise);
    y.parent = a;
    return a;
  }

  const Carried* carried(const std::string& v) const {
    auto it = values_.find(v);
    return it == values_.end() ? nullptr : &it->second;
  }
  void block(const std::string& v) {
    if (const Carried* c = carried(v)) space(c->space).blocked = true;
  }
  void block_inputs(const Node& n) {
    for (const std::string& in : n.inputs) block(in);
  }
  // An initializer used by exactly one node input, or undefined.
  at::Tensor own_constant(const std::string& name) const {
    auto it = g_.initializers().find(name);
    auto u = uses_.find(name);
    if (it == g_.initializers().end() || u == uses_.end() || u->second != 1) return {};
    return it->second;
  }
  bool unit_vector(const std::string& name, int64_t units) const {
    const at::Tensor t = own_constant(name);
    return t.defined() && t.dim() == 1 && t.size(0) == units;
  }
  at::Tensor scalar(const std::string& name) const {
    const at::Tensor t = constant_input(g_, name);
    return t.defined() && t.numel() == 1 ? t : at::Tensor();
  }
  void carry(const std::string& out, int s, Layout layout, bool zero, bool spatial_one = false) {
    values_[out] = {find(s), layout, zero, spatial_one};
  }
  // A weighted node reads units: they must be exactly 0 when removed.
  void consume(const Carried& c, const Node& n, const std::string& weight, int64_t axis, int64_t groups) {
    Space& sp = space(c.space);
    if (!c.zero) sp.blocked = true;
    sp.dim.consumed.push_back({weight, axis, groups});
    sp.dim.consumers.push_back(n.name);
    if (groups > 1) sp.group_constraints.push_back(groups);
  }
  // A weighted node makes units: a new space, unless `produced` cannot be cut.
  int produce(const Node& n, int index, const std::string& weight, int64_t axis, int64_t units,
              const std::string& bias, bool cuttable) {
    const int s = new_space(units, index);
    Space& sp = space(s);
    sp.dim.producers.push_back(n.name);
    sp.dim.produced.push_back({weight, axis, 1});
    if (!cuttable) sp.blocked = true;
    if (!bias.empty()) {
      if (unit_vector(bias, units)) sp.dim.zeroed.push_back(bias);
      else sp.blocked = true;  // a removed unit would still output its bias
    }
    return s;
  }

  // What `n` does to the units reaching it, by its op's role (OpCapabilities::units).
  void visit(const Node& n, int index) {
    auto in = [&](size_t i) -> const Carried* { return i < n.inputs.size() ? carried(n.inputs[i]) : nullptr; };
    const std::string out = n.outputs.empty() ? std::string() : n.outputs[0];
    const OpDef* def = OpRegistry::global().find(n.op_type, n.domain);
    const UnitFlow flow = def != nullptr ? def->caps.units : UnitFlow{};
    const UnitRole role = flow.role;
    if (role == UnitRole::kWeighted) {
      const std::optional<WeightedUnits> spec =
          flow.weighted != nullptr ? flow.weighted(n) : std::nullopt;
      const at::Tensor w = own_constant(n.inputs.size() > 1 ? n.inputs[1] : "");
      const Carried* x = in(0);
      if (!spec || !w.defined() || w.dim() != spec->rank || in(1) != nullptr) {
        block_inputs(n);
        return;
      }
      const Layout layout = spec->channels ? Layout::kChannels : Layout::kLast;
      const int64_t units = w.size(spec->out_axis), group = spec->group;
      if (x != nullptr &&
          (x->layout != layout || w.size(spec->in_axis) * group != space(x->space).dim.units)) {
        block_inputs(n);
        return;
      }
      if (x != nullptr && group > 1 && group == units && w.size(spec->in_axis) == 1) {
        // Depthwise: unit c of the output is made from unit c of the input alone.
        Space& sp = space(x->space);
        sp.dim.produced.push_back({n.inputs[1], spec->out_axis, 1});
        sp.dim.depthwise.push_back(n.name);
        if (!spec->bias.empty()) {
          if (unit_vector(spec->bias, units)) sp.dim.zeroed.push_back(spec->bias);
          else sp.blocked = true;
        }
        carry(out, x->space, layout, x->zero);
        return;
      }
      if (x != nullptr) consume(*x, n, n.inputs[1], spec->in_axis, group);
      const int s = produce(n, index, n.inputs[1], spec->out_axis, units, spec->bias, true);
      if (group > 1) space(s).group_constraints.push_back(group);
      carry(out, s, layout, true);
      return;
    }
    if (role == UnitRole::kNorm) {
      const Carried* x = in(0);
      if (x == nullptr) return;
      Space& sp = space(x->space);
      bool ok = x->layout == Layout::kChannels && n.outputs.size() == 1 && n.inputs.size() == 5;
      for (size_t k = 1; ok && k < 5; ++k) ok = unit_vector(n.inputs[k], sp.dim.units);
      if (!ok) {
        block_inputs(n);
        return;
      }
      sp.dim.zeroed.push_back(n.inputs[1]);
      sp.dim.zeroed.push_back(n.inputs[2]);
      sp.dim.kept_vectors.push_back(n.inputs[3]);
      sp.dim.kept_vectors.push_back(n.inputs[4]);
      sp.dim.norms.push_back({n.inputs[1], n.inputs[4], n.attr_float("epsilon", 1e-5f)});
      carry(out, x->space, x->layout, x->zero);
      return;
    }
    bool any = false;
    for (const std::string& v : n.inputs) any = any || carried(v) != nullptr;
    if (!any) return;  // no units reach this node
    // Element-wise with two operands.
    const bool add = role == UnitRole::kAdd, sub = role == UnitRole::kSub,
               mul = role == UnitRole::kMul, div = role == UnitRole::kDiv;
    if ((add || sub || mul || div) && n.inputs.size() == 2) {
      const Carried* a = in(0);
      const Carried* b = in(1);
      if (a != nullptr && b != nullptr) {
        if (a->layout != b->layout || div || sub) {
          block_inputs(n);
          return;
        }
        const int s = join(a->space, b->space);
        const bool zero = mul ? (a->zero || b->zero) : (a->zero && b->zero);
        carry(out, s, a->layout, zero, a->spatial_one && b->spatial_one);
        return;
      }
      // One operand carries units; the other is a scalar or (Add) the units' bias.
      const bool first = a != nullptr;
      const Carried* c = first ? a : b;
      const std::string& other = n.inputs[first ? 1 : 0];
      const at::Tensor k = scalar(other);
      if (k.defined() && (first || add || mul)) {
        const bool zero = mul || div ? c->zero : (c->zero && k.item<double>() == 0);
        carry(out, c->space, c->layout, zero, c->spatial_one);
        return;
      }
      if (add && c->layout == Layout::kLast && unit_vector(other, space(c->space).dim.units)) {
        space(c->space).dim.zeroed.push_back(other);
        carry(out, c->space, c->layout, c->zero);
        return;
      }
    }
    // Ops of one operand that keep the units where they are.
    const Carried* x = in(0);
    if (x == nullptr) {
      block_inputs(n);  // a later operand carrying units into something unknown
      return;
    }
    if (role == UnitRole::kPerUnit && n.outputs.size() == 1 &&
        (flow.holds != nullptr ? flow.holds(n, g_) : n.inputs.size() == 1)) {
      carry(out, x->space, x->layout, flow.keeps_zero && x->zero, x->spatial_one);
      return;
    }
    if (role == UnitRole::kGlobalPool && x->layout == Layout::kChannels) {
      carry(out, x->space, x->layout, x->zero, true);
      return;
    }
    if (role == UnitRole::kFlatten && x->spatial_one &&
        (flow.holds == nullptr || flow.holds(n, g_))) {
      carry(out, x->space, Layout::kLast, x->zero);
      return;
    }
    block_inputs(n);
  }

  const Graph& g_;
  std::map<std::string, int> uses_;
  std::map<std::string, size_t> order_;  // node name -> index
  std::map<std::string, Carried> values_;
  std::vector<Space> spaces_;
};

}  // namespace

std::vector<PrunableDimension> prunable_dimensions(const Graph& g) { return UnitAnalysis(g).run(); }

at::Tensor unit_importance(const Graph& g, const PrunableDimension& d) {
  at::NoGradGuard no_grad;
  auto weight = [&](const std::string& name) { return g.initializers().at(name).detach().to(at::kFloat); };
  at::Tensor a = at::zeros({d.units});
  for (const PrunableDimension::Slice& p : d.produced)
    a += weight(p.tensor).movedim(p.axis, 0).reshape({d.units, -1}).pow(2).sum(1);
  a = a.sqrt();
  if (!d.norms.empty()) {
    at::Tensor factor = at::zeros({d.units});
    for (const PrunableDimension::Norm& n : d.norms)
      factor += weight(n.scale).abs() / (weight(n.var) + n.epsilon).sqrt();
    a = a * factor / static_cast<double>(d.norms.size());
  }
  at::Tensor b = at::zeros({d.units});
  for (const PrunableDimension::Slice& c : d.consumed) {
    const at::Tensor wb = weight(c.tensor);
    if (c.groups > 1) {
      // [out, units / groups, k, k]: unit u of group j is read by group j's outputs at u % per.
      const int64_t per = d.units / c.groups, out_per = wb.size(0) / c.groups;
      for (int64_t j = 0; j < c.groups; ++j)
        b.slice(0, j * per, (j + 1) * per) +=
            wb.slice(0, j * out_per, (j + 1) * out_per).movedim(1, 0).reshape({per, -1}).pow(2).sum(1);
    } else {
      b += wb.movedim(c.axis, 0).reshape({d.units, -1}).pow(2).sum(1);
    }
  }
  return a * b.sqrt();
}

at::Tensor structured_keep_mask(const at::Tensor& importance, int64_t groups, double ratio) {
  EF_CHECK(ratio >= 0 && ratio < 1, "ratio ", ratio, " is outside [0, 1)");
  const int64_t units = importance.numel(), per = units / groups;
  const int64_t keep = std::max<int64_t>(1, static_cast<int64_t>(std::llround((1 - ratio) * per)));
  at::Tensor mask = at::zeros({units}, at::kFloat);
  for (int64_t j = 0; j < groups; ++j) {
    const at::Tensor part = importance.slice(0, j * per, (j + 1) * per);
    const at::Tensor order = std::get<1>(part.sort(/*stable=*/true, 0, /*descending=*/true));
    mask.slice(0, j * per, (j + 1) * per).index_fill_(0, order.slice(0, 0, keep), 1.0);
  }
  return mask;
}

void apply_unit_mask(Graph& g, const PrunableDimension& d, const at::Tensor& mask) {
  at::NoGradGuard no_grad;
  for (const PrunableDimension::Slice& p : d.produced) {
    at::Tensor& w = g.initializers().at(p.tensor);
    std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
    shape[static_cast<size_t>(p.axis)] = d.units;
    w.mul_(mask.reshape(shape).to(w.scalar_type()));
  }
  for (const std::string& v : d.zeroed) {
    at::Tensor& t = g.initializers().at(v);
    t.mul_(mask.to(t.scalar_type()));
  }
}

void remove_units(Graph& g, const PrunableDimension& d, const at::Tensor& mask) {
  at::NoGradGuard no_grad;
  const at::Tensor keep = mask.nonzero().reshape({-1});
  auto& init = g.initializers();
  for (const PrunableDimension::Slice& p : d.produced)
    init[p.tensor] = init.at(p.tensor).index_select(p.axis, keep).contiguous();
  for (const std::string& v : d.zeroed) init[v] = init.at(v).index_select(0, keep).contiguous();
  for (const std::string& v : d.kept_vectors) init[v] = init.at(v).index_select(0, keep).contiguous();
  for (const PrunableDimension::Slice& c : d.consumed) {
    const at::Tensor wb = init.at(c.tensor);
    if (c.groups <= 1) {
      init[c.tensor] = wb.index_select(c.axis, keep).contiguous();
      continue;
    }
    const int64_t per = d.units / c.groups, out_per = wb.size(0) / c.groups;
    const int64_t kept_per = keep.numel() / c.groups;
    at::Tensor out = at::empty({wb.size(0), kept_per, wb.size(2), wb.size(3)}, wb.options());
    for (int64_t j = 0; j < c.groups; ++j) {
      const at::Tensor in_group = mask.slice(0, j * per, (j + 1) * per).nonzero().reshape({-1});
      out.slice(0, j * out_per, (j + 1) * out_per)
          .copy_(wb.slice(0, j * out_per, (j + 1) * out_per).index_select(1, in_group));
    }
    init[c.tensor] = out;
  }
  for (Node& n : g.nodes())
    if (std::find(d.depthwise.begin(), d.depthwise.end(), n.name) != d.depthwise.end())
      n.set("group", keep.numel());
}

namespace {

class PruneStructured : public Strategy {
 public:
  std::string name() const override { return "prune-structured"; }
  std::string summary() const override {
    return "structured pruning: remove whole channels (images) or feed-forward units (text) by "
           "importance, fine-tune with distillation, write a physically smaller model";
  }
  std::string needs() const override { return "training data; the input model is the teacher"; }
  std::vector<OptionSpec> options() const override {
    std::vector<OptionSpec> o = {
        {"ratio", "0.5", "share of the units of each prunable dimension removed, in [0, 1)",
         check_double(0, 1, false, true)}};
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
    const double ratio = opts.number("ratio");
    Graph g = model.clone();
    const std::vector<PrunableDimension> dims = prunable_dimensions(g);
    if (dims.empty()) {
      const std::string why = strategies::unprunable_weights_reason(model);
      throw Error("prune-structured: model '" + model.name() + "' has no prunable set of units" +
                  (why.empty() ? " (the outputs of a Conv, MatMul or Gemm with a constant weight of its own, "
                                 "through per-unit ops, read by another such node)"
                               : ": " + why));
    }
    auto masks = std::make_shared<std::vector<at::Tensor>>();
    int64_t removed = 0, total = 0;
    for (const PrunableDimension& d : dims) {
      masks->push_back(structured_keep_mask(unit_importance(g, d), d.groups, ratio));
      removed += d.units - masks->back().sum().item<int64_t>();
      total += d.units;
    }
    auto apply_all = [dims, masks](Graph& graph) {
      for (size_t i = 0; i < dims.size(); ++i) apply_unit_mask(graph, dims[i], (*masks)[i]);
    };
    apply_all(g);
    const TaskData data = strategies::training_data(model, opts, ctx);
    const TrainRecipe recipe = strategies::finetune_recipe(modality, opts, 2, image ? 0.01 : 2e-4, ctx);
    TrainHooks hooks;
    hooks.loss = strategies::distillation_hook(strategies::teacher_logits(model, data, ctx.threads),
                                               strategies::kd_settings(modality, opts));
    hooks.after_step = apply_all;
    if (ctx.log)
      ctx.log("prune-structured: removing " + std::to_string(removed) + " of " +
              std::to_string(total) + " units in " + std::to_string(dims.size()) +
              " dimensions; fine-tuning " + std::to_string(recipe.epochs) + " epochs on " +
              std::to_string(data.size()) + " samples");
    const TrainReport tr = train_graph(g, data, recipe, ctx.progress, hooks);
    nlohmann::json layers = nlohmann::json::object();
    for (size_t i = 0; i < dims.size(); ++i) {
      remove_units(g, dims[i], (*masks)[i]);
      layers[dims[i].name] = {{"units", dims[i].units},
                              {"kept", (*masks)[i].sum().item<int64_t>()},
                              {"producers", dims[i].producers.size()},
                              {"consumers", dims[i].consumers.size()}};
    }
    g.value_info().clear();  // shapes changed; the hints would be stale
    g.validate();
    report["ratio"] = ratio;
    report["units_removed"] = removed;
    report["units_total"] = total;
    report["dimensions"] = layers;
    report["parameters_before"] = model.parameter_count();
    report["parameters_after"] = g.parameter_count();
    report["epochs"] = recipe.epochs;
    report["first_loss"] = tr.first_loss;
    report["final_loss"] = tr.final_loss;
    return g;
  }
};

}  // namespace
EF_REGISTER_STRATEGY(PruneStructured);
}  // namespace edgeforge
