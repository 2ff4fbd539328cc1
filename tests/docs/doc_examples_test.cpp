// The docs' examples, run as written: every `$ edgeforge ...` line of a code block in the docs
// below runs in a folder set up with the files the page talks about, must exit 0, and must print
// the output shown under it. A ```toml block whose first line is `# NAME.toml` is written to
// NAME before the commands after it run, so the study and data spec files the pages show are
// the ones tested.
//
// The zoo pages (strategies.md, deployment.md, report.md) list commands without `$` and without
// output: each of those lines runs too, on zoo models trained with --quick into out/zoo and a
// small study in out/study, and must exit 0; the few that take minutes or run a server are
// skipped by name below.
//
// Matching the shown output: the folder's path reads as /tmp/try (the pages' folder), every
// number matches any number (the fixtures' weights are random, times vary), a line "..." stands
// for any lines and "..." inside a line for any text. Every other shown line must appear in the
// output (stdout or stderr).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgeforge/util.h"
#include "../../src/data/npy.h"

namespace fs = std::filesystem;

namespace edgeforge {
namespace {

const std::string kRoot = fs::path(EDGEFORGE_TEST_DATA_DIR).parent_path().parent_path().string();
const std::string kDocs = kRoot + "/docs";
const std::string kData = std::string(EDGEFORGE_TEST_DATA_DIR);

struct Block {
  std::string info;  // what follows the opening ```
  int line = 0;      // of the opening fence, 1-based
  std::vector<std::string> lines;
};

std::vector<Block> code_blocks(const std::string& md) {
  std::ifstream in(md);
  EXPECT_TRUE(in.good()) << md;
  std::vector<Block> blocks;
  bool inside = false;
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.rfind("```", 0) == 0) {
      if (!inside) blocks.push_back({line.substr(3), n, {}});
      inside = !inside;
    } else if (inside) {
      blocks.back().lines.push_back(line);
    }
  }
  EXPECT_FALSE(inside) << md << ": an unclosed code block";
  return blocks;
}

// The file a ```toml block names on its first line ("# mine.toml"), or "".
std::string named_file(const Block& b) {
  if (b.info != "toml" || b.lines.empty()) return "";
  static const std::regex name(R"(#\s*([A-Za-z0-9_./-]+\.toml)\b.*)");
  std::smatch m;
  return std::regex_match(b.lines[0], m, name) ? m[1].str() : "";
}

std::string masked(std::string s) {
  static const std::regex number(R"([0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?)");
  s = std::regex_replace(s, number, "#");
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// Does `shown` (a masked line of the page, "..." for any text) match `actual` (masked)?
bool line_matches(const std::string& shown, const std::string& actual) {
  std::string pattern;
  size_t at = 0;
  for (size_t dots; (dots = shown.find("...", at)) != std::string::npos; at = dots + 3) {
    for (char c : shown.substr(at, dots - at)) pattern += std::string(std::isalnum(static_cast<unsigned char>(c)) ? "" : "\\") + c;
    pattern += ".*";
  }
  for (char c : shown.substr(at)) pattern += std::string(std::isalnum(static_cast<unsigned char>(c)) ? "" : "\\") + c;
  return std::regex_match(actual, std::regex(pattern));
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

class DocExamples : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("edgeforge-docs-" + std::to_string(::getpid()) + "-" +
                                          ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Runs every example of docs/`page` in the folder, in order.
  void run_page(const std::string& page) {
    const std::string md = kDocs + "/" + page;
    int commands = 0;
    for (const Block& b : code_blocks(md)) {
      const std::string where = page + ":" + std::to_string(b.line);
      if (const std::string name = named_file(b); !name.empty()) {
        std::ofstream out(dir_ + "/" + name);
        for (const std::string& l : b.lines) out << l << "\n";
        continue;
      }
      for (size_t i = 0; i < b.lines.size(); ++i) {
        if (b.lines[i].rfind("$ edgeforge ", 0) != 0) continue;
        std::string command = b.lines[i].substr(2);
        while (!command.empty() && command.back() == '\\' && i + 1 < b.lines.size())
          command = command.substr(0, command.size() - 1) + b.lines[++i];
        std::vector<std::string> shown;
        while (i + 1 < b.lines.size() && b.lines[i + 1].rfind("$ ", 0) != 0) shown.push_back(b.lines[++i]);
        run_example(where, command, shown);
        ++commands;
      }
    }
    EXPECT_GT(commands, 0) << page << " shows no `$ edgeforge` example";
  }

  void run_example(const std::string& where, const std::string& command, const std::vector<std::string>& shown) {
    SCOPED_TRACE(where + ": " + command);
    const std::string out = dir_ + "/.stdout", err = dir_ + "/.stderr";
    const std::string sh = "cd '" + dir_ + "' && env EDGEFORGE_CACHE_DIR='" + dir_ + "/.cache' '" +
                           EDGEFORGE_BINARY + "'" + command.substr(std::string("edgeforge").size()) + " >'" +
                           out + "' 2>'" + err + "' </dev/null";
    const int status = std::system(sh.c_str());
    const std::string stdout_text = read_file(out), stderr_text = read_file(err);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "exit status " << status << "\nstderr:\n" << stderr_text << "\nstdout:\n" << stdout_text;
    std::vector<std::string> actual;
    std::istringstream lines(replace_all(stdout_text + stderr_text, dir_, "/tmp/try"));
    for (std::string l; std::getline(lines, l);) actual.push_back(masked(l));
    // stdout and stderr are read from two files, so lines are matched wherever they are.
    for (const std::string& s : shown) {
      if (s == "..." || s.empty()) continue;
      const std::string want = masked(s);
      bool found = false;
      for (const std::string& a : actual) found = found || line_matches(want, a);
      if (!found) {
        ADD_FAILURE() << "the page shows\n  " << s << "\nwhich is not in the output:\n" << stdout_text << stderr_text;
        return;
      }
    }
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  void copy(const std::string& from, const std::string& to) {
    fs::create_directories(fs::path(path(to)).parent_path());
    fs::copy_file(from, path(to), fs::copy_options::overwrite_existing);
  }
  // Ten classes of five fixture images each (40 train, 2 validation, 8 test by the hash split).
  void image_folder(const std::string& name) {
    for (int c = 0; c < 10; ++c)
      for (const char* f : {"photo.jpg", "progressive.jpg", "rgba.png", "photo_444.jpg", "photo_422.jpg"})
        copy(kData + "/fixtures/images/" + f, name + "/class" + std::to_string(c) + "/" + std::to_string(c) + "_" + f);
  }
  // 60 short labelled reviews.
  void reviews(const std::string& name) {
    const char* words[] = {"the movie was great", "terrible plot and bad acting", "i loved it", "not worth the time"};
    std::ofstream out(path(name));
    for (int i = 0; i < 60; ++i)
      out << nlohmann::json{{"text", std::string(words[i % 4]) + " " + std::to_string(i)}, {"label", i % 2 ? "neg" : "pos"}}.dump()
          << "\n";
  }
  // BERT's uncased vocabulary cut to the test exports' 1000-row embedding.
  void vocab(const std::string& name) {
    std::ifstream in(kData + "/fixtures/tokenizers/bert_uncased/vocab.txt");
    std::ofstream out(path(name));
    int n = 0;
    for (std::string l; n < 1000 && std::getline(in, l); ++n) out << l << "\n";
  }
  // The same as a tokenizer.json.
  void tokenizer_json(const std::string& name) {
    nlohmann::json t = nlohmann::json::parse(read_file(kData + "/fixtures/tokenizers/bert_uncased/tokenizer.json"));
    nlohmann::json kept = nlohmann::json::object();
    for (const auto& [token, id] : t["model"]["vocab"].items())
      if (id.get<int64_t>() < 1000) kept[token] = id;
    t["model"]["vocab"] = kept;
    fs::create_directories(fs::path(path(name)).parent_path());
    std::ofstream(path(name)) << t.dump();
  }
  // A ```toml block of another page, by the name on its first line.
  void named_block(const std::string& page, const std::string& name) {
    for (const Block& b : code_blocks(kDocs + "/" + page))
      if (named_file(b) == name) {
        std::ofstream out(path(name));
        for (const std::string& l : b.lines) out << l << "\n";
        return;
      }
    FAIL() << page << " has no block named " << name;
  }

  std::string dir_;
};

// Listing lines of a page's code blocks: "edgeforge ..." without a prompt, comments cut, lines
// continued with a backslash joined.
std::vector<std::pair<std::string, std::string>> listed_commands(const std::string& page) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Block& b : code_blocks(kDocs + "/" + page)) {
    for (size_t i = 0; i < b.lines.size(); ++i) {
      if (b.lines[i].rfind("edgeforge ", 0) != 0) continue;
      std::string command = b.lines[i];
      while (!command.empty() && command.back() == '\\' && i + 1 < b.lines.size())
        command = command.substr(0, command.size() - 1) + b.lines[++i];
      const size_t comment = command.find("  #");
      if (comment != std::string::npos) command = command.substr(0, comment);
      while (!command.empty() && command.back() == ' ') command.pop_back();
      out.emplace_back(page + ":" + std::to_string(b.line), command);
    }
  }
  return out;
}

TEST_F(DocExamples, ZooListings) {
  for (const char* m : {"resnet", "bert"}) {
    SCOPED_TRACE(m);
    run_example("setup", std::string("edgeforge train --model ") + m + " --quick --out out/zoo/" + m + ".onnx", {});
  }
  std::ofstream(path("small.toml")) << "quick = true\nmodels = [\"resnet\"]\nstrategies = [\"identity\"]\n"
                                       "extras = []\ndeployments = [\"mobile\"]\ninputs = 3\nruns = 2\n"
                                       "sweep_mbps = [10]\n";
  run_example("setup", "edgeforge study small.toml --out out/study --jobs 1", {});
  // Lines that take minutes or start a server; what they do is tested elsewhere.
  const std::vector<std::pair<std::string, std::string>> skipped = {
      {"edgeforge study --out out/study", "the default study: hours on 2 cores (tests/study runs small ones)"},
      {"distill+sptq", "minutes of distillation (tests/strategies runs it on small data)"},
      {"edgeforge agent ", "a server (tests/agent starts and stops them)"}};
  int ran = 0;
  for (const char* page : {"strategies.md", "deployment.md", "report.md"}) {
    for (const auto& [where, command] : listed_commands(page)) {
      bool skip = false;
      for (const auto& [needle, why] : skipped) skip = skip || command.find(needle) != std::string::npos;
      if (skip) continue;
      run_example(where, command, {});
      ++ran;
    }
  }
  EXPECT_GE(ran, 14);
}

TEST_F(DocExamples, YourModel) {
  copy(kData + "/exports/resnet18.op17.onnx", "resnet18.op17.onnx");
  copy(kData + "/exports/bert.op17.onnx", "bert.op17.onnx");
  image_folder("imgs10");
  reviews("reviews.jsonl");
  vocab("vocab.txt");
  run_page("your-model.md");
}

TEST_F(DocExamples, Data) {
  image_folder("images");
  reviews("reviews.jsonl");
  vocab("vocab.txt");
  fs::create_directories(path("arrays"));
  NpyArray x;
  x.dtype = "float32";
  x.shape = {20, 8};
  x.data.assign(20 * 8 * sizeof(float), '\0');
  write_npy(path("arrays/x.npy"), x);
  NpyArray labels;
  labels.dtype = "int64";
  labels.shape = {20};
  labels.data.assign(20 * sizeof(int64_t), '\0');
  for (int64_t i = 0; i < 20; ++i) reinterpret_cast<int64_t*>(labels.data.data())[i] = i % 4;
  write_npy(path("arrays/labels.npy"), labels);
  run_page("data.md");
}

TEST_F(DocExamples, Study) {
  copy(kData + "/exports/resnet18.op17.onnx", "models/mynet.onnx");
  copy(kData + "/exports/bert.op17.onnx", "models/mybert.onnx");
  tokenizer_json("models/tokenizer.json");
  image_folder("images");
  reviews("reviews.jsonl");
  named_block("deployment.md", "lab.toml");
  run_page("study.md");
}

}  // namespace
}  // namespace edgeforge
