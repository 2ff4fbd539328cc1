#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/summary.h"

namespace edgeforge::cli {

namespace {
std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1000000000)
    std::snprintf(buf, sizeof buf, "%.2fG", n / 1e9);
  else if (n >= 1000000)
    std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1000)
    std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}
}  // namespace

// A metadata value as shown: a data spec without the tokenizer it embeds (often megabytes).
static std::string shown_metadata(const std::string& key, const std::string& value) {
  if (key != kMetaDataset || value.empty() || value[0] != '{') return value;
  nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return value;
  for (const char* embedded : {"tokenizer_json", "tokenizer_spm"})
    if (j.contains(embedded))
      j[embedded] = "(" + std::to_string(j[embedded].get<std::string>().size()) + " bytes)";
  return j.dump();
}

Action add_info(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "info", "Describe a model: inputs, outputs, op counts, parameters, size on disk,\n"
              "multiply-accumulates (MACs) per sample, and for a quantized (QDQ) model the\n"
              "share of MACs that run on int8 kernels and which quantized nodes stay float;\n"
              "the inference plan's oneDNN kernels and the nodes that fall back to the\n"
              "reference kernels, with the reason. The model is run once, on the reference\n"
              "kernels and in the inference session every command uses, on zeros (batch 1,\n"
              "other free sizes --seq-len): a model info accepts is one the commands run.");
  struct Args {
    std::string model;
    int64_t seq_len = 128;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("model", args->model, "model .onnx file")->required();
  cmd->add_option("--seq-len", args->seq_len, "sequence length assumed for MACs of text models")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print as JSON on stdout");
  return [args]() {
    Graph graph = load_onnx(args->model);
    const ModelSummary s = summarize(graph, args->seq_len);
    const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(args->model));
    if (args->json) {
      nlohmann::json j;
      j["model"] = args->model;
      j["graph"] = graph.name();
      for (const ValueInfo& v : s.inputs) j["inputs"].push_back({{"name", v.name}, {"type", format_shape(v)}});
      for (const ValueInfo& v : s.outputs) j["outputs"].push_back({{"name", v.name}, {"type", format_shape(v)}});
      j["op_counts"] = s.op_counts;
      j["nodes"] = graph.nodes().size();
      j["parameters"] = s.parameters;
      j["int8_parameters"] = s.int8_parameters;
      j["file_bytes"] = file_bytes;
      j["macs_per_sample"] = s.macs;
      j["macs_by_op"] = s.macs_by_op;
      j["int8_macs"] = s.int8_macs;
      j["dynamic_int8_macs"] = s.dynamic_int8_macs;
      j["int8_mac_share"] = s.macs > 0 ? double(s.int8_macs + s.dynamic_int8_macs) / double(s.macs) : 0.0;
      j["kept_float"] = s.kept_float;
      j["unsupported_ops"] = s.unsupported_ops;
      j["plan"] = {{"kernels", s.plan_kernels},
                   {"reference_nodes", s.reference_nodes},
                   {"fallback", s.plan_fallback},
                   {"cpu_isa", plan_cpu_isa()}};
      for (const auto& [k, v] : graph.metadata())
        if (k != kMetaTokenizer) j["metadata"][k] = shown_metadata(k, v);
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    std::printf("model       %s (graph '%s', %zu nodes)\n", args->model.c_str(),
                graph.name().c_str(), graph.nodes().size());
    for (const ValueInfo& v : s.inputs)
      std::printf("input       %s: %s\n", v.name.c_str(), format_shape(v).c_str());
    for (const ValueInfo& v : s.outputs)
      std::printf("output      %s: %s\n", v.name.c_str(), format_shape(v).c_str());
    std::printf("parameters  %s (%lld)", human_count(s.parameters).c_str(),
                static_cast<long long>(s.parameters));
    if (s.int8_parameters > 0)
      std::printf(" float, %s (%lld) int8", human_count(s.int8_parameters).c_str(),
                  static_cast<long long>(s.int8_parameters));
    std::printf("\n");
    std::printf("file size   %.2f MB\n", file_bytes / 1e6);
    std::printf("MACs        %s per sample", human_count(s.macs).c_str());
    for (const auto& [op, m] : s.macs_by_op) std::printf("  %s %s", op.c_str(), human_count(m).c_str());
    std::printf("\n");
    if (s.int8_macs + s.dynamic_int8_macs > 0 || !s.kept_float.empty()) {
      std::printf("int8 MACs   %s of %s (%.1f%%)", human_count(s.int8_macs + s.dynamic_int8_macs).c_str(),
                  human_count(s.macs).c_str(),
                  s.macs > 0 ? 100.0 * double(s.int8_macs + s.dynamic_int8_macs) / double(s.macs) : 0.0);
      if (s.dynamic_int8_macs > 0)
        std::printf(", %s with activation ranges taken at run time (dynamic)",
                    human_count(s.dynamic_int8_macs).c_str());
      std::printf("\n");
      for (const std::string& k : s.kept_float) std::printf("kept float  %s\n", k.c_str());
    }
    if (s.unsupported_ops.empty()) {
      int64_t kernels = 0;
      for (const auto& [op, c] : s.plan_kernels) kernels += c;
      std::printf("plan        %lld kernels", static_cast<long long>(kernels));
      for (const auto& [op, c] : s.plan_kernels) std::printf(" %s x%lld", op.c_str(), static_cast<long long>(c));
      std::printf("; %lld nodes on the reference kernels\n", static_cast<long long>(s.reference_nodes));
      for (const std::string& k : s.plan_fallback) std::printf("fell back   %s\n", k.c_str());
      std::printf("cpu         %s\n", plan_cpu_isa().c_str());
    }
    std::printf("ops        ");
    for (const auto& [op, c] : s.op_counts) std::printf(" %s x%lld", op.c_str(), static_cast<long long>(c));
    std::printf("\n");
    for (const auto& [k, v] : graph.metadata())
      if (k != kMetaTokenizer) std::printf("metadata    %s = %s\n", k.c_str(), shown_metadata(k, v).c_str());
    if (!s.unsupported_ops.empty()) {
      std::printf("unsupported");
      for (const std::string& u : s.unsupported_ops) std::printf(" %s", u.c_str());
      std::printf("\n");
    }
    return 0;
  };
}

}  // namespace edgeforge::cli
