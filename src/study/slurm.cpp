// A planned study on Slurm (edgeforge/study_plan.h): one job array per stage, submitted with
// sbatch and followed with squeue and sacct; and each job's state from its folder.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "edgeforge/error.h"
#include "edgeforge/process.h"
#include "edgeforge/study_plan.h"
#include "edgeforge/util.h"
#include "runner.h"
#include "store.h"

namespace fs = std::filesystem;

namespace edgeforge {
namespace {

using json = nlohmann::json;

// Runs a Slurm command (found on $PATH) to its end.
ProgramOutput run(std::vector<std::string> argv) {
  const std::string name = argv[0];
  argv[0] = find_program(name);
  EF_CHECK(!argv[0].empty(), name, " was not found on $PATH (Slurm's client commands are needed: "
           "Debian's slurm-client)");
  return run_program(argv);
}

std::string first_line(std::string s) {
  s = s.substr(0, s.find('\n'));
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string submissions_path(const std::string& dir) { return dir + "/slurm/submissions.json"; }

json read_submissions(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(submissions_path(dir), ec)) return json::array();
  const json j = json::parse(read_file(submissions_path(dir)), nullptr, false);
  EF_CHECK(!j.is_discarded() && j.is_array(), submissions_path(dir), ": not a list of submissions");
  return j;
}

// Slurm's array index list: "0-3,5,9-10".
std::string array_list(const std::vector<int64_t>& positions) {
  std::string out;
  for (size_t i = 0; i < positions.size();) {
    size_t j = i;
    while (j + 1 < positions.size() && positions[j + 1] == positions[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(positions[i]);
    if (j > i) out += "-" + std::to_string(positions[j]);
    i = j + 1;
  }
  return out;
}

// Where each job was last submitted: job index -> "ARRAYID_TASK".
std::map<int64_t, std::string> submitted_tasks(const json& submissions) {
  std::map<int64_t, std::string> out;
  for (const json& s : submissions) {
    if (!s.contains("job_id") || !s.contains("tasks")) continue;
    const std::string id = s["job_id"].get<std::string>();
    for (const auto& [pos, job] : s["tasks"].items()) out[job.get<int64_t>()] = id + "_" + pos;
  }
  return out;
}

struct QueueEntry {
  std::string state, reason, node;
};

// The submitted arrays' job ids, "41,42,43".
std::string array_ids(const json& submissions) {
  std::string ids;
  for (const json& s : submissions)
    if (s.contains("job_id")) ids += (ids.empty() ? "" : ",") + s["job_id"].get<std::string>();
  return ids;
}

// squeue's view of the submitted arrays: "ARRAYID_TASK" -> state (one line per task, -r).
std::map<std::string, QueueEntry> queue_of(const json& submissions) {
  std::map<std::string, QueueEntry> out;
  const std::string ids = array_ids(submissions);
  if (ids.empty() || find_program("squeue").empty()) return out;
  const ProgramOutput o = run({"squeue", "-h", "-r", "-j", ids, "-o", "%i|%T|%r|%N"});
  // squeue fails for job ids it no longer knows (all ended): nothing is queued then.
  if (o.status != 0) return out;
  std::stringstream lines(o.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::stringstream f(line);
    std::string id, state, reason, node;
    std::getline(f, id, '|');
    std::getline(f, state, '|');
    std::getline(f, reason, '|');
    std::getline(f, node, '|');
    if (!id.empty()) out[id] = {state, reason, node};
  }
  return out;
}

// sacct's final states of the submitted arrays' tasks, when Slurm keeps accounting ({} when it
// does not: "Slurm accounting storage is disabled").
std::map<std::string, std::string> accounting_of(const json& submissions) {
  std::map<std::string, std::string> out;
  const std::string ids = array_ids(submissions);
  if (ids.empty() || find_program("sacct").empty()) return out;
  const ProgramOutput o = run({"sacct", "-n", "-P", "-X", "-j", ids, "-o", "JobID,State,ExitCode"});
  if (o.status != 0) return out;
  std::stringstream lines(o.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::stringstream f(line);
    std::string id, state, code;
    std::getline(f, id, '|');
    std::getline(f, state, '|');
    std::getline(f, code, '|');
    if (!id.empty()) out[id] = state + (code.empty() || code == "0:0" ? "" : " (exit " + code + ")");
  }
  return out;
}

}  // namespace

std::vector<JobState> plan_status(const std::string& dir) {
  const StudyPlan plan = read_plan(dir);
  const json submissions = read_submissions(dir);
  const std::map<int64_t, std::string> tasks = submitted_tasks(submissions);
  const std::map<std::string, QueueEntry> queue = queue_of(submissions);
  std::map<std::string, std::string> accounting;
  bool accounting_read = false;
  // Attempts under way or interrupted: running/job-K.HOST.PID markers.
  std::map<int64_t, json> markers;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir + "/running", ec)) {
    const json m = json::parse(read_file(e.path().string()), nullptr, false);
    if (!m.is_discarded() && m.is_object() && m.contains("job") && m["job"].is_number_integer())
      markers[m["job"].get<int64_t>()] = m;
  }
  std::vector<JobState> out;
  for (const PlanJob& j : plan.jobs) {
    JobState s;
    s.index = j.index;
    s.name = j.name();
    s.stage = j.stage;
    const auto task = tasks.find(j.index);
    if (task != tasks.end()) s.slurm_job = task->second;
    const auto q = task != tasks.end() ? queue.find(task->second) : queue.end();
    const std::string result = plan_result_path(dir, j.index, ".json");
    const std::string error = plan_result_path(dir, j.index, ".error");
    if (q != queue.end() && (q->second.state == "RUNNING" || q->second.state == "COMPLETING")) {
      s.state = "running";
      s.detail = "on " + q->second.node;
    } else if (q != queue.end() && q->second.state == "PENDING") {
      s.state = "pending";
      s.detail = q->second.reason;
    } else if (fs::exists(result, ec)) {
      const json r = json::parse(read_file(result), nullptr, false);
      s.state = "done";
      if (r.is_discarded() || !r.contains("cells") || r.value("plan", "") != plan.id) {
        s.state = "failed";
        s.detail = "its result is unreadable or of another plan: " + result;
      } else {
        for (const json& c : r["cells"])
          if (c.value("status", "") != "done") {
            s.state = "failed";
            s.detail = c.value("kind", "") + " " + c.value("strategy", "") +
                       (c.value("deploy", "").empty() ? "" : "/" + c.value("deploy", "")) + ": " +
                       c.value("reason", "");
            break;
          }
        if (s.state == "done") s.detail = "on " + r.value("host", "?");
      }
    } else if (fs::exists(error, ec)) {
      s.state = "failed";
      s.detail = first_line(read_file(error));
    } else if (markers.count(j.index)) {
      const json& m = markers[j.index];
      s.state = "interrupted";
      s.detail = "started on " + m.value("host", "?") + " at " + m.value("started_utc", "?") +
                 " (pid " + std::to_string(m.value("pid", 0)) + "), ended without a result";
    } else {
      s.state = "not run";
    }
    if ((s.state == "interrupted" || s.state == "not run") && task != tasks.end()) {
      if (!accounting_read) {
        accounting = accounting_of(submissions);
        accounting_read = true;
      }
      const auto a = accounting.find(task->second);
      if (a != accounting.end()) {
        s.state = a->second.rfind("COMPLETED", 0) == 0 ? s.state : "failed";
        s.detail = "Slurm: " + a->second + (s.detail.empty() ? "" : "; " + s.detail);
      } else if (s.state == "not run") {
        s.state = "interrupted";
        s.detail = "submitted as " + task->second + ", no longer queued, and no result (cancelled, "
                   "or its dependencies failed; see " + dir + "/slurm/logs/)";
      }
    }
    out.push_back(s);
  }
  return out;
}

std::vector<SubmittedStage> submit_slurm(const std::string& dir, const SlurmOptions& o) {
  const StudyPlan plan = read_plan(dir);
  const std::string abs_dir = fs::absolute(dir).lexically_normal().string();
  EF_CHECK(o.dry_run || !find_program("sbatch").empty(),
           "sbatch was not found on $PATH (Slurm's client commands are needed: Debian's slurm-client)");
  const json submissions = read_submissions(dir);
  const std::vector<JobState> states = plan_status(dir);
  std::set<int64_t> chosen;
  std::vector<std::string> never;  // queued tasks whose dependencies failed
  int64_t queued = 0;
  for (const JobState& s : states) {
    if (s.state == "pending" && s.detail == "DependencyNeverSatisfied") {
      never.push_back(s.slurm_job);
      chosen.insert(s.index);
    } else if (s.state == "pending" || s.state == "running") {
      ++queued;
    } else if (s.state != "done") {
      chosen.insert(s.index);
    }
  }
  if (!submissions.empty() && !o.retry)
    throw Error(dir + ": was submitted already (" + std::to_string(queued) + " jobs queued or running); "
                "edgeforge study status shows them, and --retry resubmits the jobs that did not finish");
  EF_CHECK(queued == 0, dir, ": ", queued, " jobs are still queued or running; wait for them "
           "(edgeforge study status) or scancel them, then --retry");
  EF_CHECK(!chosen.empty(), dir, ": every job is done; edgeforge study merge gathers them");
  const std::string program = !o.program.empty() ? o.program : self_executable();
  const std::string slurm_dir = abs_dir + "/slurm";
  fs::create_directories(slurm_dir + "/logs");
  if (!never.empty() && !o.dry_run) {
    std::vector<std::string> argv = {"scancel"};
    argv.insert(argv.end(), never.begin(), never.end());
    run(argv);  // what it says is not needed: they are resubmitted below
  }
  std::vector<SubmittedStage> out;
  std::map<std::string, std::string> stage_job;  // stage -> array job id of this submission
  json record = submissions;
  for (const PlanStage& stage : plan.stages) {
    std::vector<int64_t> positions, jobs;
    json tasks = json::object();
    for (size_t p = 0; p < stage.jobs.size(); ++p)
      if (chosen.count(stage.jobs[p])) {
        positions.push_back(static_cast<int64_t>(p));
        jobs.push_back(stage.jobs[p]);
        tasks[std::to_string(p)] = stage.jobs[p];
      }
    if (positions.empty()) continue;
    const std::string script = slurm_dir + "/" + stage.name + ".sh";
    write_file_atomic(script,
                      "#!/bin/sh\n"
                      "# edgeforge study " + plan.study + ", stage " + stage.name + ": array index = "
                      "the job's position in the stage (plan.json)\n"
                      "exec '" + program + "' study job '" + abs_dir + "' --stage " + stage.name + "\n");
    fs::permissions(script, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
    std::vector<std::string> cmd = {"sbatch", "--parsable", "--job-name=ef-" + stage.name,
                                    "--array=" + array_list(positions),
                                    "--output=" + slurm_dir + "/logs/%x-%A_%a.out",
                                    "--cpus-per-task=" + std::to_string(stage.threads)};
    if (stage.exclusive) cmd.push_back("--exclusive");
    if (!o.partition.empty()) cmd.push_back("--partition=" + o.partition);
    if (!o.time.empty()) cmd.push_back("--time=" + o.time);
    if (!o.account.empty()) cmd.push_back("--account=" + o.account);
    std::string after;
    for (const std::string& s : stage.after)
      if (stage_job.count(s)) after += ":" + stage_job[s];
    if (!after.empty()) cmd.push_back("--dependency=afterok" + after);
    cmd.insert(cmd.end(), o.sbatch_args.begin(), o.sbatch_args.end());
    cmd.push_back(script);
    SubmittedStage s{stage.name, "", jobs, cmd};
    if (!o.dry_run) {
      const ProgramOutput r = run(cmd);
      EF_CHECK(r.status == 0, "sbatch refused stage ", stage.name, ": ",
               first_line(r.err.empty() ? r.out : r.err));
      s.job_id = first_line(r.out).substr(0, first_line(r.out).find(';'));
      EF_CHECK(!s.job_id.empty() && s.job_id.find_first_not_of("0123456789") == std::string::npos,
               "sbatch printed '", first_line(r.out), "', not a job id");
      stage_job[stage.name] = s.job_id;
      record.push_back({{"stage", stage.name}, {"job_id", s.job_id}, {"tasks", tasks},
                        {"submitted_utc", study::utc_now()}, {"command", cmd}});
      // Recorded as each stage goes, so a refusal half way leaves what was submitted known.
      write_file_atomic(submissions_path(dir), record.dump(1) + "\n");
    }
    if (o.dry_run) stage_job[stage.name] = "{" + stage.name + "}";  // the id sbatch would print
    out.push_back(s);
  }
  return out;
}

}  // namespace edgeforge
