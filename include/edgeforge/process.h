// edgeforge/process.h: child processes (another edgeforge run, an agent) with their output in
// files, waited for without blocking.
//
// Threads are no substitute here: LibTorch's intra-op thread count is process-wide, and a
// process that has used OpenMP cannot safely fork() and go on computing, so independent jobs
// (the zoo's models, one per core) run as fresh processes of the same executable.
#pragma once

#include <sys/types.h>

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

}  // namespace edgeforge
