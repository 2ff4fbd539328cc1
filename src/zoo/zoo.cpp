// The zoo's registry: one row per model, with its family's sizes. Tune the sizes here.
#include "edgeforge/zoo.h"

#include <string>
#include <variant>

#include "edgeforge/error.h"

namespace edgeforge {

namespace {

using FamilyConfig = std::variant<ResNetConfig, ResNeXtConfig, TransformerConfig>;

struct ZooEntry {
  ZooModelSpec spec;
  FamilyConfig config;
};

TransformerConfig bert_config(int64_t hidden, int64_t layers, int64_t heads, int64_t ffn) {
  return transformer_config("bert", hidden, layers, heads, ffn);
}

TransformerConfig roberta_config(int64_t hidden, int64_t layers, int64_t heads, int64_t ffn) {
  return transformer_config("roberta", hidden, layers, heads, ffn);
}

// The whole zoo. Students have about half the depth and/or width of their teacher (the
// study's distillation pairs); the sizes are meant to let the whole zoo train on 2 cores in
// minutes, so measure training time after changing them. Descriptions get the sizes appended
// (config_summary), so they never disagree with the configs.
const std::vector<ZooEntry>& zoo_table() {
  static const std::vector<ZooEntry> kTable = {
      {{"resnet", "resnet", "image", "fashion-mnist", "", "wide residual network"},
       ResNetConfig{16, {16, 32, 64, 128}, {2, 2, 2, 2}}},
      {{"resnet-small", "resnet", "image", "fashion-mnist", "resnet",
        "wide residual network, half resnet's depth"},
       ResNetConfig{16, {16, 32, 64, 128}, {1, 1, 1, 1}}},
      // Bottlenecks as wide as the block output (ResNeXt-101 64x4d's ratio): half as wide
      // (ResNeXt-50 32x4d's) trains faster but reached only 91.0% after 4 epochs, this one
      // 91.5% after 3; the group count hardly changes training speed (measured 8, 4, 2, 1).
      {{"resnext", "resnext", "image", "fashion-mnist", "", "ResNeXt"},
       ResNeXtConfig{16, 8, 4, {32, 64, 128, 256}, {2, 2, 2, 2}}},
      {{"resnext-small", "resnext", "image", "fashion-mnist", "resnext",
        "ResNeXt, half resnext's depth and bottleneck width"},
       ResNeXtConfig{16, 8, 2, {32, 64, 128, 256}, {1, 1, 1, 1}}},
      // Feed-forward layers 2x the hidden size, not BERT's 4x: bert at FFN 512 trained at 64
      // samples/s on 2 cores, which alone would take a third of the zoo's budget.
      {{"bert", "bert", "text", "spam", "", "BERT-style post-LN encoder"},
       bert_config(128, 4, 4, 256)},
      {{"bert-small", "bert", "text", "spam", "bert",
        "BERT-style post-LN encoder, half bert's depth and heads"},
       bert_config(128, 2, 2, 128)},
      {{"roberta", "roberta", "text", "spam", "",
        "RoBERTa-style post-LN encoder without token types"},
       roberta_config(128, 4, 4, 256)},
      {{"roberta-small", "roberta", "text", "spam", "roberta",
        "RoBERTa-style tiny encoder, half roberta's depth and width"},
       roberta_config(64, 2, 2, 128)},
  };
  return kTable;
}

std::string joined(const std::vector<int64_t>& values) {
  std::string s;
  for (int64_t v : values) s += (s.empty() ? "" : "/") + std::to_string(v);
  return s;
}

std::string config_summary(const ResNetConfig& c) {
  return "basic blocks, stem " + std::to_string(c.stem_width) + ", widths " + joined(c.widths) +
         ", blocks " + joined(c.blocks);
}
std::string config_summary(const ResNeXtConfig& c) {
  return "bottleneck blocks of " + std::to_string(c.cardinality) + " groups, group width " +
         std::to_string(c.group_width) + " doubling per stage, stem " +
         std::to_string(c.stem_width) + ", widths " + joined(c.widths) + ", blocks " +
         joined(c.blocks);
}
std::string config_summary(const TransformerConfig& c) {
  return "hidden " + std::to_string(c.hidden) + ", " + std::to_string(c.layers) + " layers, " +
         std::to_string(c.heads) + " heads, ffn " + std::to_string(c.ffn);
}

const ZooEntry& zoo_entry(const std::string& name) {
  for (const ZooEntry& e : zoo_table())
    if (e.spec.name == name) return e;
  std::string valid;
  for (const ZooEntry& e : zoo_table()) valid += (valid.empty() ? "" : ", ") + e.spec.name;
  throw Error("unknown model '" + name + "'; valid models: " + valid);
}

int64_t dataset_default_classes(const std::string& dataset) {
  if (dataset == "fashion-mnist") return 10;
  if (dataset == "spam") return 2;
  EF_ASSERT(false, "zoo dataset without a class count: ", dataset);
  return 0;
}

// One overload per family, so the table's variant dispatches without an if chain.
Graph build_family(const ResNetConfig& c, const ZooBuildOptions& o) { return build_resnet(c, o); }
Graph build_family(const ResNeXtConfig& c, const ZooBuildOptions& o) { return build_resnext(c, o); }
Graph build_family(const TransformerConfig& c, const ZooBuildOptions& o) {
  return build_transformer(c, o);
}

}  // namespace

TransformerConfig transformer_config(const std::string& family, int64_t hidden, int64_t layers,
                                     int64_t heads, int64_t ffn) {
  EF_CHECK(family == "bert" || family == "roberta", "zoo: transformer family '", family,
           "' (expected bert or roberta)");
  TransformerConfig c;
  c.hidden = hidden;
  c.layers = layers;
  c.heads = heads;
  c.ffn = ffn;
  c.max_positions = 512;
  // RoBERTa's layout differs from BERT's here only in having no token-type embeddings and
  // LayerNorm epsilon 1e-5.
  c.token_type_embeddings = family == "bert";
  c.layer_norm_epsilon = family == "bert" ? 1e-12f : 1e-5f;
  return c;
}

const std::vector<ZooModelSpec>& zoo_models() {
  static const std::vector<ZooModelSpec> kSpecs = [] {
    std::vector<ZooModelSpec> specs;
    for (const ZooEntry& e : zoo_table()) {
      specs.push_back(e.spec);
      specs.back().description +=
          ": " + std::visit([](const auto& c) { return config_summary(c); }, e.config);
    }
    return specs;
  }();
  return kSpecs;
}

const ZooModelSpec& zoo_model(const std::string& name) {
  const ZooEntry& entry = zoo_entry(name);  // throws for an unknown name
  return zoo_models()[static_cast<size_t>(&entry - zoo_table().data())];
}

Graph build_zoo_model(const std::string& name, const ZooBuildOptions& opts) {
  const ZooEntry& entry = zoo_entry(name);
  ZooBuildOptions resolved = opts;
  if (resolved.num_classes == 0) resolved.num_classes = dataset_default_classes(entry.spec.dataset);
  Graph g = std::visit([&resolved](const auto& config) { return build_family(config, resolved); },
                       entry.config);
  g.set_name(entry.spec.name);
  g.metadata()[kMetaModel] = entry.spec.name;
  g.metadata()[kMetaDataset] = entry.spec.dataset;
  return g;
}

}  // namespace edgeforge
