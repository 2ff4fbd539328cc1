// Shared helpers of the data-set and tokenizer tests (with ../common/test_util.h: error_of,
// kFixtures).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "../common/test_util.h"
#include "edgeforge/error.h"

namespace edgeforge::test_util {

// Expects a one-line message that names `file` and contains `problem`.
inline void expect_error_names(const std::string& message, const std::string& file,
                               const std::string& problem) {
  EXPECT_NE(message.find(file), std::string::npos) << message;
  EXPECT_NE(message.find(problem), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

}  // namespace edgeforge::test_util
