// The study runner's parts that a planned study (src/study/plan.cpp) shares with the local one
// (runner.cpp): how strategies map to models and deployments, the settings a study database
// keeps, and running one job of a plan against a CellSink.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgeforge/study.h"
#include "store.h"

namespace edgeforge::study {

// The strategy's model: the pipeline whose output it deploys ("identity" for the model itself).
std::string base_pipeline(const std::string& strategy);
// The deployments a strategy runs on: split ones for partition strategies, "auto" for
// auto-partition, single tiers for the rest.
std::vector<std::string> deployments_of(const StudyConfig& c, const std::string& strategy);
// The tier a deployment's requests start on ("mobile" for "mobile-edge").
std::string first_tier(const std::string& deploy);
// Where a pipeline starts: the output of its longest prefix the study also makes (distill+sptq
// runs sptq on distill's model, without training distill twice), unless the study gives it
// options of its own; else the model itself ("identity"). Returns {start, what is left to run}.
std::pair<std::string, std::string> pipeline_start(const StudyConfig& c, const std::string& pipeline);
// How many model jobs a local study runs at once on this machine (the study's `jobs`, at most
// its cores), and the threads each gets (the cores over them): a plan's default.
int model_job_slots(const StudyConfig& c);
int model_job_threads(const StudyConfig& c);
// The settings a study database records (and a resumed study must match).
nlohmann::json settings_json(const StudyConfig& c);

// One job of a planned study: making one model ("model": `what` is the pipeline, "identity"
// for the model itself), choosing auto-partition's placement ("placement": `what` is the
// strategy), scoring one strategy ("accuracy": the strategy), or measuring the latency cells of
// one model whose requests start on one tier ("latency": the tier; auto-partition's cell joins
// the job of the tier its placement starts on).
struct PlannedJob {
  std::string kind, model, what;
};

// Runs `job` of `config` in the plan folder `dir`: the cells it builds on are read from `cells`
// and the ones it finishes are put there. Model files it makes go to dir/models and are
// recorded relative to `dir`.
void run_planned_job(const StudyConfig& config, const std::string& dir, const PlannedJob& job,
                     CellSink& cells, const StudyRunOptions& options);

// The file a model cell names, a path relative to the study folder `dir` made absolute.
std::string resolve_model_path(const std::string& dir, const std::string& file);

// The cells of a planned study's job result (results/job-K.json's text, format
// "edgeforge-study-job/1"), every field checked; Error naming `what`.
std::vector<CellRecord> parse_job_result(const std::string& text, const std::string& what);

// This machine's name (gethostname), "" when it has none.
std::string host_name();

}  // namespace edgeforge::study
