// Fuzz target: the TOML readers of settings a user writes, and the files of a planned study that
// machines share. The first byte picks the reader: 0xff a plan (parse_plan), 0xfe a job's result
// (parse_job_result), else by its value mod 3 a topology (parse_topology), a study file
// (parse_study) or a data spec (data_spec_from_toml_text); the rest is the file's text. Seeds:
// fuzz/corpus/settings.
#include "edgeforge/dataset.h"
#include "edgeforge/study.h"
#include "edgeforge/study_plan.h"
#include "edgeforge/tiers.h"
#include "fuzz_util.h"
#include "../src/study/runner.h"

using namespace edgeforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string text = fuzz::bytes_of(data + 1, size - 1);
  fuzz::refused_or_ok([&] {
    if (data[0] == 0xff) return (void)parse_plan(text, "fuzz-plan.json");
    if (data[0] == 0xfe) return (void)study::parse_job_result(text, "fuzz-job.json");
    switch (data[0] % 3) {
      case 0: (void)parse_topology(text, "fuzz-topology.toml"); break;
      case 1: (void)parse_study(text, "/tmp/fuzz-study.toml"); break;
      default: (void)data_spec_from_toml_text(text, "fuzz-data.toml", "/tmp"); break;
    }
  });
  return 0;
}
