#include "edgeforge/runtime.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>

#include "edgeforge/error.h"
#include "rewrite.h"

namespace edgeforge {

void set_threads(int threads) {
  EF_CHECK(threads >= 1, "threads: ", threads, " is not a valid thread count (expected >= 1)");
  if (at::get_num_threads() != threads) at::set_num_threads(threads);
}

Executor::Executor(const Graph& graph) : graph_(&graph) {
  graph.validate();
  auto slot = [this](const std::string& name) {
    auto it = slot_of_.find(name);
    if (it != slot_of_.end()) return it->second;
    int s = static_cast<int>(constants_.size());
    constants_.emplace_back();
    slot_of_[name] = s;
    return s;
  };
  for (const ValueInfo& v : graph.inputs()) input_slots_.push_back(slot(v.name));
  for (const auto& [name, t] : graph.initializers()) constants_[slot(name)] = t;

  const OpRegistry& registry = OpRegistry::global();
  for (const Node& node : graph.nodes()) {
    const OpDef* def = registry.find(node.op_type, node.domain);
    if (def == nullptr && registry.find(node.op_type) != nullptr)
      throw Error(detail::concat("model '", graph.name(), "': ", node.describe(),
                                 " is in domain '", node.domain, "', which the runtime lacks"));
    EF_CHECK(def != nullptr, "model '", graph.name(), "': op type '", node.op_type, "' of node '",
             node.name, "' is not supported by the edgeforge runtime");
    const int n_in = static_cast<int>(node.inputs.size());
    EF_CHECK(n_in >= def->min_inputs && n_in <= def->max_inputs, "model '", graph.name(), "': ",
             node.describe(), " has ", n_in, " inputs, expected ", def->min_inputs, " to ",
             def->max_inputs);
    Step step;
    step.node = &node;
    step.kernel = def->prepare(node, graph);
    for (const std::string& in : node.inputs) step.input_slots.push_back(in.empty() ? -1 : slot(in));
    for (const std::string& out : node.outputs) step.output_slots.push_back(slot(out));
    step.in.resize(node.inputs.size());
    step.out.resize(node.outputs.size());
    steps_.push_back(std::move(step));
  }
  for (const ValueInfo& v : graph.outputs()) output_slots_.push_back(slot(v.name));
  // Exact GELUs whose nodes form a run of steps starting at the Div, with nothing between them
  // but the Constant nodes of their scalars (as GraphBuilder and torch.onnx write them).
  const rewrite::GraphRewrite index(graph);
  const auto& nodes = graph.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::vector<size_t> group;
    if (!nodes[i].is("Div") || !index.exact_gelu(nodes[i].inputs[0], &group)) continue;
    const size_t last = *std::max_element(group.begin(), group.end());
    const auto in_group = [&](size_t k) { return std::find(group.begin(), group.end(), k) != group.end(); };
    bool run = *std::min_element(group.begin(), group.end()) == i && nodes[last].outputs[0] == nodes[group.back()].outputs[0];
    for (size_t k = i; run && k <= last; ++k) {
      if (in_group(k)) continue;
      run = nodes[k].inputs.empty();  // a Constant, read only inside the group
      for (const std::string& o : nodes[k].outputs)
        run = run && !index.is_graph_output(o) &&
              std::all_of(index.consumers(o).begin(), index.consumers(o).end(), in_group);
    }
    if (!run) continue;
    Step& first = steps_[i];
    first.fused_span = last - i + 1;
    first.fused_input = slot(nodes[i].inputs[0]);
    first.fused_output = slot(nodes[last].outputs[0]);
    for (size_t k = i; k < last; ++k)
      for (const std::string& o : nodes[k].outputs) first.fused_inside.push_back(slot(o));
  }

  // Free each intermediate after its last reader so peak memory stays low.
  last_use_.assign(constants_.size(), -1);
  for (size_t i = 0; i < steps_.size(); ++i)
    for (int s : steps_[i].input_slots)
      if (s >= 0) last_use_[s] = static_cast<int>(i);
  for (int s : output_slots_) last_use_[s] = static_cast<int>(steps_.size());
}

std::vector<at::Tensor> Executor::run(const std::vector<at::Tensor>& inputs,
                                      const RunOptions& opts) {
  return run(inputs, opts, {}, nullptr);
}

std::vector<at::Tensor> Executor::run(const std::vector<at::Tensor>& inputs,
                                      const RunOptions& opts,
                                      const std::vector<std::string>& fetch,
                                      std::map<std::string, at::Tensor>* fetched) {
  const auto& declared = graph_->inputs();
  if (inputs.size() != declared.size()) {
    // Name the first missing input, so the caller knows what to add.
    const std::string which =
        inputs.size() < declared.size()
            ? "input '" + declared[inputs.size()].name + "' is missing"
            : std::to_string(inputs.size() - declared.size()) + " too many";
    throw Error(detail::concat("model '", graph_->name(), "': got ", inputs.size(),
                               " inputs, the model takes ", declared.size(), " (", which, ")"));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ValueInfo& v = declared[i];
    const at::Tensor& t = inputs[i];
    EF_CHECK(t.defined(), "model '", graph_->name(), "': input '", v.name, "' is missing");
    EF_CHECK(t.scalar_type() == v.dtype, "model '", graph_->name(), "': input '", v.name,
             "' has type ", c10::toString(t.scalar_type()), ", expected ",
             c10::toString(v.dtype));
    if (v.has_shape) {
      EF_CHECK(t.dim() == static_cast<int64_t>(v.shape.size()), "model '", graph_->name(),
               "': input '", v.name, "' has shape ", t.sizes(), ", expected rank ",
               v.shape.size());
      for (size_t d = 0; d < v.shape.size(); ++d)
        EF_CHECK(!v.shape[d].is_fixed() || v.shape[d].size == t.size(d), "model '",
                 graph_->name(), "': input '", v.name, "' has shape ", t.sizes(),
                 ", expected size ", v.shape[d].size, " in dimension ", d);
    }
  }
  set_threads(opts.threads);

  std::vector<at::Tensor> values = constants_;
  for (size_t i = 0; i < inputs.size(); ++i) values[input_slots_[i]] = inputs[i];
  std::vector<int> fetch_slots;
  for (const std::string& name : fetch) {
    auto it = slot_of_.find(name);
    EF_CHECK(it != slot_of_.end(), "model '", graph_->name(), "': no value named '", name, "'");
    fetch_slots.push_back(it->second);
  }
  KernelContext ctx;
  ctx.training = opts.training;
  ctx.freeze_batch_norm = opts.freeze_batch_norm;
  NodeProfile* profile = opts.profile;
  if (profile != nullptr) {
    if (profile->nodes.size() != steps_.size()) {
      *profile = NodeProfile{};
      for (const Step& s : steps_) {
        profile->nodes.push_back(s.node->name);
        profile->op_types.push_back(s.node->op_type);
      }
      profile->ms.assign(steps_.size(), 0.0);
    }
    ++profile->runs;
  }
  // Frees each input of step i that nothing later reads.
  auto release = [&](size_t i) {
    if (!fetch_slots.empty()) return;
    for (int s : steps_[i].input_slots)
      if (s >= 0 && last_use_[s] == static_cast<int>(i) && !constants_[s].defined()) values[s].reset();
  };
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& step = steps_[i];
    if (step.fused_span > 0 && ctx.training &&
        std::none_of(fetch_slots.begin(), fetch_slots.end(), [&](int s) {
          return std::find(step.fused_inside.begin(), step.fused_inside.end(), s) != step.fused_inside.end();
        })) {
      const auto t0 = std::chrono::steady_clock::now();
      try {
        values[step.fused_output] = at::gelu(values[step.fused_input]);
      } catch (const c10::Error& e) {
        const std::string message = e.what_without_backtrace();
        throw Error(detail::concat("model '", graph_->name(), "': ", step.node->describe(), ": ",
                                   message.substr(0, message.find('\n'))));
      }
      if (profile != nullptr)
        profile->ms[i] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      for (size_t j = i; j < i + step.fused_span; ++j) release(j);
      i += step.fused_span - 1;
      continue;
    }
    for (size_t k = 0; k < step.input_slots.size(); ++k)
      step.in[k] = step.input_slots[k] >= 0 ? values[step.input_slots[k]] : at::Tensor();
    const auto t0 = profile != nullptr ? std::chrono::steady_clock::now()
                                       : std::chrono::steady_clock::time_point{};
    try {
      step.kernel(step.in, step.out, ctx);
      if (profile != nullptr)
        profile->ms[i] += std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - t0)
                              .count();
    } catch (const Error&) {
      for (at::Tensor& t : step.in) t.reset();
      throw;
    } catch (const c10::Error& e) {
      // ATen's messages carry no node and span several lines; keep the first line, name the node.
      for (at::Tensor& t : step.in) t.reset();
      const std::string message = e.what_without_backtrace();
      throw Error(detail::concat("model '", graph_->name(), "': ", step.node->describe(), ": ",
                                 message.substr(0, message.find('\n'))));
    } catch (const std::exception& e) {  // oneDNN's errors (the inference plan's kernels)
      for (at::Tensor& t : step.in) t.reset();
      const std::string message = e.what();
      throw Error(detail::concat("model '", graph_->name(), "': ", step.node->describe(), ": ",
                                 message.substr(0, message.find('\n'))));
    }
    for (size_t k = 0; k < step.output_slots.size(); ++k)
      values[step.output_slots[k]] = std::move(step.out[k]);
    for (at::Tensor& t : step.in) t.reset();
    release(i);
  }
  if (fetched != nullptr)
    for (size_t k = 0; k < fetch.size(); ++k) (*fetched)[fetch[k]] = values[fetch_slots[k]];
  std::vector<at::Tensor> outs;
  outs.reserve(output_slots_.size());
  for (int s : output_slots_) outs.push_back(values[s]);
  return outs;
}

}  // namespace edgeforge
