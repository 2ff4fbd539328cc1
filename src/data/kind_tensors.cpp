// The raw-tensors data-set kind: NumPy arrays, one per model input (a folder of NAME.npy files or
// an .npz archive), for any modality and for models whose preprocessing happens elsewhere.
#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "edgeforge/dataset.h"
#include "edgeforge/error.h"
#include "edgeforge/util.h"
#include "npy.h"
#include "spec_fields.h"

namespace edgeforge {
namespace {

namespace fs = std::filesystem;

void check_tensors(DataSpec& spec, const std::string& base_dir) {
  data::Fields f(spec, base_dir);
  const data::SplitSources src = data::SplitSources::read(f, true);
  for (const auto& p : src.hashed() ? std::vector<std::string>{src.path} : [&] {
         std::vector<std::string> v;
         for (const auto& [k, path] : src.paths) v.push_back(path);
         return v;
       }()) {
    std::error_code ec;
    if (!fs::is_directory(p, ec) && fs::path(p).extension() != ".npz")
      f.fail(src.hashed() ? "path" : "train", "names " + p + ", which is neither a folder of .npy files nor an .npz file");
  }
  f.text("labels", "labels");
  f.texts("classes", {});
  f.choice("metric", "auto", {"auto", "top1", "top5", "accuracy", "f1", "f1_macro", "agreement"});
  f.done();
}

at::ScalarType torch_type(const std::string& dtype) {
  static const std::map<std::string, at::ScalarType> types = {
      {"float16", at::kHalf}, {"float32", at::kFloat}, {"float64", at::kDouble},
      {"int8", at::kChar},    {"uint8", at::kByte},    {"int16", at::kShort},
      {"int32", at::kInt},    {"int64", at::kLong},    {"bool", at::kBool}};
  auto it = types.find(dtype);
  EF_CHECK(it != types.end(), "arrays of ", dtype, " have no tensor type here");
  return it->second;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string shape_text(const ValueInfo& v) {
  if (!v.has_shape) return "(unknown)";
  std::string s = "[";
  for (size_t i = 0; i < v.shape.size(); ++i)
    s += (i ? "," : "") + (v.shape[i].is_fixed() ? std::to_string(v.shape[i].size)
                                                 : (v.shape[i].param.empty() ? "?" : v.shape[i].param));
  return s + "]";
}

class Tensors : public Dataset {
 public:
  Tensors(const DataSpec& spec, const Graph& model) {
    spec_ = spec;
    model_ = model.name();
    for (const ValueInfo& v : model.inputs())
      if (!model.has_initializer(v.name)) inputs_.push_back(v);
  }

  std::string modality() const override { return "tensor"; }
  std::vector<std::string> class_names() const override { return arrays(first_source()).classes; }
  bool has_labels() const override { return arrays(first_source()).labels.defined(); }
  int64_t split_size(const std::string& split) const override { return picks(split, 0).numel(); }

  TaskData load(const std::string& split, int64_t limit) const override {
    const Arrays& a = arrays(source_for(split));
    const at::Tensor idx = picks(split, limit);
    TaskData d;
    d.dataset = spec_.name();
    d.split = split;
    d.class_names = a.classes;
    d.num_classes = static_cast<int64_t>(a.classes.size());
    for (const auto& [name, t] : a.features) d.features[name] = t.index_select(0, idx);
    if (a.labels.defined()) d.labels = a.labels.index_select(0, idx);
    return d;
  }

  std::vector<Payload> payloads(const std::string& split, int64_t limit) const override {
    const TaskData d = load(split, limit);
    std::vector<Payload> out;
    for (int64_t i = 0; i < d.size(); ++i) {
      Payload p;
      p.kind = "tensors";
      // The arrays as captured: one .npy per model input, in input order, each prefixed by its
      // length (8 bytes, little-endian).
      for (const ValueInfo& v : inputs_) {
        const at::Tensor row = d.features.at(v.name).select(0, i).unsqueeze(0).contiguous();
        NpyArray arr;
        arr.dtype = npy_type(row.scalar_type());
        arr.shape.assign(row.sizes().begin(), row.sizes().end());
        arr.data.assign(static_cast<const char*>(row.data_ptr()), row.nbytes());
        const std::string bytes = npy_bytes(arr, "input '" + v.name + "'");
        const uint64_t n = bytes.size();
        p.bytes.append(reinterpret_cast<const char*>(&n), 8);
        p.bytes += bytes;
      }
      p.label = d.labels.defined() ? d.labels[i].item<int64_t>() : -1;
      out.push_back(std::move(p));
    }
    return out;
  }

  std::vector<at::Tensor> preprocess(const Payload& p) const override {
    EF_CHECK(p.kind == "tensors", "model '", model_, "' takes raw tensors, not ", p.kind);
    std::vector<at::Tensor> out;
    size_t at_byte = 0;
    for (const ValueInfo& v : inputs_) {
      EF_CHECK(p.bytes.size() - at_byte >= 8, "tensors payload: truncated before input '", v.name, "'");
      uint64_t n = 0;
      std::memcpy(&n, p.bytes.data() + at_byte, 8);
      at_byte += 8;
      EF_CHECK(n <= p.bytes.size() - at_byte, "tensors payload: input '", v.name, "' is truncated");
      const NpyArray arr = parse_npy(p.bytes.substr(at_byte, n), "tensors payload input '" + v.name + "'");
      at_byte += n;
      out.push_back(to_model_tensor(arr, v, "payload"));
    }
    EF_CHECK(at_byte == p.bytes.size(), "tensors payload: bytes after the last input");
    return out;
  }

  nlohmann::json describe() const override {
    const Arrays& a = arrays(first_source());
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [name, t] : a.features) {
      std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
      j["arrays"][name] = npy_type(t.scalar_type()) + " " + shape_text(shape);
    }
    return j;
  }

 private:
  struct Arrays {
    std::map<std::string, at::Tensor> features;
    at::Tensor labels;
    std::vector<std::string> classes;
    int64_t count = 0;
  };

  static std::string npy_type(at::ScalarType t) {
    switch (t) {
      case at::kHalf: return "float16";
      case at::kFloat: return "float32";
      case at::kDouble: return "float64";
      case at::kChar: return "int8";
      case at::kByte: return "uint8";
      case at::kShort: return "int16";
      case at::kInt: return "int32";
      case at::kLong: return "int64";
      case at::kBool: return "bool";
      default: throw Error(detail::concat("a tensor of ", t, " cannot be sent as .npy"));
    }
  }

  // An array as the model's input `v` takes it: floats to the input's float type, integers to
  // its integer type; every fixed dimension after the first must match.
  at::Tensor to_model_tensor(const NpyArray& arr, const ValueInfo& v, const std::string& where) const {
    const at::ScalarType from = torch_type(arr.dtype);
    const bool from_float = at::isFloatingType(from), to_float = at::isFloatingType(v.dtype);
    EF_CHECK(from_float == to_float && (from != at::kBool) == (v.dtype != at::kBool), where,
             ": array '", v.name, "' is ", arr.dtype, ", model '", model_, "' input '", v.name,
             "' takes ", v.dtype);
    bool fits = !v.has_shape || v.shape.size() == arr.shape.size();
    for (size_t d = 1; fits && v.has_shape && d < v.shape.size(); ++d)
      fits = !v.shape[d].is_fixed() || v.shape[d].size == arr.shape[d];
    EF_CHECK(fits && !arr.shape.empty(), where, ": array '", v.name, "' has shape ",
             shape_text(arr.shape), ", model '", model_, "' input '", v.name, "' takes ",
             shape_text(v), " (the first dimension is the sample)");
    at::Tensor t = at::empty(arr.shape, at::TensorOptions(from));
    std::memcpy(t.data_ptr(), arr.data.data(), arr.data.size());
    return t.to(v.dtype);
  }

  std::string first_source() const {
    const nlohmann::json& f = spec_.fields;
    if (f.contains("path")) return f["path"].get<std::string>();
    for (const char* s : {"test", "validation", "train"})
      if (f.contains(s)) return f[s].get<std::string>();
    throw Error("data set " + spec_.name() + " has no path");
  }

  std::string source_for(const std::string& split) const {
    return data::SplitSources::of(spec_.fields).source_for(split, spec_.name());
  }

  at::Tensor picks(const std::string& split, int64_t limit) const {
    const data::SplitSources splits = data::SplitSources::of(spec_.fields);
    const Arrays& a = arrays(splits.source_for(split, spec_.name()));
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < a.count; ++i)
      if (splits.keeps(std::to_string(i), split)) idx.push_back(i);
    if (limit > 0 && static_cast<int64_t>(idx.size()) > limit) idx.resize(static_cast<size_t>(limit));
    return at::tensor(idx, at::kLong);
  }

  const Arrays& arrays(const std::string& source) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = cache_.find(source);
    if (found != cache_.end()) return found->second;
    std::map<std::string, NpyArray> raw;
    std::error_code ec;
    if (fs::is_directory(source, ec)) {
      for (const fs::directory_entry& e : fs::directory_iterator(source, ec))
        if (e.is_regular_file() && e.path().extension() == ".npy")
          raw.emplace(e.path().stem().string(), read_npy(e.path().string()));
    } else {
      raw = read_npz(source);
    }
    EF_CHECK(!raw.empty(), "data set ", spec_.name(), ": ", source, " holds no arrays");
    Arrays a;
    const std::string label_name = spec_.fields.value("labels", std::string("labels"));
    std::string names;
    for (const auto& [name, arr] : raw) names += (names.empty() ? "" : ", ") + name;
    std::vector<ValueInfo> feeds = inputs_;
    if (feeds.empty())  // no model: every array but the labels
      for (const auto& [name, arr] : raw)
        if (name != label_name) feeds.push_back({name, torch_type(arr.dtype), {}, false});
    int64_t count = -1;
    std::string count_from;
    for (const ValueInfo& v : feeds) {
      auto it = raw.find(v.name);
      EF_CHECK(it != raw.end(), "data set ", spec_.name(), ": model '", model_, "' input '", v.name,
               "' has no array in ", source, " (it holds: ", names, ")");
      const std::string file = fs::is_directory(source, ec) ? (fs::path(source) / (v.name + ".npy")).string()
                                                             : source + " member " + v.name;
      const at::Tensor t = to_model_tensor(it->second, v, file);
      if (count < 0) {
        count = t.size(0);
        count_from = v.name;
      }
      EF_CHECK(t.size(0) == count, "data set ", spec_.name(), ": array '", v.name, "' has ",
               t.size(0), " samples, '", count_from, "' has ", count);
      a.features[v.name] = t;
    }
    a.count = std::max<int64_t>(count, 0);
    auto lab = raw.find(label_name);
    if (lab != raw.end()) {
      const NpyArray& l = lab->second;
      EF_CHECK(l.shape.size() == 1 && l.shape[0] == a.count, "data set ", spec_.name(), ": labels '",
               label_name, "' have shape ", shape_text(l.shape), "; expected [", a.count, "]");
      const at::ScalarType lt = torch_type(l.dtype);
      EF_CHECK(at::isIntegralType(lt, false), "data set ", spec_.name(), ": labels '", label_name,
               "' are ", l.dtype, "; expected integers");
      at::Tensor t = at::empty(l.shape, at::TensorOptions(lt));
      std::memcpy(t.data_ptr(), l.data.data(), l.data.size());
      a.labels = t.to(at::kLong);
      const int64_t lo = a.count ? a.labels.min().item<int64_t>() : 0;
      EF_CHECK(lo >= 0, "data set ", spec_.name(), ": label ", lo, " is negative");
      const int64_t hi = a.count ? a.labels.max().item<int64_t>() : -1;
      a.classes = spec_.fields.value("classes", std::vector<std::string>{});
      EF_CHECK(a.classes.empty() || hi < static_cast<int64_t>(a.classes.size()), "data set ",
               spec_.name(), ": label ", hi, " is beyond the ", a.classes.size(), " classes");
    }
    return cache_.emplace(source, std::move(a)).first->second;
  }

  std::string model_;
  std::vector<ValueInfo> inputs_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, Arrays> cache_;
};

}  // namespace

EF_REGISTER_DATA_KIND((DataKind{
    "tensors",
    "NumPy arrays, one per model input (a folder of NAME.npy or an .npz), labels in 'labels'",
    "tensor", check_tensors,
    [](const DataSpec& s, const Graph& m, const std::string&) -> std::unique_ptr<Dataset> {
      return std::make_unique<Tensors>(s, m);
    }}));

}  // namespace edgeforge
