// Recurrent layers (opset 14): RNN, GRU and LSTM, each forward, reverse or bidirectional, with
// sequence_lens, initial states, clip, layout 0 ([seq, batch, ...]) or 1 ([batch, seq, ...])
// and the optional outputs Y, Y_h (and LSTM's Y_c).
//
// The input projection x W^T + Wb of every step is one matrix product; the steps then run in a
// loop of ATen ops, so the layers are differentiable. With sequence_lens, a step at or past a
// sequence's length leaves its state as it was and writes zeros to Y, so Y_h holds the state
// after the last valid step (for the reverse direction, after step 0; zeros for length 0).
// float16 and bfloat16 are computed in float.
#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "util.h"

namespace edgeforge::ops {
namespace {

enum class Cell { kRnn, kGru, kLstm };

using Activation = at::Tensor (*)(const at::Tensor&);

at::Tensor relu_fn(const at::Tensor& x) { return at::relu(x); }
at::Tensor tanh_fn(const at::Tensor& x) { return at::tanh(x); }
at::Tensor sigmoid_fn(const at::Tensor& x) { return at::sigmoid(x); }
at::Tensor softsign_fn(const at::Tensor& x) { return x / (1 + at::abs(x)); }
at::Tensor softplus_fn(const at::Tensor& x) { return at::softplus(x); }

// The activations without parameters; the ones taking activation_alpha / activation_beta
// (Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu) are not supported.
Activation activation_named(const std::string& name, const std::string& where) {
  if (name == "Relu") return relu_fn;
  if (name == "Tanh") return tanh_fn;
  if (name == "Sigmoid") return sigmoid_fn;
  if (name == "Softsign") return softsign_fn;
  if (name == "Softplus") return softplus_fn;
  throw Error(detail::concat(where, ": activation '", name,
                             "' is not supported (supported: Relu, Tanh, Sigmoid, Softsign, "
                             "Softplus)"));
}

struct Recurrent {
  Cell cell = Cell::kRnn;
  std::string where;
  int64_t gates = 1;        // weight blocks per direction: RNN 1 (i), GRU 3 (zrh), LSTM 4 (iofc)
  int64_t hidden_size = 0;  // 0 when not given: R's last dimension
  int64_t directions = 1;
  bool reverse = false;      // direction "reverse" (bidirectional runs forward, then reverse)
  bool batch_first = false;  // layout 1
  std::optional<double> clip;
  // Per direction, in order: RNN f; GRU f, g; LSTM f, g, h.
  std::vector<Activation> activations;
  bool linear_before_reset = false;  // GRU
  bool input_forget = false;         // LSTM: f = 1 - i
};

Recurrent parse_recurrent(const Node& node, Cell cell) {
  Recurrent s;
  s.cell = cell;
  s.where = node.describe();
  s.gates = cell == Cell::kRnn ? 1 : cell == Cell::kGru ? 3 : 4;
  if (node.has("hidden_size")) {
    s.hidden_size = node.attr_int("hidden_size");
    EF_CHECK(s.hidden_size >= 1, s.where, ": hidden_size ", s.hidden_size, " is not positive");
  }
  const std::string direction = node.attr_string("direction", "forward");
  EF_CHECK(direction == "forward" || direction == "reverse" || direction == "bidirectional",
           s.where, ": direction '", direction, "' is not one of forward, reverse, bidirectional");
  s.directions = direction == "bidirectional" ? 2 : 1;
  s.reverse = direction == "reverse";
  const int64_t layout = node.attr_int("layout", 0);
  EF_CHECK(layout == 0 || layout == 1, s.where, ": layout must be 0 or 1, got ", layout);
  s.batch_first = layout == 1;
  if (node.has("clip")) {
    s.clip = node.attr_float("clip");
    EF_CHECK(*s.clip > 0, s.where, ": clip ", *s.clip, " is not positive");
  }
  for (const char* name : {"activation_alpha", "activation_beta"})
    EF_CHECK(!node.has(name), s.where, ": attribute '", name,
             "' is not supported (it parameterises activations that are not supported)");

  std::vector<std::string> names;
  if (cell == Cell::kRnn) names = {"Tanh"};
  if (cell == Cell::kGru) names = {"Sigmoid", "Tanh"};
  if (cell == Cell::kLstm) names = {"Sigmoid", "Tanh", "Tanh"};
  const size_t per_direction = names.size();
  if (s.directions == 2) {
    const std::vector<std::string> one = names;
    names.insert(names.end(), one.begin(), one.end());
  }
  if (node.has("activations")) {
    const auto* given = std::get_if<std::vector<std::string>>(&node.attributes.at("activations"));
    EF_CHECK(given != nullptr, s.where, ": attribute 'activations' is not a list of strings");
    names = *given;
    // RNN's schema default is {Tanh, Tanh} whatever the direction; one direction takes the first.
    if (cell == Cell::kRnn && s.directions == 1 && names.size() == 2) names.resize(1);
    EF_CHECK(names.size() == per_direction * static_cast<size_t>(s.directions), s.where,
             ": activations has ", names.size(), " values, expected ",
             per_direction * static_cast<size_t>(s.directions));
  }
  for (const std::string& name : names) s.activations.push_back(activation_named(name, s.where));

  if (cell == Cell::kGru) {
    const int64_t lbr = node.attr_int("linear_before_reset", 0);
    EF_CHECK(lbr == 0 || lbr == 1, s.where, ": linear_before_reset must be 0 or 1, got ", lbr);
    s.linear_before_reset = lbr == 1;
  }
  if (cell == Cell::kLstm) {
    const int64_t input_forget = node.attr_int("input_forget", 0);
    EF_CHECK(input_forget == 0 || input_forget == 1, s.where, ": input_forget must be 0 or 1, got ",
             input_forget);
    s.input_forget = input_forget == 1;
  }
  return s;
}

// One direction's parameters: w [G*H, I], r [G*H, H], wb and rb [G*H], p [3H] (undefined when
// not given), and its activations.
struct DirectionWeights {
  at::Tensor w, r, wb, rb, p;
  const Activation* act = nullptr;
};

struct DirectionResult {
  at::Tensor y;  // [T, B, H]
  at::Tensor h;  // [B, H]
  at::Tensor c;  // [B, H], LSTM
};

// Runs one direction over x [T, B, I] from h0 (and c0) [B, H]; `valid` [T, B, 1] marks the steps
// within each sequence's length (undefined: all).
DirectionResult run_direction(const Recurrent& s, const DirectionWeights& d, const at::Tensor& x,
                              at::Tensor h, at::Tensor c, const at::Tensor& valid, bool reverse) {
  const int64_t steps = x.size(0), hidden = h.size(1);
  auto act = [&](size_t k, const at::Tensor& v) {
    return d.act[k](s.clip ? v.clamp(-*s.clip, *s.clip) : v);
  };
  // Biases that are always added with the input projection join it: all but GRU's Rbh.
  at::Tensor xw = at::matmul(x, d.w.t());
  if (d.wb.defined()) {
    xw = xw + d.wb;
    xw = xw + (s.cell == Cell::kGru
                   ? at::cat({d.rb.narrow(0, 0, 2 * hidden), at::zeros({hidden}, d.rb.options())})
                   : d.rb);
  }
  const at::Tensor r_zr = s.cell == Cell::kGru ? d.r.narrow(0, 0, 2 * hidden).t() : at::Tensor();
  const at::Tensor r_h =
      s.cell == Cell::kGru ? d.r.narrow(0, 2 * hidden, hidden).t() : at::Tensor();
  const at::Tensor rb_h =
      s.cell == Cell::kGru && d.rb.defined() ? d.rb.narrow(0, 2 * hidden, hidden) : at::Tensor();
  const at::Tensor r_t = d.r.t();

  std::vector<at::Tensor> ys(static_cast<size_t>(steps));
  for (int64_t k = 0; k < steps; ++k) {
    const int64_t t = reverse ? steps - 1 - k : k;
    const at::Tensor xt = xw[t];
    at::Tensor h_new, c_new;
    if (s.cell == Cell::kRnn) {
      h_new = act(0, xt + at::matmul(h, r_t));
    } else if (s.cell == Cell::kGru) {
      const at::Tensor zr = xt.narrow(1, 0, 2 * hidden) + at::matmul(h, r_zr);
      const at::Tensor z = act(0, zr.narrow(1, 0, hidden));
      const at::Tensor r = act(0, zr.narrow(1, hidden, hidden));
      const at::Tensor xh = xt.narrow(1, 2 * hidden, hidden);
      at::Tensor candidate;
      if (s.linear_before_reset) {
        at::Tensor hr = at::matmul(h, r_h);
        if (rb_h.defined()) hr = hr + rb_h;
        candidate = act(1, xh + r * hr);
      } else {
        at::Tensor rh = at::matmul(r * h, r_h);
        if (rb_h.defined()) rh = rh + rb_h;
        candidate = act(1, xh + rh);
      }
      h_new = (1 - z) * candidate + z * h;
    } else {
      const std::vector<at::Tensor> g = (xt + at::matmul(h, r_t)).chunk(4, 1);  // i, o, f, c
      at::Tensor gi = g[0], gf = g[2], go = g[1];
      if (d.p.defined()) {
        gi = gi + d.p.narrow(0, 0, hidden) * c;
        gf = gf + d.p.narrow(0, 2 * hidden, hidden) * c;
      }
      const at::Tensor i = act(0, gi);
      const at::Tensor f = s.input_forget ? 1 - i : act(0, gf);
      c_new = f * c + i * act(1, g[3]);
      if (d.p.defined()) go = go + d.p.narrow(0, hidden, hidden) * c_new;
      h_new = act(0, go) * act(2, c_new);
    }
    if (valid.defined()) {
      const at::Tensor v = valid[t];
      ys[static_cast<size_t>(t)] = h_new.masked_fill(v.logical_not(), 0);
      h = at::where(v, h_new, h);
      if (c_new.defined()) c = at::where(v, c_new, c);
    } else {
      ys[static_cast<size_t>(t)] = h_new;
      h = h_new;
      if (c_new.defined()) c = c_new;
    }
  }
  if (valid.defined()) {
    // A sequence of length 0 has no last state: zeros, as onnxruntime gives.
    const at::Tensor nonempty = valid.any(0);
    h = h.masked_fill(nonempty.logical_not(), 0);
    if (c.defined()) c = c.masked_fill(nonempty.logical_not(), 0);
  }
  at::Tensor y = steps == 0 ? x.new_zeros({0, h.size(0), hidden}) : at::stack(ys);
  return {y, h, c};
}

// An optional [D, B, H] state input (layout 1: [B, D, H]) as [D, B, H], zeros when omitted.
at::Tensor initial_state(const Recurrent& s, const at::Tensor& given, int64_t batch, int64_t hidden,
                         const at::TensorOptions& options, const char* what) {
  if (!given.defined()) return at::zeros({s.directions, batch, hidden}, options);
  const at::Tensor state = (s.batch_first ? given.transpose(0, 1) : given).to(options.dtype());
  const std::vector<int64_t> expected{s.directions, batch, hidden};
  EF_CHECK(state.sizes() == at::IntArrayRef(expected), s.where, ": ", what, " has shape ",
           given.sizes(), ", expected ", at::IntArrayRef(expected),
           s.batch_first ? " with its first two axes swapped (layout 1)" : "");
  return state;
}

void run_recurrent(const Recurrent& s, const TensorList& in, TensorList& out) {
  const at::Tensor& input = in[0];
  const at::ScalarType type = input.scalar_type();
  EF_CHECK(at::isFloatingType(type), s.where, ": X has type ", c10::toString(type),
           ", expected a float tensor");
  EF_CHECK(input.dim() == 3, s.where, ": X has shape ", input.sizes(), ", expected rank 3");
  const at::ScalarType compute = type == at::kDouble ? at::kDouble : at::kFloat;
  const at::TensorOptions options = at::TensorOptions().dtype(compute);
  const at::Tensor x = (s.batch_first ? input.transpose(0, 1) : input).to(compute);
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const at::Tensor w = in[1].to(compute), r = in[2].to(compute);
  const int64_t hidden = s.hidden_size > 0 ? s.hidden_size : r.size(-1);
  const int64_t rows = s.gates * hidden;
  EF_CHECK(w.sizes() == at::IntArrayRef({s.directions, rows, features}), s.where, ": W has shape ",
           w.sizes(), ", expected [", s.directions, ", ", rows, ", ", features, "]");
  EF_CHECK(r.sizes() == at::IntArrayRef({s.directions, rows, hidden}), s.where, ": R has shape ",
           r.sizes(), ", expected [", s.directions, ", ", rows, ", ", hidden, "]");
  at::Tensor b = optional_input(in, 3);
  if (b.defined()) {
    b = b.to(compute);
    EF_CHECK(b.sizes() == at::IntArrayRef({s.directions, 2 * rows}), s.where, ": B has shape ",
             b.sizes(), ", expected [", s.directions, ", ", 2 * rows, "]");
  }
  at::Tensor valid;
  if (const at::Tensor& lens = optional_input(in, 4); lens.defined()) {
    const std::vector<int64_t> v = to_int64s(lens, s.where, "sequence_lens");
    EF_CHECK(static_cast<int64_t>(v.size()) == batch, s.where, ": sequence_lens has ", v.size(),
             " values for a batch of ", batch);
    for (int64_t len : v)
      EF_CHECK(len >= 0 && len <= steps, s.where, ": sequence_lens value ", len, " is not in [0, ",
               steps, "]");
    valid = (at::arange(steps).unsqueeze(1) < at::tensor(v).unsqueeze(0)).unsqueeze(2);
  }
  const at::Tensor h0 =
      initial_state(s, optional_input(in, 5), batch, hidden, options, "initial_h");
  at::Tensor c0, p;
  if (s.cell == Cell::kLstm) {
    c0 = initial_state(s, optional_input(in, 6), batch, hidden, options, "initial_c");
    p = optional_input(in, 7);
    if (p.defined()) {
      p = p.to(compute);
      EF_CHECK(p.sizes() == at::IntArrayRef({s.directions, 3 * hidden}), s.where, ": P has shape ",
               p.sizes(), ", expected [", s.directions, ", ", 3 * hidden, "]");
    }
  }

  const size_t per_direction = s.activations.size() / static_cast<size_t>(s.directions);
  std::vector<at::Tensor> ys, hs, cs;
  for (int64_t dir = 0; dir < s.directions; ++dir) {
    DirectionWeights d;
    d.w = w[dir];
    d.r = r[dir];
    if (b.defined()) {
      d.wb = b[dir].narrow(0, 0, rows);
      d.rb = b[dir].narrow(0, rows, rows);
    }
    if (p.defined()) d.p = p[dir];
    d.act = s.activations.data() + static_cast<size_t>(dir) * per_direction;
    DirectionResult result =
        run_direction(s, d, x, h0[dir], c0.defined() ? c0[dir] : c0, valid, s.reverse || dir == 1);
    ys.push_back(result.y);
    hs.push_back(result.h);
    cs.push_back(result.c);
  }
  at::Tensor y = at::stack(ys, 1);  // [T, D, B, H]
  at::Tensor y_h = at::stack(hs);   // [D, B, H]
  at::Tensor y_c = s.cell == Cell::kLstm ? at::stack(cs) : at::Tensor();
  if (s.batch_first) {
    y = y.permute({2, 0, 1, 3});
    y_h = y_h.transpose(0, 1);
    if (y_c.defined()) y_c = y_c.transpose(0, 1);
  }
  out[0] = y.to(type);
  if (out.size() > 1) out[1] = y_h.to(type);
  if (out.size() > 2) out[2] = y_c.to(type);
}

OpDef recurrent_op(const char* op_type, Cell cell, int max_inputs) {
  PrepareFn prepare = [cell](const Node& node, const Graph&) -> Kernel {
    const Recurrent s = parse_recurrent(node, cell);
    return [s](const TensorList& in, TensorList& out, const KernelContext&) {
      run_recurrent(s, in, out);
    };
  };
  return OpDef{op_type, 3, max_inputs, prepare};
}

// RNN: Ht = f(Xt Wi^T + Ht-1 Ri^T + Wbi + Rbi), f Tanh by default.
EF_REGISTER_OP(RNN, recurrent_op("RNN", Cell::kRnn, 6));
// GRU (f Sigmoid, g Tanh): zt, rt = f(Xt W^T + Ht-1 R^T + Wb + Rb);
// ht = g(Xt Wh^T + (rt . Ht-1) Rh^T + Rbh + Wbh), or with linear_before_reset
// g(Xt Wh^T + rt . (Ht-1 Rh^T + Rbh) + Wbh); Ht = (1 - zt) . ht + zt . Ht-1.
EF_REGISTER_OP(GRU, recurrent_op("GRU", Cell::kGru, 6));
// LSTM (f Sigmoid, g Tanh, h Tanh), gates i, o, f, c and peepholes P[iof]:
// it = f(.. + Pi . Ct-1), ft = f(.. + Pf . Ct-1) (1 - it with input_forget), ct = g(..),
// Ct = ft . Ct-1 + it . ct, ot = f(.. + Po . Ct), Ht = ot . h(Ct).
EF_REGISTER_OP(LSTM, recurrent_op("LSTM", Cell::kLstm, 8));

}  // namespace
}  // namespace edgeforge::ops
