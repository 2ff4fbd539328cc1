// Included first in every file of the sanitizer build (CMakeLists.txt, EDGEFORGE_SANITIZE).
//
// toml++ 3.3 asserts internal invariants that malformed input can break ('[[' and a newline in a
// table header, found by fuzz_settings). Release builds compile those asserts out (NDEBUG; and
// gcc, which builds them, has no __builtin_assume to turn them into assumptions), and the parser
// then reports the error. The sanitizer build does the same, so the fuzzer checks what ships,
// with ASan watching what the parser does next.
#pragma once
#define TOML_ASSERT(expr) ((void)0)
