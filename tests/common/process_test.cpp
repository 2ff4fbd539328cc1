// ChildProcess: exit status and signals, output redirection, environment, no orphans.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

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
