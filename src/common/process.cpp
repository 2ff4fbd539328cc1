#include "edgeforge/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include "edgeforge/error.h"
#include "edgeforge/util.h"

extern char** environ;

namespace edgeforge {

namespace {

int decode_status(int raw) {
  if (WIFEXITED(raw)) return WEXITSTATUS(raw);
  if (WIFSIGNALED(raw)) return 128 + WTERMSIG(raw);
  return 255;
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& stdout_path,
                           const std::string& stderr_path,
                           const std::vector<std::string>& extra_env) {
  EF_CHECK(!argv.empty(), "cannot start a process without a program");
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
  for (const std::string& e : extra_env) {
    const std::string name = e.substr(0, e.find('=') + 1);
    for (std::string& have : env_storage)
      if (have.compare(0, name.size(), name) == 0) have.clear();
    env_storage.push_back(e);
  }
  std::vector<char*> envp;
  for (std::string& e : env_storage)
    if (!e.empty()) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const int flags = O_WRONLY | O_CREAT | O_TRUNC;  // no O_CLOEXEC: these are the child's own
  if (!stdout_path.empty())
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path.c_str(), flags, 0644);
  if (!stderr_path.empty())
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(), flags, 0644);
  const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    pid_ = -1;
    throw Error("cannot start '" + argv[0] + "': " + std::strerror(rc));
  }
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), status_(other.status_) {
  other.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    kill();
    pid_ = other.pid_;
    status_ = other.status_;
    other.pid_ = -1;
  }
  return *this;
}

ChildProcess::~ChildProcess() { kill(); }

std::optional<int> ChildProcess::poll() {
  if (status_ || pid_ < 0) return status_;
  int raw = 0;
  pid_t r = 0;
  do r = ::waitpid(pid_, &raw, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == pid_) status_ = decode_status(raw);
  else if (r < 0) status_ = 255;  // not our child any more (reaped elsewhere)
  return status_;
}

int ChildProcess::wait() {
  if (status_ || pid_ < 0) return status_.value_or(255);
  int raw = 0;
  pid_t r = 0;
  do r = ::waitpid(pid_, &raw, 0);
  while (r < 0 && errno == EINTR);
  status_ = r == pid_ ? decode_status(raw) : 255;
  return *status_;
}

void ChildProcess::kill() {
  if (pid_ < 0 || poll()) return;
  ::kill(pid_, SIGKILL);
  wait();
}

std::string self_executable() {
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::read_symlink("/proc/self/exe", ec);
  EF_CHECK(!ec, "cannot find the running executable (/proc/self/exe): ", ec.message());
  return p.string();
}

std::string find_program(const std::string& name, const std::vector<std::string>& dirs) {
  std::vector<std::string> search = dirs;
  if (search.empty()) {
    const char* path = std::getenv("PATH");
    std::stringstream in(path != nullptr ? path : "/usr/bin:/bin");
    for (std::string d; std::getline(in, d, ':');)
      if (!d.empty()) search.push_back(d);
  }
  for (const std::string& d : search) {
    const std::string p = d + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

ProgramOutput run_program(const std::vector<std::string>& argv) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string base = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/edgeforge-run-XXXXXX";
  std::string out = base, err = base;
  const int fo = ::mkstemp(out.data());
  EF_CHECK(fo >= 0, "cannot create a temporary file to run ", argv.at(0), ": ", std::strerror(errno));
  ::close(fo);
  const int fe = ::mkstemp(err.data());
  if (fe < 0) ::unlink(out.c_str());
  EF_CHECK(fe >= 0, "cannot create a temporary file to run ", argv.at(0), ": ", std::strerror(errno));
  ::close(fe);
  ProgramOutput o;
  try {
    ChildProcess p(argv, out, err);
    o.status = p.wait();
    o.out = read_file(out);
    o.err = read_file(err);
  } catch (...) {
    ::unlink(out.c_str());
    ::unlink(err.c_str());
    throw;
  }
  ::unlink(out.c_str());
  ::unlink(err.c_str());
  return o;
}

JobPool::JobPool(int slots, std::chrono::milliseconds poll_every)
    : slots_(std::max(1, slots)), poll_every_(poll_every) {}

void JobPool::add(Job job, bool urgent) {
  if (urgent) queue_.push_front(std::move(job));
  else queue_.push_back(std::move(job));
}

void JobPool::run(const std::function<void(const std::vector<const Job*>&)>& tick) {
  struct KillOnExit {  // an exception from a callback leaves no child behind
    std::vector<Running>& running;
    ~KillOnExit() { running.clear(); }
  } guard{running_};
  while (!queue_.empty() || !running_.empty()) {
    while (!queue_.empty() && running_.size() < static_cast<size_t>(slots_)) {
      Job job = std::move(queue_.front());
      queue_.pop_front();
      if (job.started) job.started();
      ChildProcess process(job.argv, job.stdout_path, job.stderr_path, job.env);
      running_.push_back({std::move(job), std::move(process), std::chrono::steady_clock::now()});
    }
    std::this_thread::sleep_for(poll_every_);
    for (size_t k = 0; k < running_.size();) {
      const std::optional<int> status = running_[k].process.poll();
      if (!status) {
        ++k;
        continue;
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                           running_[k].started).count();
      Job job = std::move(running_[k].job);
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(k));
      if (job.ended) job.ended(*status, seconds);
    }
    if (tick) {
      std::vector<const Job*> jobs;
      for (const Running& r : running_) jobs.push_back(&r.job);
      tick(jobs);
    }
  }
}

}  // namespace edgeforge
