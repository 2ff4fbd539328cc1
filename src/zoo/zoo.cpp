// The zoo's registry: one row per model, with its family's sizes. Tune the sizes here.
#include "edgeforge/zoo.h"

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
  TransformerConfig c;
  c.hidden = hidden;
  c.layers = layers;
  c.heads = heads;
  c.ffn = ffn;
  c.max_positions = 512;
  c.token_type_embeddings = true;
  c.layer_norm_epsilon = 1e-12f;
  return c;
}

// RoBERTa's layout differs from BERT's here only in having no token-type embeddings and
// LayerNorm epsilon 1e-5.
TransformerConfig roberta_config(int64_t hidden, int64_t layers, int64_t heads, int64_t ffn) {
  TransformerConfig c = bert_config(hidden, layers, heads, ffn);
  c.token_type_embeddings = false;
  c.layer_norm_epsilon = 1e-5f;
  return c;
}

// The whole zoo. Students have about half the depth and/or width of their teacher (the
// study's distillation pairs); the sizes are meant to let the whole zoo train on 2 cores in
// minutes, so measure training time after changing them.
const std::vector<ZooEntry>& zoo_table() {
  static const std::vector<ZooEntry> kTable = {
      {{"resnet", "resnet", "image", "fashion-mnist", "",
        "wide residual network, basic blocks, 4 stages x 2 blocks"},
       ResNetConfig{16, {16, 32, 64, 128}, {2, 2, 2, 2}}},
      {{"resnet-small", "resnet", "image", "fashion-mnist", "resnet",
        "wide residual network, basic blocks, 4 stages x 1 block (half resnet's depth)"},
       ResNetConfig{16, {16, 32, 64, 128}, {1, 1, 1, 1}}},
      // ResNeXt-101 64x4d, the study's model, has a bottleneck as wide as its output; so do
      // these, which puts their MACs near resnet's (a 2x expansion would cost 1.6x as much).
      {{"resnext", "resnext", "image", "fashion-mnist", "",
        "ResNeXt, bottleneck blocks of 8 groups x 4 channels, 4 stages x 2 blocks"},
       ResNeXtConfig{16, 8, 4, {32, 64, 128, 256}, {2, 2, 2, 2}}},
      {{"resnext-small", "resnext", "image", "fashion-mnist", "resnext",
        "ResNeXt, bottleneck blocks of 8 groups x 4 channels, 4 stages x 1 block (half "
        "resnext's depth)"},
       ResNeXtConfig{16, 8, 4, {32, 64, 128, 256}, {1, 1, 1, 1}}},
      {{"bert", "bert", "text", "spam", "",
        "BERT-style post-LN encoder, hidden 128, 4 layers, 4 heads"},
       bert_config(128, 4, 4, 512)},
      {{"bert-small", "bert", "text", "spam", "bert",
        "BERT-style post-LN encoder, hidden 128, 2 layers, 2 heads (half bert's depth)"},
       bert_config(128, 2, 2, 256)},
      {{"roberta", "roberta", "text", "spam", "",
        "RoBERTa-style encoder (no token types), hidden 128, 4 layers, 4 heads"},
       roberta_config(128, 4, 4, 512)},
      {{"roberta-small", "roberta", "text", "spam", "roberta",
        "RoBERTa-style tiny encoder, hidden 64, 2 layers, 2 heads (half roberta's depth and width)"},
       roberta_config(64, 2, 2, 256)},
  };
  return kTable;
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

const std::vector<ZooModelSpec>& zoo_models() {
  static const std::vector<ZooModelSpec> kSpecs = [] {
    std::vector<ZooModelSpec> specs;
    for (const ZooEntry& e : zoo_table()) specs.push_back(e.spec);
    return specs;
  }();
  return kSpecs;
}

const ZooModelSpec& zoo_model(const std::string& name) { return zoo_entry(name).spec; }

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
