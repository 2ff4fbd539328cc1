// edgeforge/process.h: child processes (another edgeforge run, an agent) with their output in
// files, waited for without blocking, and a pool that runs many of them side by side.
//
// Threads are no substitute here: LibTorch's intra-op thread count is process-wide, and a
// process that has used OpenMP cannot safely fork() and go on computing, so independent jobs
// (the zoo's models, one per core) run as fresh processes of the same executable.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace edgeforge {

class ChildProcess {
 public:
  // Starts argv[0] (a path, not searched in PATH) with `argv`; its stdout and stderr go to the
  // given files (created or truncated; "" keeps the parent's). Environment is inherited, plus
  // `extra_env` entries of the form NAME=VALUE. Throws Error naming the program on failure.
  ChildProcess(const std::vector<std::string>& argv, const std::string& stdout_path,
               const std::string& stderr_path, const std::vector<std::string>& extra_env = {});
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;  // kills what this one held
  ChildProcess(const ChildProcess&) = delete;
  // A child still running when its handle is dropped is killed and reaped, never left behind.
  ~ChildProcess();

  // Exit status once it has ended (128 + signal number if a signal ended it), else nullopt.
  std::optional<int> poll();
  int wait();  // blocks until it ends; the same status as poll()
  void kill();  // SIGKILL and reap; no-op once ended
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Absolute path of the running executable (/proc/self/exe).
std::string self_executable();

// The first of `dirs` that holds an executable `name` (the folders of $PATH when `dirs` is
// empty), as a path; "" when none does.
std::string find_program(const std::string& name, const std::vector<std::string>& dirs = {});

// A program run to its end: its exit status (as ChildProcess::wait) and what it wrote.
struct ProgramOutput {
  int status = 0;
  std::string out, err;
};
// Runs argv (argv[0] a path, as for ChildProcess) to its end, its stdout and stderr captured
// through temporary files (removed after).
ProgramOutput run_program(const std::vector<std::string>& argv);

// One job of a JobPool: a child process and what to do when it ends.
struct Job {
  std::string name;                           // for progress lines and errors: "train resnet"
  std::vector<std::string> argv;              // argv[0]: a path, as for ChildProcess
  std::string stdout_path, stderr_path;       // as for ChildProcess
  std::vector<std::string> env;               // NAME=VALUE added to the inherited environment
  std::function<void()> started;              // [optional] called as it starts
  // Called once it ended, with its exit status (as ChildProcess::poll) and its wall time. It
  // may add jobs to the pool. An exception it throws leaves JobPool::run, and the jobs still
  // running are killed.
  std::function<void(int status, double seconds)> ended;
};

// Child processes run side by side, at most `slots` at a time, in the order queued (`urgent`
// jobs ahead of the others). The jobs of `edgeforge zoo --train` (a model's training, then its
// evaluation) and of a study (teachers, then the pipelines that start from them) run here.
class JobPool {
 public:
  explicit JobPool(int slots, std::chrono::milliseconds poll_every = std::chrono::milliseconds(200));
  void add(Job job, bool urgent = false);
  // Runs until no job is queued or running. `tick` (optional) is called after every poll with
  // the jobs running, e.g. to show their progress.
  void run(const std::function<void(const std::vector<const Job*>& running)>& tick = {});
  size_t queued() const { return queue_.size(); }

 private:
  struct Running {
    Job job;
    ChildProcess process;
    std::chrono::steady_clock::time_point started;
  };
  int slots_;
  std::chrono::milliseconds poll_every_;
  std::deque<Job> queue_;
  std::vector<Running> running_;
};

}  // namespace edgeforge
