// ChildProcess: exit status and signals, output redirection, environment, no orphans.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <thread>

#include "edgeforge/error.h"
#include "edgeforge/process.h"
#include "edgeforge/util.h"

namespace fs = std::filesystem;
using namespace edgeforge;

namespace {

class Process : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("edgeforge-process-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(Process, ExitStatusAndOutputFiles) {
  ChildProcess p({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, path("o"), path("e"));
  EXPECT_EQ(p.wait(), 3);
  EXPECT_EQ(p.poll(), std::optional<int>(3));  // stays known after the child is reaped
  EXPECT_EQ(read_file(path("o")), "out\n");
  EXPECT_EQ(read_file(path("e")), "err\n");
}

TEST_F(Process, SignalIsReportedAs128PlusItsNumber) {
  ChildProcess p({"/bin/sh", "-c", "kill -TERM $$"}, "", "");
  EXPECT_EQ(p.wait(), 128 + SIGTERM);
}

TEST_F(Process, PollDoesNotBlockWhileRunning) {
  ChildProcess p({"/bin/sleep", "30"}, "", "");
  EXPECT_FALSE(p.poll().has_value());
  p.kill();
  EXPECT_EQ(p.poll(), std::optional<int>(128 + SIGKILL));
}

TEST_F(Process, ExtraEnvironmentOverridesInherited) {
  ::setenv("EDGEFORGE_PROCESS_TEST", "parent", 1);
  ChildProcess p({"/bin/sh", "-c", "echo $EDGEFORGE_PROCESS_TEST"}, path("o"), "",
                 {"EDGEFORGE_PROCESS_TEST=child"});
  EXPECT_EQ(p.wait(), 0);
  EXPECT_EQ(read_file(path("o")), "child\n");
  ::unsetenv("EDGEFORGE_PROCESS_TEST");
}

TEST_F(Process, DroppedHandleKillsAndReapsTheChild) {
  pid_t pid = -1;
  {
    ChildProcess p({"/bin/sleep", "30"}, "", "");
    pid = p.pid();
    ASSERT_EQ(::kill(pid, 0), 0);
  }
  EXPECT_EQ(::kill(pid, 0), -1);  // gone, not a zombie: it was reaped
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(Process, MovedHandleOwnsTheChild) {
  ChildProcess a({"/bin/sh", "-c", "exit 7"}, "", "");
  ChildProcess b(std::move(a));
  EXPECT_EQ(b.wait(), 7);
}

TEST_F(Process, MissingProgramIsNamed) {
  try {
    ChildProcess p({path("no-such-program")}, "", "");
    FAIL() << "started a missing program";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-program"), std::string::npos) << e.what();
  }
}

TEST_F(Process, SelfExecutableIsThisTestBinary) {
  const std::string self = self_executable();
  EXPECT_TRUE(fs::exists(self));
  EXPECT_NE(self.find("edgeforge_tests"), std::string::npos) << self;
}

}  // namespace

// ---- JobPool ----

namespace {

Job shell_job(const std::string& name, const std::string& script, std::vector<std::string>* log) {
  Job j;
  j.name = name;
  j.argv = {"/bin/sh", "-c", script};
  j.started = [log, name] { log->push_back("start " + name); };
  j.ended = [log, name](int status, double) { log->push_back("end " + name + " " + std::to_string(status)); };
  return j;
}

}  // namespace

TEST_F(Process, JobPoolRunsAtMostItsSlotsAndUrgentJobsFirst) {
  std::vector<std::string> log;
  JobPool pool(1, std::chrono::milliseconds(10));
  pool.add(shell_job("a", "exit 0", &log));
  pool.add(shell_job("b", "exit 2", &log));
  pool.add(shell_job("c", "exit 0", &log), /*urgent=*/true);
  pool.run();
  // One slot: each job ends before the next starts; the urgent one went first.
  EXPECT_EQ(log, (std::vector<std::string>{"start c", "end c 0", "start a", "end a 0", "start b",
                                           "end b 2"}));
}

TEST_F(Process, JobPoolRunsJobsSideBySideAndTheirEndsQueueMore) {
  std::vector<std::string> log;
  JobPool pool(2, std::chrono::milliseconds(10));
  // Each of the two waits (up to 10 s) until the other has started: both exit 0 only if they
  // ran at once.
  auto waits_for = [&](const std::string& mine, const std::string& other) {
    return "touch " + path(mine) + "; for i in $(seq 1000); do [ -e " + path(other) +
           " ] && exit 0; sleep 0.01; done; exit 1";
  };
  pool.add(shell_job("a", waits_for("a", "b"), &log));
  Job second = shell_job("b", waits_for("b", "a"), &log);
  second.ended = [&](int status, double) {
    log.push_back("end b " + std::to_string(status));
    pool.add(shell_job("after b", "exit 0", &log));  // what starts from b's result
  };
  pool.add(second);
  size_t most_running = 0;
  pool.run([&](const std::vector<const Job*>& running) {
    most_running = std::max(most_running, running.size());
  });
  EXPECT_LE(most_running, 2u);
  EXPECT_NE(std::find(log.begin(), log.end(), "end a 0"), log.end());
  EXPECT_NE(std::find(log.begin(), log.end(), "end b 0"), log.end());
  EXPECT_EQ(log.back(), "end after b 0");
  EXPECT_EQ(log.size(), 6u);
  EXPECT_EQ(pool.queued(), 0u);
}

TEST_F(Process, JobPoolAnErrorInAnEndKillsTheJobsStillRunning) {
  std::vector<std::string> log;
  JobPool pool(2, std::chrono::milliseconds(10));
  pool.add(shell_job("long", "echo $$ > " + path("pid") + "; exec sleep 30", &log));
  Job failing = shell_job("fails", "while [ ! -s " + path("pid") + " ]; do sleep 0.01; done; exit 1", &log);
  failing.ended = [](int status, double) { throw Error("fails failed with " + std::to_string(status)); };
  pool.add(failing);
  EXPECT_THROW(pool.run(), Error);
  const pid_t pid = static_cast<pid_t>(std::stol(read_file(path("pid"))));
  // Killed and reaped by the pool: no such process any more.
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}
