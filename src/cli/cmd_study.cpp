// edgeforge study, recommend and report: run the strategy x deployment grid, choose for a budget,
// and write the report (edgeforge/study.h, edgeforge/report.h).
#include <cstdio>
#include <map>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/report.h"
#include "edgeforge/study.h"
#include "edgeforge/study_plan.h"
#include "edgeforge/tier_modes.h"
#include "edgeforge/zoo.h"

namespace fs = std::filesystem;

namespace edgeforge::cli {
namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// `study --check`: the study file's grid, each model file read and bound to its data set (one
// sample loaded) as the study will, without training, measuring or writing anything.
void check_study(const StudyConfig& c) {
  std::printf("study      %s%s\n", c.name.c_str(), c.source.empty() ? " (built in)" : (" (" + c.source + ")").c_str());
  for (const StudyModel& m : c.models) {
    if (m.file.empty()) {
      std::printf("model      %s: zoo teacher on %s, trained when the study runs\n", m.name.c_str(),
                  zoo_model(m.name).dataset.c_str());
      continue;
    }
    Graph g = load_onnx(m.file);
    if (m.data) attach_data_spec(g, *m.data, m.file);
    std::unique_ptr<Dataset> data;
    nlohmann::json d;
    try {
      data = open_dataset(g);
      d = data_summary(*data);
    } catch (const std::exception& e) {
      throw Error("[[model]] " + m.name + " (" + m.file + "): " + e.what());
    }
    std::string splits;
    for (const char* split : {"train", "validation", "test"})
      splits += std::string(splits.empty() ? "" : ", ") + split + " " +
                (d["splits"][split].is_null() ? std::string("not given") : std::to_string(d["splits"][split].get<int64_t>()));
    std::string classes = d["classes"].empty() ? (data->has_labels() ? "integer labels" : "unlabelled")
                                              : std::to_string(d["classes"].size()) + " classes";
    std::printf("model      %s: %s, data %s (%s, %s; %s), %s\n", m.name.c_str(), m.file.c_str(),
                d["name"].get<std::string>().c_str(), d["modality"].get<std::string>().c_str(),
                classes.c_str(), splits.c_str(), metric_label(d["metric"].get<std::string>()).c_str());
  }
  std::printf("strategies %s\n", joined(c.strategies).c_str());
  if (!c.extras.empty()) std::printf("extras     %s\n", joined(c.extras).c_str());
  std::printf("deploy     %s (topology: %s)\n", joined(c.deployments).c_str(),
              c.topology_file.empty() ? "built in" : c.topology_file.c_str());
  std::string sweep;
  for (double v : c.sweep_mbps) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    sweep += (sweep.empty() ? "" : ",") + std::string(buf);
  }
  std::printf("latency    %s, %lld inputs x %d runs (first dropped)%s\n", c.mode.c_str(),
              static_cast<long long>(c.inputs), c.runs,
              !tier_mode(c.mode).real ? (", sweep " + sweep + " Mbit/s").c_str() : "");
  std::printf("ok: nothing run (--check)\n");
}

void print_status(const std::string& dir, bool json_out) {
  const std::vector<JobState> states = plan_status(dir);
  if (json_out) {
    nlohmann::json j = nlohmann::json::array();
    for (const JobState& s : states)
      j.push_back({{"index", s.index}, {"name", s.name}, {"stage", s.stage}, {"state", s.state},
                   {"detail", s.detail}, {"slurm_job", s.slurm_job}});
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::map<std::string, std::map<std::string, int>> by_stage;
  std::vector<std::string> order;
  for (const JobState& s : states) {
    if (!by_stage.count(s.stage)) order.push_back(s.stage);
    ++by_stage[s.stage][s.state];
  }
  std::map<std::string, int> total;
  for (const std::string& stage : order) {
    std::string counts;
    for (const char* state : {"done", "running", "pending", "failed", "interrupted", "not run"})
      if (by_stage[stage].count(state)) {
        counts += (counts.empty() ? "" : ", ") + std::to_string(by_stage[stage][state]) + " " + state;
        total[state] += by_stage[stage][state];
      }
    std::printf("%-10s %s\n", stage.c_str(), counts.c_str());
  }
  for (const JobState& s : states)
    if (s.state != "done")
      std::printf("  job %lld %s: %s%s%s%s\n", static_cast<long long>(s.index), s.name.c_str(),
                  s.state.c_str(), s.detail.empty() ? "" : " (", s.detail.c_str(), s.detail.empty() ? "" : ")");
  std::printf("%zu jobs: %d done, %d running, %d pending, %d failed, %d interrupted, %d not run\n",
              states.size(), total["done"], total["running"], total["pending"], total["failed"],
              total["interrupted"], total["not run"]);
}

// `study plan`, `study job`, `study merge`, `study status` and `study submit`: a study as a plan
// of jobs over a shared folder (edgeforge/study_plan.h, docs/scale-out.md).
Action add_plan_commands(CLI::App& study) {
  struct Args {
    PlanSource source;
    std::string out, dir, stage, partition, time, account;
    std::vector<std::string> sbatch_args;
    int64_t index = -1;
    bool no_report = false, partial = false, json = false, slurm = false, retry = false, dry_run = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* plan = study.add_subcommand(
      "plan",
      "Write a study's jobs and their dependencies into a folder, to run them on many machines\n"
      "that share it (a Slurm cluster, a Kubernetes Indexed Job): each model itself, the\n"
      "strategy pipelines that start from it, auto-partition's placements, accuracy cells, and\n"
      "latency cells (a job per model and first tier). Runs nothing. docs/scale-out.md.");
  plan->add_option("study", a->source.file, "study .toml file (default: the built-in default study)");
  plan->add_option("--out", a->out, "the plan's folder, shared by the machines that run it")->required();
  plan->add_flag("--quick", a->source.quick, "the small built-in study");
  plan->add_option("--preset", a->source.preset, "a built-in study: default, quick, or paper-scale")
      ->check(CLI::IsMember(study_presets()));
  plan->add_option("--mode", a->source.mode, "how latency is measured: simulated, emulated or remote")
      ->check(CLI::IsMember(tier_mode_names()));
  plan->add_option("--threads", a->source.threads,
                   "threads of each accuracy and latency job (default: this machine's cores)")
      ->check(CLI::Range(1, 4096));
  plan->add_option("--model-threads", a->source.model_threads,
                   "threads of each model-making job (default: as a local study here: the cores\n"
                   "over the model jobs run at once)")
      ->check(CLI::Range(1, 4096));
  CLI::App* job = study.add_subcommand(
      "job",
      "Run one job of a plan and write its result into the plan's folder (results/job-K.json,\n"
      "replaced whole). A job already done is not run again; one whose inputs are not done yet\n"
      "is refused. The index is --index, else $SLURM_ARRAY_TASK_ID, else\n"
      "$JOB_COMPLETION_INDEX (Kubernetes); with --stage it counts within that stage.");
  job->add_option("dir", a->dir, "the plan's folder")->required();
  job->add_option("--index", a->index, "the job: its index in the plan (or in --stage)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  job->add_option("--stage", a->stage, "count the index within this stage (its array index)");
  CLI::App* merge = study.add_subcommand(
      "merge",
      "Gather a plan's finished jobs into DIR/study.sqlite (the only writer of it) and write the\n"
      "report. Names the jobs still missing and then exits 1, unless --partial.");
  merge->add_option("dir", a->dir, "the plan's folder")->required();
  merge->add_flag("--no-report", a->no_report, "skip the statistics and the report");
  merge->add_flag("--partial", a->partial, "exit 0 even when jobs are missing");
  CLI::App* status = study.add_subcommand(
      "status", "What each job of a plan is doing: done, failed (with its reason), running, pending,\n"
                "interrupted or not run, from the folder and, once submitted, squeue and sacct.");
  status->add_option("dir", a->dir, "the plan's folder")->required();
  status->add_flag("--json", a->json, "print every job as JSON");
  CLI::App* submit = study.add_subcommand(
      "submit",
      "Submit a plan's jobs to a batch scheduler: with --slurm, one job array per stage\n"
      "(sbatch --array; a stage waits for the stages it reads with --dependency=afterok;\n"
      "latency and placement stages --exclusive, so no two share a node). Prints the job ids.");
  submit->add_option("dir", a->dir, "the plan's folder")->required();
  submit->add_flag("--slurm", a->slurm, "submit with sbatch (the only scheduler for now)")->required();
  submit->add_option("--partition", a->partition, "sbatch --partition");
  submit->add_option("--time", a->time, "sbatch --time, each job's limit (e.g. 2:00:00)");
  submit->add_option("--account", a->account, "sbatch --account");
  submit->add_option("--sbatch-arg", a->sbatch_args, "another sbatch option, as given (repeatable)")
      ->allow_extra_args(false);
  submit->add_flag("--retry", a->retry, "resubmit only the jobs that did not finish (failed,\n"
                                        "interrupted, never run)");
  submit->add_flag("--dry-run", a->dry_run, "print the sbatch commands and submit nothing");
  return [a, plan, job, merge, status, submit]() {
    if (plan->parsed()) {
      const StudyConfig config = plan_source_study(a->source);
      const StudyPlan p = plan_study(config, a->source, a->out);
      std::printf("plan %s: study %s, %zu jobs in %zu stages\n", a->out.c_str(), p.study.c_str(),
                  p.jobs.size(), p.stages.size());
      for (const PlanStage& s : p.stages) {
        std::string after;
        for (const std::string& x : s.after) after += (after.empty() ? "" : ", ") + x;
        std::printf("  %-10s %3zu jobs, %d threads%s%s\n", s.name.c_str(), s.jobs.size(), s.threads,
                    s.exclusive ? ", exclusive" : "", after.empty() ? "" : (", after " + after).c_str());
      }
      std::printf("run: edgeforge study submit %s --slurm, or edgeforge study job %s --index K "
                  "for K in 0..%zu in order; then edgeforge study merge %s\n",
                  a->out.c_str(), a->out.c_str(), p.jobs.size() - 1, a->out.c_str());
      return 0;
    }
    if (job->parsed()) {
      const StudyPlan p = read_plan(a->dir);
      const int64_t k = plan_job_index(p, a->index >= 0 ? std::optional<int64_t>(a->index) : std::nullopt, a->stage);
      const std::string name = p.jobs[static_cast<size_t>(k)].name();
      const JobOutcome o = run_plan_job(a->dir, k);
      if (o.already_done)
        std::printf("job %lld (%s): already done\n", static_cast<long long>(k), name.c_str());
      else
        std::printf("job %lld (%s): %lld cells in %.1f s%s%s\n", static_cast<long long>(k), name.c_str(),
                    static_cast<long long>(o.cells), o.seconds, o.failed > 0 ? ", failed: " : "",
                    o.first_failure.c_str());
      return 0;
    }
    if (merge->parsed()) {
      const MergeOutcome m = merge_plan(a->dir);
      std::printf("merged %lld cells (%lld failed) of %lld of %lld jobs into %s\n",
                  static_cast<long long>(m.cells), static_cast<long long>(m.failed_cells),
                  static_cast<long long>(m.merged_jobs), static_cast<long long>(m.jobs), m.database.c_str());
      if (!m.missing.empty()) {
        const StudyPlan p = read_plan(a->dir);
        std::string names;
        for (size_t i = 0; i < m.missing.size(); ++i) {
          if (i == 10) {
            names += ", and " + std::to_string(m.missing.size() - 10) + " more";
            break;
          }
          names += (names.empty() ? "" : ", ") + std::to_string(m.missing[i]) + " (" +
                   p.jobs[static_cast<size_t>(m.missing[i])].name() + ")";
        }
        std::fprintf(stderr, "study merge: %zu jobs have no result yet: %s\n", m.missing.size(), names.c_str());
      }
      if (!a->no_report && m.cells > 0) {
        const std::string html = write_study_reports(summarize_study(a->dir), a->dir);
        std::printf("report: %s (also %s/report.md and %s/export/)\n", html.c_str(), a->dir.c_str(),
                    a->dir.c_str());
      }
      return m.missing.empty() || a->partial ? 0 : 1;
    }
    if (status->parsed()) {
      print_status(a->dir, a->json);
      return 0;
    }
    if (submit->parsed()) {
      SlurmOptions o;
      o.partition = a->partition;
      o.time = a->time;
      o.account = a->account;
      o.sbatch_args = a->sbatch_args;
      o.retry = a->retry;
      o.dry_run = a->dry_run;
      const std::vector<SubmittedStage> stages = submit_slurm(a->dir, o);
      for (const SubmittedStage& s : stages) {
        if (a->dry_run) {
          std::string cmd;
          for (const std::string& x : s.command) cmd += (cmd.empty() ? "" : " ") + x;
          std::printf("%s\n", cmd.c_str());
        } else {
          std::printf("%-10s %3zu jobs: Slurm job %s\n", s.stage.c_str(), s.jobs.size(), s.job_id.c_str());
        }
      }
      if (!a->dry_run)
        std::printf("edgeforge study status %s follows them; edgeforge study merge %s gathers them\n",
                    a->dir.c_str(), a->dir.c_str());
      return 0;
    }
    return 1;
  };
}

}  // namespace

Action add_study(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "study",
      "Run a study: every model x strategy x deployment, as the published study did, then its\n"
      "statistics and report. Without a file, the default study: the zoo teachers resnet,\n"
      "resnext, bert and roberta; identity, sptq, qat, prune, distill, distill+sptq, partition,\n"
      "sptq+partition, and edgeforge's extras dynamic, prune-structured, auto-partition; on\n"
      "mobile, edge, cloud and mobile-edge (partitions on mobile-edge); 100 inputs x 6 runs\n"
      "(first dropped); accuracy on the whole test split; both links swept over 1, 10, 50, 100,\n"
      "150, 200 Mbit/s. Latency is simulated (docs/deployment.md) unless --mode says emulated or\n"
      "remote (docs/agents.md; no sweep then). Results go to DIR/study.sqlite\n"
      "one cell at a time; running again resumes, skipping finished cells. docs/study.md gives\n"
      "the study file format and the database schema. For many machines (Slurm, Kubernetes):\n"
      "study plan, job, submit, status and merge (docs/scale-out.md).");
  struct Args {
    std::string file, out, preset;
    bool quick = false, retry_failed = false, no_report = false, check = false;
    int threads = 0, jobs = 0;
    std::string mode;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("study", args->file, "study .toml file (default: the built-in default study)");
  cmd->add_option("--out", args->out, "output folder (default: out/study, out/study-quick or out/study-PRESET)");
  cmd->add_flag("--quick", args->quick,
                "the small built-in study: resnet and bert with quick training, 20 inputs x 3 runs");
  cmd->add_option("--preset", args->preset,
                  "a built-in study: default, quick, or paper-scale (the study's four architectures\n"
                  "at their real sizes, untrained, latency only; about 40 minutes on 2 cores;\n"
                  "its models are built into the cache on first use; docs/study.md)")
      ->check(CLI::IsMember(study_presets()));
  cmd->add_option("--threads", args->threads, "threads for accuracy and latency (default: all cores)");
  cmd->add_option("--jobs", args->jobs, "model-making processes at once (default: all cores)");
  cmd->add_option("--mode", args->mode,
                  "how latency is measured: simulated, emulated (root) or remote (default: the\n"
                  "study file's mode, else simulated); a study folder keeps one mode")
      ->check(CLI::IsMember(tier_mode_names()));
  cmd->add_flag("--retry-failed", args->retry_failed, "run cells recorded as failed again");
  cmd->add_flag("--no-report", args->no_report, "skip the statistics and the report");
  cmd->add_flag("--check", args->check,
                "check the study file and print its grid: every model file is read and bound to\n"
                "its data set (one sample loaded); nothing is trained, measured or written");
  const Action planned = add_plan_commands(*cmd);
  return [args, planned, cmd]() {
    for (CLI::App* sub : cmd->get_subcommands())
      if (sub->parsed()) return planned();
    PlanSource source;  // the study as the command line names it, as `study plan` reads it
    source.file = args->file;
    source.preset = args->preset;
    source.quick = args->quick;
    source.mode = args->mode;
    source.jobs = args->jobs;
    const StudyConfig config = plan_source_study(source);
    if (args->check) {
      check_study(config);
      return 0;
    }
    {
      const std::string why = tier_mode(config.mode).unavailable();
      EF_CHECK(why.empty(), why);
    }
    const std::string out = !args->out.empty() ? args->out
                            : config.quick     ? "out/study-quick"
                            : !args->preset.empty() && args->preset != "default"
                                ? "out/study-" + args->preset
                                : "out/study";
    StudyRunOptions ro;
    ro.threads = args->threads;
    ro.retry_failed = args->retry_failed;
    run_study(config, out, ro);
    if (args->no_report) return 0;
    const std::string html = write_study_reports(summarize_study(out), out);
    std::printf("report: %s (also %s/report.md and %s/export/)\n", html.c_str(), out.c_str(),
                out.c_str());
    return 0;
  };
}

Action add_recommend(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "recommend",
      "Choose the best strategy and deployment per model from a finished study for a latency\n"
      "budget and an accuracy budget: the lowest warm median latency among the cells within\n"
      "both. When none is, the Pareto set (no cell both faster and more accurate) and the\n"
      "nearest miss. Latency figures are simulated unless the study says otherwise.");
  struct Args {
    std::string dir, deploy, model;
    double max_latency_ms = 0, max_drop = -1;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("study_dir", args->dir, "a study's output folder")->required();
  cmd->add_option("--max-latency-ms", args->max_latency_ms, "latency budget: warm median in ms");
  cmd->add_option("--max-accuracy-drop", args->max_drop,
                  "accuracy budget: the most the metric may drop below the model's own, in points");
  cmd->add_option("--deploy", args->deploy, "only this deployment (e.g. edge, mobile-edge)");
  cmd->add_option("--model", args->model, "only this model");
  cmd->add_flag("--json", args->json, "print as JSON on stdout");
  return [args]() {
    EF_CHECK(args->max_latency_ms >= 0, "--max-latency-ms ", args->max_latency_ms, " must be >= 0");
    EF_CHECK(args->max_latency_ms > 0 || args->max_drop >= 0,
             "recommend: give --max-latency-ms, --max-accuracy-drop or both");
    Budget b;
    b.max_latency_ms = args->max_latency_ms;
    b.max_accuracy_drop_pt = args->max_drop;
    b.deploy = args->deploy;
    b.model = args->model;
    const nlohmann::json r = recommend(summarize_study(args->dir), b);
    if (args->json) {
      std::printf("%s\n", r.dump(2).c_str());
      return 0;
    }
    const std::string mode = r.at("mode");
    auto describe = [&](const nlohmann::json& c) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "%s on %s: %.2f ms warm median (p90 %.2f, %s), %s %.4f (%+.2f pt)",
                    c.at("strategy").get<std::string>().c_str(), c.at("deploy").get<std::string>().c_str(),
                    c.at("latency_ms").get<double>(), c.at("latency_p90_ms").get<double>(), mode.c_str(),
                    c.at("metric").get<std::string>().c_str(), c.at("accuracy").get<double>(),
                    -c.at("accuracy_drop_pt").get<double>());
      return std::string(buf);
    };
    for (const auto& m : r.at("models")) {
      const std::string model = m.at("model");
      if (m.at("candidates") == 0) {
        std::printf("%s: no finished cells to choose from\n", model.c_str());
      } else if (m.at("met")) {
        std::printf("%s: %s\n", model.c_str(), describe(m.at("best")).c_str());
        std::printf("  (%d other cells are within budget; it is the fastest of them)\n",
                    m.at("also_within_budget").get<int>());
      } else {
        std::printf("%s: nothing meets both budgets. Nearest miss: %s", model.c_str(),
                    describe(m.at("nearest_miss")).c_str());
        const auto& n = m.at("nearest_miss");
        if (n.at("over_latency_ms").get<double>() > 0)
          std::printf("; %.2f ms over", n.at("over_latency_ms").get<double>());
        if (n.at("over_accuracy_drop_pt").get<double>() > 0)
          std::printf("; %.2f pt more drop", n.at("over_accuracy_drop_pt").get<double>());
        std::printf("\n  Pareto set (fastest first):\n");
        for (const auto& p : m.at("pareto")) std::printf("    %s\n", describe(p).c_str());
      }
    }
    return 0;
  };
}

Action add_report(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "report",
      "Write a study's report: one self-contained HTML file that opens offline (charts drawn by\n"
      "Vega, inlined) or Markdown, plus CSV and JSON exports in STUDY_DIR/export/ for other\n"
      "tools. docs/report.md describes what it shows.");
  struct Args {
    std::string dir, format = "html", out;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("study_dir", args->dir, "a study's output folder")->required();
  cmd->add_option("--format", args->format, "html or md")
      ->check(CLI::IsMember({"html", "md"}))
      ->capture_default_str();
  cmd->add_option("--out", args->out, "output file (default: STUDY_DIR/report.html or report.md)");
  return [args]() {
    const StudySummary summary = summarize_study(args->dir);
    const std::string out =
        !args->out.empty() ? args->out : args->dir + (args->format == "html" ? "/report.html" : "/report.md");
    write_file_atomic(out, args->format == "html" ? render_report_html(summary)
                                                  : render_report_markdown(summary));
    write_report_exports(summary, args->dir + "/export");
    std::printf("report: %s (exports in %s/export/)\n", out.c_str(), args->dir.c_str());
    return 0;
  };
}

}  // namespace edgeforge::cli
