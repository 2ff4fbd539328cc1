// The built-in studies (edgeforge/study.h): the default and quick studies of the zoo, and the
// paper-scale study, the published study's four architectures at their real sizes.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "edgeforge/build_info.h"
#include "edgeforge/error.h"
#include "edgeforge/graph.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/study.h"
#include "edgeforge/train.h"
#include "edgeforge/util.h"
#include "edgeforge/zoo.h"

namespace fs = std::filesystem;

namespace edgeforge {
namespace {

// One real-size architecture of the paper-scale study.
struct RealModel {
  std::string name, family;
  std::function<Graph()> build;
  std::string describe;  // the sizes, for the key and the report
};

ImageLayout imagenet() { return ImageLayout{224, true, false}; }

// torchvision's wide_resnet*_2 is a bottleneck ResNet whose 3x3 convolutions are twice as wide
// (128, 256, 512, 1024 channels): a ResNeXt of one group of width 128.
RealModel wide_resnet(const std::string& name, std::vector<int64_t> blocks) {
  ResNeXtConfig c{64, 1, 128, {256, 512, 1024, 2048}, blocks, imagenet()};
  return {name, "resnext", [c] {
            ZooBuildOptions o;
            o.num_classes = 1000;
            return build_resnext(c, o);
          },
          "bottleneck ResNet, 3x3 width 128 doubling per stage, blocks " +
              std::to_string(blocks[0]) + "/" + std::to_string(blocks[1]) + "/" +
              std::to_string(blocks[2]) + "/" + std::to_string(blocks[3])};
}

RealModel resnext(const std::string& name, int64_t cardinality, int64_t group_width,
                  std::vector<int64_t> blocks) {
  ResNeXtConfig c{64, cardinality, group_width, {256, 512, 1024, 2048}, blocks, imagenet()};
  return {name, "resnext", [c] {
            ZooBuildOptions o;
            o.num_classes = 1000;
            return build_resnext(c, o);
          },
          "ResNeXt " + std::to_string(cardinality) + "x" + std::to_string(group_width) + "d, blocks " +
              std::to_string(blocks[0]) + "/" + std::to_string(blocks[1]) + "/" +
              std::to_string(blocks[2]) + "/" + std::to_string(blocks[3])};
}

RealModel transformer(const std::string& name, const std::string& family, int64_t hidden,
                      int64_t layers, int64_t heads, int64_t ffn, int64_t vocab) {
  const TransformerConfig c = transformer_config(family, hidden, layers, heads, ffn);
  return {name, family, [c, vocab] {
            ZooBuildOptions o;
            o.vocab_size = vocab;
            o.seq_len = 128;
            o.num_classes = 2;
            return build_transformer(c, o);
          },
          "hidden " + std::to_string(hidden) + ", " + std::to_string(layers) + " layers, " +
              std::to_string(heads) + " heads, ffn " + std::to_string(ffn) + ", vocabulary " +
              std::to_string(vocab)};
}

// Builds (once; then from the cache) a real-size model with untrained weights (seed 0) and the
// metadata its data set needs.
std::string real_model_file(const RealModel& m) {
  const std::string dir = cache_dir() + "/presets";
  fs::create_directories(dir);
  const std::string path =
      dir + "/" + m.name + "-" + hex64(fnv1a64(m.name + "|" + m.describe + "|" + version())) + ".onnx";
  if (fs::exists(path)) return path;
  std::fprintf(stderr, "paper-scale: building %s (%s), untrained\n", m.name.c_str(), m.describe.c_str());
  Graph g = m.build();
  g.set_name(m.name);
  g.metadata()[kMetaModel] = m.name;
  prepare_untrained(g, m.family);
  save_onnx(g, path + ".part");
  fs::rename(path + ".part", path);
  return path;
}

StudyConfig paper_scale_study() {
  StudyConfig c = default_study(false);
  c.name = "paper-scale";
  c.latency_only = true;
  // The study's pairs (docs/study.md): a teacher and the student distillation would train.
  const std::vector<std::pair<RealModel, RealModel>> pairs = {
      {wide_resnet("wrn101-2", {3, 4, 23, 3}), wide_resnet("wrn50-2", {3, 4, 6, 3})},
      {resnext("resnext101-64x4d", 64, 4, {3, 4, 23, 3}), resnext("resnext50-32x4d", 32, 4, {3, 4, 6, 3})},
      {transformer("bert-base", "bert", 768, 12, 12, 3072, 30522),
       transformer("bert-small", "bert", 512, 4, 8, 2048, 30522)},
      {transformer("roberta-base", "roberta", 768, 12, 12, 3072, 50265),
       transformer("roberta-tiny", "roberta", 312, 4, 12, 1200, 50265)},
  };
  c.models.clear();
  for (const auto& [teacher, student] : pairs) {
    StudyModel m;
    m.name = teacher.name;
    m.file = real_model_file(teacher);
    m.student_file = real_model_file(student);
    c.models.push_back(m);
  }
  // What needs no training data for latency: distill deploys the student architecture.
  c.strategies = {"identity", "sptq", "distill", "distill+sptq", "partition", "sptq+partition"};
  c.extras = {"dynamic", "auto-partition"};
  c.options.clear();
  // Scaled to finish within 45 minutes on 2 cores: 10 inputs x 4 runs (the study: 100 x 6),
  // sptq calibrated on 16 training samples (the zoo: 100). It took 13.5 minutes with the
  // models built (17.5 from nothing); more runs would buy more rounds, which the intervals and
  // the drift check resample, at about 3.4 minutes per run.
  c.inputs = 10;
  c.runs = 4;
  c.train_limit = 16;
  c.frame_size = 1024;  // 3 MB RGB frames: the study's 1-4 MB JPEGs
  c.note =
      "The published study's four architectures "
      "at their real sizes (Wide ResNet-101-2 and ResNeXt-101 64x4d at 224x224 with one grey "
      "input channel, BERT-base and RoBERTa-base at 128 tokens), distill deploying the study's "
      "student architectures (Wide ResNet-50-2, ResNeXt-50 32x4d, BERT-small 4x512, RoBERTa-tiny "
      "4x312); image requests carry 1024x1024 RGB frames (3 MB). Scaled to finish within 45 "
      "minutes on 2 cores: 10 inputs x 4 runs, the first dropped (the study: 100 x 6); sptq "
      "calibrated on 16 training samples.";
  return c;
}

}  // namespace

std::vector<std::string> study_presets() { return {"default", "quick", "paper-scale"}; }

StudyConfig preset_study(const std::string& name) {
  if (name == "default") return default_study(false);
  if (name == "quick") return default_study(true);
  if (name == "paper-scale") return paper_scale_study();
  std::string known;
  for (const std::string& p : study_presets()) known += (known.empty() ? "" : ", ") + p;
  throw Error("unknown study preset '" + name + "'; presets: " + known);
}

}  // namespace edgeforge
