// edgeforge/study_plan.h: a study as a plan of jobs, for machines that share a folder
// (docs/scale-out.md).
//
// `plan_study` writes a study's jobs and their dependencies into a folder: each model's own
// (trained or bound) model, then the strategy pipelines that start from it, auto-partition's
// placements, the accuracy cells and the latency cells (one job per model and first tier, its
// cells measured side by side as a local study measures them). Each job runs on its own
// (`run_plan_job`, from any machine that sees the folder, in any order that respects the
// dependencies, any number of times) and writes only its own result file, atomically; nothing
// else writes there. `merge_plan` is the only writer of the study database: it gathers the
// finished jobs' cells into DIR/study.sqlite, which the summary and the report read as a local
// study's.
//
//   plan_study(default_study(true), {.preset = "quick"}, "out/cluster");  // the plan
//   for (int64_t k = 0; k < plan_jobs("out/cluster"); ++k)                 // jobs, in order
//     run_plan_job("out/cluster", k);
//   merge_plan("out/cluster");                                             // study.sqlite
//
// The folder holds plan.json (format "edgeforge-study-plan/1"), results/job-K.json (a job's
// cells), results/job-K.error (why a job could not run), running/ (a marker per attempt under
// way), models/ and logs/; `submit_slurm` adds slurm/ (the batch scripts, their logs and the
// submissions).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgeforge/study.h"

namespace edgeforge {

inline constexpr const char* kStudyPlanFormat = "edgeforge-study-plan/1";
inline constexpr const char* kStudyJobFormat = "edgeforge-study-job/1";

// Where the plan's study comes from, so that every job reads the same study: a study file (its
// text is kept in the plan and read again by each job) or a built-in one; and the command line's
// overrides.
struct PlanSource {
  std::string file;    // a study .toml file; "" for a built-in study
  std::string preset;  // a built-in study (study_presets()); "" with `quick`: the default study
  bool quick = false;
  std::string mode;    // --mode, "" for the study's
  int jobs = 0;        // --jobs, 0 for the study's
  // Threads of the accuracy and latency jobs and of the model jobs; 0: as a local study on
  // this machine would use (all cores; all cores over the model jobs run at once).
  int threads = 0, model_threads = 0;
};

// The study a source describes (as `edgeforge study` reads it).
StudyConfig plan_source_study(const PlanSource& source);

struct PlanJob {
  int64_t index = 0;
  std::string kind;   // "model", "placement", "accuracy" or "latency"
  std::string model;  // the study's model
  std::string what;   // the pipeline ("identity": the model itself), the strategy, or the tier
  std::string stage;  // the stage it runs in
  std::vector<int64_t> after;  // the jobs whose results it reads
  int threads = 1;    // threads it runs with
  bool exclusive = false;  // measures latency: alone on its machine
  std::string name() const;  // "model resnet/sptq", "latency resnet from mobile"
};

struct PlanStage {
  std::string name;             // "models-0" (the models themselves), "models-1", ...,
                                // "placement", "accuracy", "latency"
  std::vector<int64_t> jobs;    // in order; a job's position here is its array index
  std::vector<std::string> after;  // stages whose jobs its jobs read
  bool exclusive = false;
  int threads = 1;              // the most any of its jobs uses
};

struct StudyPlan {
  std::string id;  // a hash of the study's settings, the source and the edgeforge build
  std::string study, created_utc;
  std::string version, build, commit;  // the edgeforge that planned it (build_id(); commit: for people)
  nlohmann::json source, settings;
  int threads = 1, model_threads = 1;
  std::vector<PlanJob> jobs;
  std::vector<PlanStage> stages;
  const PlanStage& stage(const std::string& name) const;  // Error for an unknown one
};

// Writes the plan of `config` (described by `source`) into `dir`. A folder that already holds
// the same plan is left as it is (and said so); one holding another plan, another study's
// database or another edgeforge build's plan is an Error naming it.
StudyPlan plan_study(const StudyConfig& config, const PlanSource& source, const std::string& dir);

// A plan document (plan.json's text), every field checked; Error naming `what` and the field.
StudyPlan parse_plan(const std::string& text, const std::string& what);

// A job's files in a plan's folder: results/job-K.json (ext ".json"), results/job-K.error.
std::string plan_result_path(const std::string& dir, int64_t job, const std::string& ext);

// Reads dir/plan.json and checks it was made by this edgeforge build; Error otherwise (one line,
// naming the folder and what differs).
StudyPlan read_plan(const std::string& dir);
int64_t plan_jobs(const std::string& dir);

// The job a command names: `index` given, else $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX;
// with `stage`, the index is the job's position in that stage (a stage's array index), else the
// plan's job index. Error naming the source of an index that is missing or out of range.
int64_t plan_job_index(const StudyPlan& plan, std::optional<int64_t> index, const std::string& stage);

struct JobOutcome {
  bool already_done = false;
  int64_t cells = 0, failed = 0;
  std::string first_failure;  // "accuracy resnet/prune: ..." when a cell failed
  double seconds = 0;
};

// Runs job `index` of the plan in `dir`: the cells of the jobs it follows are read from their
// results, its own are written to results/job-K.json as one file, replaced atomically. A job
// whose result says done is not run again. A job that cannot run (a result it needs is
// missing, the folder cannot be written) writes results/job-K.error with its one-line reason
// and throws. A cell that fails (a strategy that does not apply) is a result like any other.
JobOutcome run_plan_job(const std::string& dir, int64_t index, const StudyRunOptions& options = {});

struct MergeOutcome {
  int64_t jobs = 0, merged_jobs = 0, cells = 0, failed_cells = 0;
  std::vector<int64_t> missing;  // jobs with no result yet
  std::string database;
};

// Gathers every finished job's cells into dir/study.sqlite (written whole beside it, then
// renamed over it, so a reader never sees it half written). Merges of one folder wait for each
// other (an advisory lock on dir/merge.lock). Error for a result of another plan.
MergeOutcome merge_plan(const std::string& dir);

// What each job of a plan is doing: from its result, its error file, its markers, and, when the
// plan was submitted to Slurm, squeue and (when Slurm keeps accounting) sacct.
struct JobState {
  int64_t index = 0;
  std::string name, stage;
  // "done", "failed" (a result with failed cells, or an error file), "running", "pending",
  // "interrupted" (started, no result, not running), "not run"
  std::string state;
  std::string detail;  // the failure's reason, the pending reason, where it runs
  std::string slurm_job;  // "123_4" when submitted
};
std::vector<JobState> plan_status(const std::string& dir);

struct SlurmOptions {
  std::string partition, time, account;
  std::vector<std::string> sbatch_args;  // passed to every sbatch as they are
  bool retry = false;    // resubmit only the jobs that did not finish
  bool dry_run = false;  // print the sbatch commands, submit nothing
  std::string program;   // the edgeforge the jobs run; "" = this executable
};
struct SubmittedStage {
  std::string stage, job_id;  // Slurm's array job id ("" in a dry run)
  std::vector<int64_t> jobs;
  std::vector<std::string> command;  // the sbatch command line
};
// Submits the plan's jobs to Slurm, one job array per stage (`sbatch --array`, a stage after the
// stages it reads with --dependency=afterok, latency and placement stages --exclusive), and
// records the submission in dir/slurm/submissions.json. Error when sbatch is missing or
// refuses, when the plan was submitted and is still queued, or (with retry) when jobs are still
// queued or running.
std::vector<SubmittedStage> submit_slurm(const std::string& dir, const SlurmOptions& options);

}  // namespace edgeforge
