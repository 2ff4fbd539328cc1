// Shared helpers of the data-set and tokenizer tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "edgeforge/error.h"

namespace edgeforge::test_util {

inline const std::string kFixtures = std::string(EDGEFORGE_TEST_DATA_DIR) + "/fixtures";

// The message of the edgeforge::Error `f` throws, or a marker that fails every expectation.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no edgeforge::Error thrown>";
}

// Expects a one-line message that names `file` and contains `problem`.
inline void expect_error_names(const std::string& message, const std::string& file,
                               const std::string& problem) {
  EXPECT_NE(message.find(file), std::string::npos) << message;
  EXPECT_NE(message.find(problem), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

}  // namespace edgeforge::test_util
