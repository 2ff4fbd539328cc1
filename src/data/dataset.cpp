// Data specs, the registry of data-set kinds, and binding a spec to a model (edgeforge/dataset.h).
#include "edgeforge/dataset.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "edgeforge/error.h"
#include "edgeforge/util.h"
#include "spec_fields.h"
#include "../common/numbers.h"

namespace edgeforge {
namespace {

namespace fs = std::filesystem;

std::map<std::string, DataKind>& kind_table() {
  static std::map<std::string, DataKind> table;
  return table;
}

constexpr const char* kShorthands =
    "fashion-mnist, spam, imagefolder:DIR, jsonl:FILE, csv:FILE, npy:DIR, npz:FILE or a data "
    "spec .toml file";

bool is_builtin(const std::string& kind) { return kind == kDatasetFashionMnist || kind == kDatasetSpam; }

nlohmann::json toml_to_json(const toml::node& n, const std::string& where) {
  if (const toml::table* t = n.as_table()) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : *t) j[std::string(k.str())] = toml_to_json(v, where);
    return j;
  }
  if (const toml::array* a = n.as_array()) {
    nlohmann::json j = nlohmann::json::array();
    for (const toml::node& v : *a) j.push_back(toml_to_json(v, where));
    return j;
  }
  if (auto s = n.value_exact<std::string>()) return *s;
  if (auto b = n.value_exact<bool>()) return *b;
  if (auto i = n.value_exact<int64_t>()) return *i;
  if (auto d = n.value_exact<double>()) {
    EF_CHECK(std::isfinite(*d), where, ":", n.source().begin.line, ": numbers must be finite");
    return *d;
  }
  throw Error(detail::concat(where, ":", n.source().begin.line,
                             ": dates and times are not data spec values"));
}

// Checks a declared spec with its kind and returns it completed.
DataSpec checked(DataSpec spec, const std::string& base_dir) {
  const DataKind* kind = find_data_kind(spec.kind);
  if (kind == nullptr) {
    std::string names;
    for (const DataKind* k : data_kinds()) names += (names.empty() ? "" : ", ") + k->name;
    throw Error(spec.source + ": unknown data set kind '" + spec.kind + "' (known: " + names + ")");
  }
  kind->check(spec, base_dir);
  return spec;
}

std::string absolute_dir_of(const std::string& file) {
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(file), ec);
  return p.parent_path().string();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Registry

void register_data_kind(DataKind kind) {
  EF_ASSERT(!kind.name.empty() && kind.check && kind.open, "a data kind needs a name, check and open");
  EF_ASSERT(kind_table().count(kind.name) == 0, "data kind '", kind.name, "' registered twice");
  const std::string name = kind.name;
  kind_table().emplace(name, std::move(kind));
}

const DataKind* find_data_kind(const std::string& name) {
  auto it = kind_table().find(name);
  return it == kind_table().end() ? nullptr : &it->second;
}

std::vector<const DataKind*> data_kinds() {
  std::vector<const DataKind*> out;
  for (const auto& [name, k] : kind_table()) out.push_back(&k);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Specs

std::string DataSpec::name() const {
  if (is_builtin(kind)) return kind;
  const std::string path = fields.value("path", std::string());
  if (!path.empty()) return kind + ":" + path;
  for (const char* split : {"test", "validation", "train"}) {
    const std::string p = fields.value(split, std::string());
    if (!p.empty()) return kind + ":" + p;
  }
  return kind;
}

std::string DataSpec::to_metadata() const {
  if (is_builtin(kind) && fields.empty()) return kind;
  nlohmann::json j = fields;
  j["kind"] = kind;
  return j.dump();
}

DataSpec data_spec_from_toml_text(const std::string& toml_text, const std::string& where,
                                  const std::string& base_dir) {
  const toml::table doc = numbers::parse_toml(toml_text, where);
  DataSpec spec;
  spec.source = where;
  spec.fields = toml_to_json(doc, where);
  EF_CHECK(spec.fields.contains("kind") && spec.fields["kind"].is_string(), where,
           ": a data spec needs kind = \"...\" (one of: imagefolder, text, tensors, fashion-mnist, spam)");
  spec.kind = spec.fields["kind"].get<std::string>();
  spec.fields.erase("kind");
  return checked(std::move(spec), base_dir);
}

DataSpec parse_data_spec(const std::string& arg) {
  EF_CHECK(!arg.empty(), "--data: empty; expected ", kShorthands);
  DataSpec spec;
  spec.source = "--data " + arg;
  if (is_builtin(arg)) {
    spec.kind = arg;
    return checked(std::move(spec), ".");
  }
  const auto colon = arg.find(':');
  if (colon != std::string::npos && colon > 0 && arg.find('/') > colon) {
    const std::string shorthand = arg.substr(0, colon), path = arg.substr(colon + 1);
    EF_CHECK(!path.empty(), "--data ", arg, ": no path after '", shorthand, ":'");
    spec.fields["path"] = path;
    if (shorthand == "imagefolder") {
      spec.kind = "imagefolder";
    } else if (shorthand == "jsonl" || shorthand == "csv" || shorthand == "tsv") {
      spec.kind = "text";
      spec.fields["format"] = shorthand;
    } else if (shorthand == "npy" || shorthand == "npz") {
      spec.kind = "tensors";
    } else {
      throw Error("--data " + arg + ": unknown shorthand '" + shorthand + "'; expected " + kShorthands);
    }
    return checked(std::move(spec), ".");
  }
  if (arg.size() > 5 && arg.compare(arg.size() - 5, 5, ".toml") == 0) {
    std::ifstream in(arg, std::ios::binary);
    EF_CHECK(in.good(), "data spec ", arg, ": not found or not readable");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return data_spec_from_toml_text(text, arg, absolute_dir_of(arg));
  }
  throw Error("--data " + arg + ": not a data set; expected " + kShorthands);
}

DataSpec data_spec_from_metadata(const std::string& text, const std::string& what) {
  DataSpec spec;
  spec.source = what;
  if (!text.empty() && text[0] == '{') {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    EF_CHECK(!j.is_discarded() && j.is_object() && j.contains("kind") && j["kind"].is_string(),
             what, ": the data spec is not a JSON object with a kind");
    spec.kind = j["kind"].get<std::string>();
    j.erase("kind");
    spec.fields = std::move(j);
  } else {
    spec.kind = text;
  }
  EF_CHECK(find_data_kind(spec.kind) != nullptr, what, ": unknown data set kind '", spec.kind, "'");
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Binding to a model

std::optional<DataSpec> model_data_spec(const Graph& model) {
  auto it = model.metadata().find(kMetaDataset);
  if (it == model.metadata().end()) return std::nullopt;
  return data_spec_from_metadata(it->second, "model '" + model.name() + "' metadata '" +
                                                  std::string(kMetaDataset) + "'");
}

void attach_data_spec(Graph& model, const DataSpec& spec, const std::string& model_path) {
  const DataKind* kind = find_data_kind(spec.kind);
  EF_CHECK(kind != nullptr, spec.source, ": unknown data set kind '", spec.kind, "'");
  // A model trained on one built-in set cannot read the other modality.
  if (auto own = model_data_spec(model)) {
    const DataKind* own_kind = find_data_kind(own->kind);
    if (own_kind != nullptr && own_kind->modality != kind->modality && is_builtin(own->kind))
      throw Error("model '" + model.name() + "' was trained on " + own->name() + " (" +
                  own_kind->modality + "); it cannot read " + spec.name() + " (" +
                  kind->modality + ")");
  }
  std::unique_ptr<Dataset> bound = kind->open(spec, model, model_path);
  model.metadata()[kMetaDataset] = bound->spec().to_metadata();
}

std::unique_ptr<Dataset> open_dataset(const Graph& model) {
  std::optional<DataSpec> spec = model_data_spec(model);
  EF_CHECK(spec.has_value(), "model '", model.name(),
           "' carries no data set; pass --data with ", kShorthands, " (docs/your-model.md)");
  return find_data_kind(spec->kind)->open(*spec, model, "");
}

std::unique_ptr<Dataset> open_dataset(const Graph& model, const std::string& data_arg) {
  if (data_arg.empty()) return open_dataset(model);
  Graph bound = model;  // shares the weights; only the metadata changes
  attach_data_spec(bound, parse_data_spec(data_arg));
  return open_dataset(bound);
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

std::string hash_split_of(const std::string& key, int train_percent, int validation_percent) {
  const uint64_t bucket = fnv1a64(key) % 100;
  if (bucket < static_cast<uint64_t>(train_percent)) return "train";
  if (bucket < static_cast<uint64_t>(train_percent + validation_percent)) return "validation";
  return "test";
}

std::string metric_label(const std::string& metric) {
  if (metric == "top1") return "top-1";
  if (metric == "top5") return "top-5";
  if (metric == "f1") return "F1";
  if (metric == "f1_macro") return "macro F1";
  return metric;
}

void check_split_name(const std::string& split) {
  EF_CHECK(split == "train" || split == "validation" || split == "test", "unknown split '", split,
           "'; valid splits: train, validation, test");
}

namespace data {

// ---------------------------------------------------------------------------------------------
// Fields

const nlohmann::json* Fields::get(const std::string& key) {
  read_.insert(key);
  auto it = spec_.fields.find(key);
  return it == spec_.fields.end() ? nullptr : &*it;
}

void Fields::fail(const std::string& key, const std::string& problem) const {
  throw Error(spec_.source + ": '" + key + "' " + problem);
}

std::string Fields::text(const std::string& key, const std::string& fallback) {
  const nlohmann::json* v = get(key);
  if (v == nullptr) {
    if (!fallback.empty()) spec_.fields[key] = fallback;
    return fallback;
  }
  if (!v->is_string()) fail(key, "must be a string");
  return v->get<std::string>();
}

std::string Fields::choice(const std::string& key, const std::string& fallback,
                           const std::vector<std::string>& allowed) {
  std::string v = text(key, fallback);
  std::string lower = v;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (std::find(allowed.begin(), allowed.end(), lower) == allowed.end()) {
    std::string names;
    for (const std::string& a : allowed) names += (names.empty() ? "" : ", ") + a;
    fail(key, "is '" + v + "'; expected one of: " + names);
  }
  spec_.fields[key] = lower;
  return lower;
}

int64_t Fields::integer(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
  const nlohmann::json* v = get(key);
  int64_t out = fallback;
  if (v != nullptr) {
    if (v->is_number_integer()) {
      out = v->get<int64_t>();
    } else if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() &&
               std::fabs(v->get<double>()) < 9e15) {
      out = static_cast<int64_t>(v->get<double>());
    } else {
      fail(key, "must be a whole number");
    }
    if (out < lo || out > hi)
      fail(key, detail::concat("is ", out, "; expected ", lo, " to ", hi));
  }
  spec_.fields[key] = out;
  return out;
}

double Fields::number(const std::string& key, double fallback, double lo, double hi) {
  const nlohmann::json* v = get(key);
  double out = fallback;
  if (v != nullptr) {
    if (!v->is_number()) fail(key, "must be a number");
    out = v->get<double>();
    if (!std::isfinite(out) || out < lo || out > hi)
      fail(key, detail::concat("is ", out, "; expected ", lo, " to ", hi));
  }
  spec_.fields[key] = out;
  return out;
}

bool Fields::boolean(const std::string& key, bool fallback) {
  const nlohmann::json* v = get(key);
  bool out = fallback;
  if (v != nullptr) {
    if (!v->is_boolean()) fail(key, "must be true or false");
    out = v->get<bool>();
  }
  spec_.fields[key] = out;
  return out;
}

std::vector<double> Fields::numbers(const std::string& key, const std::vector<double>& fallback,
                                    size_t count, double lo, double hi) {
  const nlohmann::json* v = get(key);
  std::vector<double> out = fallback;
  if (v != nullptr) {
    out.clear();
    if (v->is_number()) {
      out.assign(count == 0 ? 1 : count, v->get<double>());
    } else {
      if (!v->is_array()) fail(key, "must be a list of numbers");
      for (const nlohmann::json& x : *v) {
        if (!x.is_number()) fail(key, "must be a list of numbers");
        out.push_back(x.get<double>());
      }
    }
    if (count != 0 && out.size() != count)
      fail(key, detail::concat("has ", out.size(), " numbers; expected ", count));
    for (double x : out)
      if (!std::isfinite(x) || x < lo || x > hi)
        fail(key, detail::concat("holds ", x, "; expected numbers from ", lo, " to ", hi));
  }
  spec_.fields[key] = out;
  return out;
}

std::vector<std::string> Fields::texts(const std::string& key, const std::vector<std::string>& fallback) {
  const nlohmann::json* v = get(key);
  if (v == nullptr) return fallback;
  if (!v->is_array()) fail(key, "must be a list of strings");
  std::vector<std::string> out;
  for (const nlohmann::json& x : *v) {
    if (!x.is_string()) fail(key, "must be a list of strings");
    out.push_back(x.get<std::string>());
  }
  return out;
}

std::string Fields::path(const std::string& key, bool must_exist) {
  const std::string p = text(key, "");
  if (p.empty()) return p;
  std::error_code ec;
  fs::path full = fs::path(p).is_absolute() ? fs::path(p) : fs::path(base_dir_) / p;
  full = fs::absolute(full, ec).lexically_normal();
  std::string s = full.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  if (must_exist && !fs::exists(full, ec)) fail(key, "names " + s + ", which does not exist");
  spec_.fields[key] = s;
  return s;
}

void Fields::done() const {
  for (const auto& [key, v] : spec_.fields.items())
    if (read_.count(key) == 0) {
      std::string known;
      for (const std::string& k : read_) known += (known.empty() ? "" : ", ") + k;
      throw Error(spec_.source + ": unknown key '" + key + "' for kind " + spec_.kind +
                  " (known: " + known + ")");
    }
}

// ---------------------------------------------------------------------------------------------
// Splits, metrics, inputs, labels

SplitSources SplitSources::read(Fields& f, bool must_exist) {
  SplitSources s;
  s.path = f.path("path", must_exist);
  for (const char* split : {"train", "validation", "test"}) {
    const std::string p = f.path(split, must_exist);
    if (!p.empty()) s.paths[split] = p;
  }
  if (!s.path.empty() && !s.paths.empty())
    f.fail("path", "and per-split paths (train, validation, test) exclude each other: give one set "
                   "to split by hash, or the splits");
  if (s.path.empty() && s.paths.empty())
    f.fail("path", "is missing: give path (one set, split 80/10/10 by a stable hash) or train, "
                   "validation and test");
  const std::vector<double> pct = f.numbers("split_percent", {80, 10, 10}, 3, 0, 100);
  if (std::fabs(pct[0] + pct[1] + pct[2] - 100) > 1e-9 || pct[0] != std::floor(pct[0]) ||
      pct[1] != std::floor(pct[1]))
    f.fail("split_percent", "must be three whole percentages (train, validation, test) adding to 100");
  s.train_percent = static_cast<int>(pct[0]);
  s.validation_percent = static_cast<int>(pct[1]);
  return s;
}

SplitSources SplitSources::of(const nlohmann::json& fields) {
  SplitSources s;
  s.path = fields.value("path", std::string());
  for (const char* split : {"train", "validation", "test"})
    if (fields.contains(split)) s.paths[split] = fields[split].get<std::string>();
  const std::vector<int> pct = fields.value("split_percent", std::vector<int>{80, 10, 10});
  s.train_percent = pct.at(0);
  s.validation_percent = pct.at(1);
  return s;
}

const std::string& SplitSources::source_for(const std::string& split, const std::string& spec_name) const {
  check_split_name(split);
  if (hashed()) return path;
  auto it = paths.find(split);
  EF_CHECK(it != paths.end(), "data set ", spec_name, " has no ", split, " split (give '", split,
           "' in the data spec, or one 'path' to split by hash)");
  return it->second;
}

bool SplitSources::keeps(const std::string& key, const std::string& split) const {
  return !hashed() || hash_split_of(key, train_percent, validation_percent) == split;
}

}  // namespace data

std::string Dataset::metric() const {
  return resolve_metric(metric_setting(), modality(), has_labels(),
                        static_cast<int64_t>(class_names().size()));
}

std::string resolve_metric(const std::string& asked, const std::string& modality, bool labelled,
                           int64_t num_classes) {
  if (asked != "auto") {
    EF_CHECK(labelled || asked == "agreement", "metric '", asked,
             "' needs labels; this data set has none (use metric = \"agreement\")");
    return asked;
  }
  if (!labelled) return "agreement";
  if (modality == "text") return num_classes == 2 ? "f1" : "accuracy";
  return "top1";
}

namespace data {

const ValueInfo& pick_model_input(const Graph& model, const std::string& asked,
                                  const std::string& spec_name) {
  const ValueInfo* found = nullptr;
  std::string names;
  int count = 0;
  for (const ValueInfo& v : model.inputs()) {
    if (model.has_initializer(v.name)) continue;
    names += (names.empty() ? "" : ", ") + v.name;
    ++count;
    if (asked.empty() ? found == nullptr : v.name == asked) found = &v;
  }
  EF_CHECK(found != nullptr, "data set ", spec_name, ": model '", model.name(), "' has no input '",
           asked, "' (its inputs: ", names, ")");
  EF_CHECK(!asked.empty() || count == 1, "data set ", spec_name, ": model '", model.name(),
           "' has ", count, " inputs (", names, "); name the one to feed with input = \"...\"");
  return *found;
}

int64_t LabelMap::index_of(const std::string& label, const std::string& where) const {
  if (named) {
    auto it = std::find(classes.begin(), classes.end(), label);
    EF_CHECK(it != classes.end(), where, ": label '", label, "' is not a known class");
    return it - classes.begin();
  }
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(label.c_str(), &end, 10);
  EF_CHECK(!label.empty() && end != nullptr && *end == '\0' && errno == 0 && v >= 0 && v < (1LL << 31),
           where, ": label '", label, "' is not a class index (a whole number from 0)");
  EF_CHECK(classes.empty() || v < static_cast<long long>(classes.size()), where, ": label ", v,
           " is beyond the ", classes.size(), " classes");
  return v;
}

LabelMap make_label_map(const std::vector<std::string>& seen, const std::vector<std::string>& classes,
                        const std::string& spec_name) {
  LabelMap m;
  bool all_ints = !seen.empty();
  for (const std::string& s : seen) {
    char* end = nullptr;
    std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0') all_ints = false;
  }
  if (!classes.empty()) {
    m.classes = classes;
    m.named = !all_ints;
    return m;
  }
  if (all_ints) return m;
  m.named = true;
  m.classes = seen;
  std::sort(m.classes.begin(), m.classes.end());
  m.classes.erase(std::unique(m.classes.begin(), m.classes.end()), m.classes.end());
  (void)spec_name;
  return m;
}

}  // namespace data
}  // namespace edgeforge
