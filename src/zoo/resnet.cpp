// The image families, resnet and resnext: one residual network skeleton (stem, four stages,
// pooled linear head) with basic or bottleneck blocks, as torchvision's resnet.py does it.
#include <ATen/ATen.h>

#include <functional>
#include <string>

#include "edgeforge/error.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/zoo.h"

namespace edgeforge {

namespace {

// Fashion-MNIST: one grey channel (28x28 in the zoo: ImageLayout), ten classes.
constexpr int64_t kImageChannels = 1;
constexpr int64_t kImageDefaultClasses = 10;
// The stem halves 28x28 to 14x14, as ImageNet ResNets' stems shrink their input: training at
// 14x14 was measured 13x faster on 2 cores (the 28x28 stage dominated), which is what lets the
// whole zoo train in minutes; stages then run at 14, 7, 4 and 2 pixels.
constexpr int64_t kStemStride = 2;

// Emits one block under the builder's "stage<k>.block<j>" scope and returns its output.
// `stage` counts from 0.
using BlockFn = std::function<std::string(GraphBuilder& b, const std::string& x, int64_t in_ch,
                                          int64_t out_ch, int64_t stride, size_t stage)>;

int64_t image_classes(const ZooBuildOptions& opts) {
  EF_CHECK(opts.num_classes == 0 || opts.num_classes >= 2, "zoo: num_classes ",
           opts.num_classes, " is not valid (expected 0 for the dataset's default, or >= 2)");
  return opts.num_classes == 0 ? kImageDefaultClasses : opts.num_classes;
}

// 1x1 conv + BN on the shortcut where the block changes the shape, else the identity.
std::string shortcut(GraphBuilder& b, const std::string& x, int64_t in_ch, int64_t out_ch,
                     int64_t stride) {
  if (stride == 1 && in_ch == out_ch) return x;
  auto s = b.scope("shortcut");
  return b.batch_norm("bn", b.conv("conv", x, in_ch, out_ch, 1, stride, 0), out_ch);
}

Graph build_residual_network(const char* family, int64_t stem_width,
                             const std::vector<int64_t>& widths,
                             const std::vector<int64_t>& blocks, const ImageLayout& layout,
                             const ZooBuildOptions& opts, const BlockFn& block) {
  EF_CHECK(layout.image_size >= 8 && layout.image_size <= 4096, family, ": image size ",
           layout.image_size, " (expected 8..4096)");
  EF_ASSERT(!widths.empty() && widths.size() == blocks.size(), family,
            ": widths and blocks must name the same stages");
  const int64_t num_classes = image_classes(opts);
  Graph g(family);
  GraphBuilder b(g, seeded_generator(opts.seed));
  const Dim batch = Dim::symbol("N");
  const int64_t size = layout.image_size;
  std::string x = b.input("input", at::kFloat, {batch, kImageChannels, size, size});
  {
    auto s = b.scope("stem");
    if (layout.imagenet_stem) {
      x = b.conv("conv", x, kImageChannels, stem_width, 7, 2, 3);
      x = b.relu("relu", b.batch_norm("bn", x, stem_width));
      x = b.op("MaxPool", "pool", {x})
              .set("kernel_shape", std::vector<int64_t>{3, 3})
              .set("strides", std::vector<int64_t>{2, 2})
              .set("pads", std::vector<int64_t>{1, 1, 1, 1})
              .outputs[0];
    } else {
      x = b.conv("conv", x, kImageChannels, stem_width, 3, kStemStride, 1);
      x = b.relu("relu", b.batch_norm("bn", x, stem_width));
    }
  }
  x = b.rename_output(x, "stem.out");
  int64_t in_ch = stem_width;
  for (size_t k = 0; k < widths.size(); ++k) {
    const std::string stage = "stage" + std::to_string(k + 1);
    {
      auto s = b.scope(stage);
      for (int64_t j = 0; j < blocks[k]; ++j) {
        auto sb = b.scope("block" + std::to_string(j + 1));
        // The first stage keeps the stem's resolution; each later one halves it once.
        const int64_t stride = (k > 0 && j == 0) ? 2 : 1;
        x = block(b, x, in_ch, widths[k], stride, k);
        in_ch = widths[k];
      }
    }
    x = b.rename_output(x, stage + ".out");
  }
  {
    auto s = b.scope("head");
    x = b.global_average_pool("pool", x);  // "head.pool.out", [N, C, 1, 1]
    x = b.flatten("flatten", x, 1);
    x = b.gemm("fc", x, in_ch, num_classes);
  }
  x = b.rename_output(x, "logits");
  b.output(x, at::kFloat, {batch, num_classes});
  return g;
}

void check_stages(const char* family, const std::vector<int64_t>& widths,
                  const std::vector<int64_t>& blocks) {
  EF_CHECK(!widths.empty() && widths.size() == blocks.size(), family, ": ", widths.size(),
           " stage widths and ", blocks.size(), " block counts (expected the same, >= 1)");
  for (size_t k = 0; k < widths.size(); ++k)
    EF_CHECK(widths[k] >= 1 && blocks[k] >= 1, family, ": stage ", k + 1, " has width ",
             widths[k], " and ", blocks[k], " blocks (expected both >= 1)");
}

}  // namespace

Graph build_resnet(const ResNetConfig& config, const ZooBuildOptions& opts) {
  check_stages("resnet", config.widths, config.blocks);
  EF_CHECK(config.stem_width >= 1, "resnet: stem width ", config.stem_width, " (expected >= 1)");
  // Basic block; the last BN of the branch starts at zero so every block starts as the
  // identity, which helps short training (torchvision's zero_init_residual).
  const bool zero_gamma = config.layout.zero_init_residual;
  auto basic = [zero_gamma](GraphBuilder& b, const std::string& x, int64_t in_ch, int64_t out_ch,
                            int64_t stride, size_t) {
    std::string y = b.conv("conv1", x, in_ch, out_ch, 3, stride, 1);
    y = b.relu("relu1", b.batch_norm("bn1", y, out_ch));
    y = b.conv("conv2", y, out_ch, out_ch, 3, 1, 1);
    y = b.batch_norm("bn2", y, out_ch, zero_gamma);
    const std::string skip = shortcut(b, x, in_ch, out_ch, stride);
    return b.relu("relu", b.add("add", y, skip));
  };
  return build_residual_network("resnet", config.stem_width, config.widths, config.blocks,
                                config.layout, opts, basic);
}

Graph build_resnext(const ResNeXtConfig& config, const ZooBuildOptions& opts) {
  check_stages("resnext", config.widths, config.blocks);
  EF_CHECK(config.stem_width >= 1 && config.cardinality >= 1 && config.group_width >= 1,
           "resnext: stem width ", config.stem_width, ", cardinality ", config.cardinality,
           ", group width ", config.group_width, " (expected all >= 1)");
  const int64_t cardinality = config.cardinality;
  const int64_t group_width = config.group_width;
  const bool zero_gamma = config.layout.zero_init_residual;
  auto bottleneck = [cardinality, group_width, zero_gamma](GraphBuilder& b, const std::string& x,
                                                           int64_t in_ch, int64_t out_ch,
                                                           int64_t stride, size_t stage) {
    const int64_t width = cardinality * (group_width << stage);
    std::string y = b.conv("conv1", x, in_ch, width, 1, 1, 0);
    y = b.relu("relu1", b.batch_norm("bn1", y, width));
    // The stride sits on the grouped 3x3, as in torchvision's ResNeXt (ResNet v1.5).
    y = b.conv("conv2", y, width, width, 3, stride, 1, cardinality);
    y = b.relu("relu2", b.batch_norm("bn2", y, width));
    y = b.conv("conv3", y, width, out_ch, 1, 1, 0);
    y = b.batch_norm("bn3", y, out_ch, zero_gamma);
    const std::string skip = shortcut(b, x, in_ch, out_ch, stride);
    return b.relu("relu", b.add("add", y, skip));
  };
  return build_residual_network("resnext", config.stem_width, config.widths, config.blocks,
                                config.layout, opts, bottleneck);
}

}  // namespace edgeforge
