#include <gtest/gtest.h>
#include "edgeforge/error.h"
#include "edgeforge/graph.h"

using namespace edgeforge;

TEST(Graph, ValidateRejectsUndefinedInput) {
  Graph g("g");
  g.add_input({"x", at::kFloat, {Dim::symbol("N"), Dim(4)}});
  g.add_node(Node("Relu", "relu", {"y"}, {"z"}));
  g.add_output({"z", at::kFloat, {}});
  EXPECT_THROW(g.validate(), Error);
}
