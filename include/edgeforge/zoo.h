// edgeforge/zoo.h: the default model zoo, built in C++ as ONNX-shaped graphs.
//
// Eight untrained models in four families named after the study's (reference/study.md): the
// teachers resnet, resnext (Fashion-MNIST images) and bert, roberta (spam mail), and a student
// of about half the depth and/or width for each ("<teacher>-small"). Every model is a Graph of
// ONNX opset-17 ops with stable names at the study's cut points: "stage3.out" (after the third
// of four residual stages) and "embeddings.out" (right after the text embeddings).
//
//   ZooBuildOptions opts;
//   opts.seed = 1;
//   Graph g = build_zoo_model("resnet", opts);  // "input" [N, 1, 28, 28] -> "logits" [N, 10]
//
// Image models take "input" float [N, 1, 28, 28]. Text models take "input_ids" and
// "attention_mask" int64 [N, S] (1 for tokens, 0 for padding), plus "token_type_ids" int64
// [N, S] for the bert family; N and S are symbolic. All give "logits" float [N, num_classes].
// Each graph's metadata carries kMetaModel (the zoo name) and kMetaDataset.
//
// The sizes of every model are one table in src/zoo/zoo.cpp; tune them there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "edgeforge/graph.h"

namespace edgeforge {

struct ZooModelSpec {
  std::string name;         // "resnet", "bert-small", ...
  std::string family;       // "resnet" | "resnext" | "bert" | "roberta"
  std::string modality;     // "image" | "text"
  std::string dataset;      // "fashion-mnist" | "spam"
  std::string teacher;      // "" for a teacher, else the teacher's zoo name
  std::string description;  // one line for `edgeforge info` and reports, sizes included
};

struct ZooBuildOptions {
  uint64_t seed = 0;          // weight initialisation; the same seed gives identical weights
  int64_t vocab_size = 8000;  // text models: token ids are in [0, vocab_size)
  int64_t seq_len = 128;      // text models: longest sequence served; checked against the
                              // position embeddings (S itself stays symbolic in the graph)
  int64_t num_classes = 0;    // 0 = the dataset's: 10 for fashion-mnist, 2 for spam
};

// Every zoo model, teachers before their students, in a fixed order.
const std::vector<ZooModelSpec>& zoo_models();
// The model named `name`; throws Error "unknown model 'x'; valid models: resnet, ..." otherwise.
const ZooModelSpec& zoo_model(const std::string& name);
// Builds the untrained model `name`; throws Error for an unknown name or a bad option.
Graph build_zoo_model(const std::string& name, const ZooBuildOptions& opts = {});

// ---- families: one config struct each; the zoo's rows are in src/zoo/zoo.cpp ----

// Wide residual network of basic blocks (conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU after
// the add) after a conv3x3-BN-ReLU stem (whose stride, kStemStride in src/zoo/resnet.cpp, sets
// the resolution the stages run at); stage k has widths[k] channels and blocks[k] blocks, the
// first stage stride 1 and every later one stride 2; GlobalAveragePool, Flatten, Gemm. resnext
// shares the stem and the head.
// Real-size networks (the paper-scale study, edgeforge/study.h) take ImageNet's layout: a
// `image_size` input and torchvision's stem (conv7x7 stride 2, BN, ReLU, max pool 3x3 stride 2),
// and torchvision's default initialisation of the branch's last BN (gamma 1).
struct ImageLayout {
  int64_t image_size = 28;     // input height and width (one grey channel)
  bool imagenet_stem = false;  // false: the zoo's conv3x3 stride-2 stem
  bool zero_init_residual = true;  // the last BN of each branch starts at gamma 0
};

struct ResNetConfig {
  int64_t stem_width = 16;
  std::vector<int64_t> widths;  // output channels per stage
  std::vector<int64_t> blocks;  // blocks per stage
  ImageLayout layout = {};
};

// ResNeXt of bottleneck blocks (1x1 reduce, grouped 3x3 with `cardinality` groups, 1x1 expand,
// BN after each): stage k's bottleneck has cardinality * group_width * 2^k channels (k from 0).
struct ResNeXtConfig {
  int64_t stem_width = 16;
  int64_t cardinality = 8;
  int64_t group_width = 4;      // channels per group in the first stage, doubling per stage
  std::vector<int64_t> widths;  // output channels per stage
  std::vector<int64_t> blocks;  // blocks per stage
  ImageLayout layout = {};
};

// Post-LN transformer encoder classifier (BERT layout): embeddings, `layers` encoder layers,
// a tanh pooler on the first token, a linear classifier.
struct TransformerConfig {
  int64_t hidden = 128;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t ffn = 512;              // feed-forward inner width
  int64_t max_positions = 512;    // position-embedding rows; seq_len must not exceed it
  bool token_type_embeddings = true;  // bert: yes (input "token_type_ids"); roberta: no
  int64_t type_vocab_size = 2;
  float layer_norm_epsilon = 1e-12f;  // 1e-12 in BERT, 1e-5 in RoBERTa
  float dropout = 0.1f;
};

// A BERT ("bert": token types, LayerNorm epsilon 1e-12) or RoBERTa ("roberta": none, 1e-5)
// layout of the given sizes, 512 positions. Error for another family.
TransformerConfig transformer_config(const std::string& family, int64_t hidden, int64_t layers,
                                     int64_t heads, int64_t ffn);

// The family builders behind build_zoo_model, for experiments with other sizes. The graph's
// name and metadata are left to build_zoo_model; opts.num_classes 0 means 10 for the image
// families and 2 for the transformer. Throw Error for a bad option.
Graph build_resnet(const ResNetConfig& config, const ZooBuildOptions& opts);
Graph build_resnext(const ResNeXtConfig& config, const ZooBuildOptions& opts);
Graph build_transformer(const TransformerConfig& config, const ZooBuildOptions& opts);

}  // namespace edgeforge
