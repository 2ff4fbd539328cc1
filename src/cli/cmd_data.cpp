// `edgeforge data SPEC`: checks a data spec and prints what it found.
#include <cstdio>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/dataset.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"

namespace edgeforge::cli {
namespace {

std::string shape_text(const at::Tensor& t) {
  std::ostringstream out;
  out << t.scalar_type() << " [";
  for (int64_t d = 0; d < t.dim(); ++d) out << (d ? "," : "") << t.size(d);
  out << "]";
  return out.str();
}

}  // namespace

nlohmann::json data_summary(const Dataset& data) {
  nlohmann::json j = {{"name", data.spec().name()},
                      {"kind", data.spec().kind},
                      {"modality", data.modality()},
                      {"metric", data.metric()},
                      {"labelled", data.has_labels()}};
  const std::vector<std::string> classes = data.class_names();
  j["classes"] = classes;
  j["splits"] = nlohmann::json::object();
  std::string sample_split;
  for (const char* split : {"train", "validation", "test"}) {
    try {
      const int64_t n = data.split_size(split);
      j["splits"][split] = n;
      if (n > 0 && (sample_split.empty() || std::string(split) == "test")) sample_split = split;
    } catch (const Error& e) {
      const std::string what = e.what();
      // A split the spec does not give is reported, not fatal; a broken file is.
      if (what.find(std::string("has no ") + split + " split") == std::string::npos) throw;
      j["splits"][split] = nullptr;
    }
  }
  EF_CHECK(!sample_split.empty(), "data set ", data.spec().name(), " has no samples in any split");
  const TaskData one = data.load(sample_split, 1);
  j["sample"] = {{"split", sample_split}};
  std::map<std::string, at::Tensor> features =
      one.fetch ? one.fetch(at::zeros({1}, at::kLong)) : one.features;
  for (const auto& [name, t] : features) {
    at::Tensor row = one.fetch ? t : t.slice(0, 0, 1);
    j["sample"]["inputs"][name] = shape_text(row);
  }
  if (one.labels.defined()) {
    const int64_t label = one.labels[0].item<int64_t>();
    j["sample"]["label"] = label;
    if (label >= 0 && label < static_cast<int64_t>(classes.size()))
      j["sample"]["class"] = classes[static_cast<size_t>(label)];
  }
  j["details"] = data.describe();
  const std::string stored = data.spec().to_metadata();
  j["spec"] = stored[0] == '{' ? nlohmann::json::parse(stored) : nlohmann::json(stored);
  for (const char* embedded : {"tokenizer_json", "tokenizer_spm"})
    if (j["spec"].is_object() && j["spec"].contains(embedded)) j["spec"].erase(embedded);
  return j;
}

Action add_data(CLI::App& app) {
  std::string kinds;
  for (const DataKind* k : data_kinds()) kinds += "\n  " + k->name + ": " + k->summary;
  CLI::App* cmd = app.add_subcommand(
      "data",
      "Check a data set and print what it found: classes, samples per split, one sample's\n"
      "tensors and the preprocessing (or the first tokens). The same SPEC goes to --data of\n"
      "eval, optimize, partition, bench, and to [model.data] of a study file.\n"
      "SPEC is a built-in name (fashion-mnist, spam), a shorthand (imagefolder:DIR,\n"
      "jsonl:FILE, csv:FILE, npy:DIR, npz:FILE) or a data spec .toml; see docs/your-model.md.\n"
      "Kinds:" + kinds);
  struct Args {
    std::string spec, model;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("spec", args->spec, "the data set")->required();
  cmd->add_option("--model", args->model,
                  "bind it to this model (crop size, sequence length, input names, tokenizer\n"
                  "beside it) as every other command does");
  cmd->add_flag("--json", args->json, "print as JSON on stdout");
  return [args]() {
    const DataSpec declared = parse_data_spec(args->spec);
    Graph model = args->model.empty() ? Graph("(no model)") : load_onnx(args->model);
    attach_data_spec(model, declared, args->model);
    const std::unique_ptr<Dataset> data = open_dataset(model);
    const nlohmann::json j = data_summary(*data);
    const std::vector<std::string> classes = j["classes"];
    const std::string sample_split = j["sample"]["split"];
    if (args->json) {
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    std::printf("data set   %s\nkind       %s (%s)\nmetric     %s\n", j["name"].get<std::string>().c_str(),
                j["kind"].get<std::string>().c_str(), j["modality"].get<std::string>().c_str(),
                metric_label(j["metric"].get<std::string>()).c_str());
    if (classes.empty()) {
      std::printf("classes    %s\n", data->has_labels() ? "(integer labels)" : "none (unlabelled: agreement with the original model)");
    } else {
      std::string shown;
      for (size_t i = 0; i < classes.size() && i < 10; ++i) shown += (i ? ", " : "") + classes[i];
      if (classes.size() > 10) shown += ", ...";
      std::printf("classes    %zu: %s\n", classes.size(), shown.c_str());
    }
    for (const char* split : {"train", "validation", "test"}) {
      const nlohmann::json& n = j["splits"][split];
      std::printf("%-10s %s\n", split, n.is_null() ? "(not given)" : (std::to_string(n.get<int64_t>()) + " samples").c_str());
    }
    std::printf("sample     first of %s:", sample_split.c_str());
    for (const auto& [name, shape] : j["sample"]["inputs"].items())
      std::printf(" %s %s", name.c_str(), shape.get<std::string>().c_str());
    if (j["sample"].contains("label")) {
      std::printf("  label %lld", j["sample"]["label"].get<long long>());
      if (j["sample"].contains("class")) std::printf(" (%s)", j["sample"]["class"].get<std::string>().c_str());
    }
    std::printf("\n");
    for (const auto& [key, v] : j["details"].items())
      std::printf("%-10s %s\n", key.c_str(), v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
    return 0;
  };
}

}  // namespace edgeforge::cli
