// Helpers the test folders share: the message of an expected error, and small untrained zoo
// models carrying the metadata deployments and agents need.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/graph.h"
#include "edgeforge/task.h"
#include "edgeforge/tokenizer.h"
#include "edgeforge/zoo.h"

namespace edgeforge::test_util {

inline const std::string kFixtures = std::string(EDGEFORGE_TEST_DATA_DIR) + "/fixtures";

// The message of the edgeforge::Error `f` throws; a test failure, and a marker no expectation
// matches, when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no edgeforge::Error thrown";
  return "<no edgeforge::Error thrown>";
}

// A float value with a fixed shape, for graphs built by hand.
inline ValueInfo float_value(const std::string& name, const std::vector<int64_t>& shape) {
  ValueInfo v;
  v.name = name;
  v.dtype = at::kFloat;
  v.has_shape = true;
  for (int64_t d : shape) v.shape.push_back(Dim(d));
  return v;
}

// Untrained resnet-small, labelled as trained on Fashion-MNIST.
inline Graph small_image_model() {
  Graph g = build_zoo_model("resnet-small", ZooBuildOptions{});
  g.metadata()[kMetaDataset] = kDatasetFashionMnist;
  return g;
}

// Untrained bert-small at 16 tokens per sample, with a 120-piece tokenizer trained on the
// fixture corpus embedded.
inline Graph small_text_model() {
  static const Tokenizer tok = [] {
    std::ifstream in(kFixtures + "/tokenizer-corpus.txt");
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    TokenizerOptions o;
    o.vocab_size = 120;
    return Tokenizer::train(lines, o);
  }();
  Graph g = build_zoo_model("bert-small", ZooBuildOptions{});
  g.metadata()[kMetaDataset] = kDatasetSpam;
  g.metadata()[kMetaPreprocess] = R"({"seq_len":16})";
  embed_tokenizer(g, tok);
  return g;
}

}  // namespace edgeforge::test_util
