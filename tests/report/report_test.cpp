// The study report (edgeforge/report.h) on a hand-made summary (summary-fixture.json: 2 models,
// 4 strategies with one extra, 3 deployments, qat failing for bert, sweeps of both links and the
// statistics): the findings carry the fixture's numbers and follow changes to it, the HTML is
// self-contained, escaped and marked simulated, malformed summaries name the field, the CSV
// exports have their headers and rows, and headless Chromium renders every chart without error
// or warning. The fixture is made up, not measured: latencies from a simple model of the default
// topology with seeded noise, and statistics computed from those samples the way the study
// runner computes them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>

#include "edgeforge/error.h"
#include "edgeforge/report.h"
#include "../common/test_util.h"

using namespace edgeforge;
using edgeforge::test_util::error_of;
using nlohmann::json;

namespace {

const std::string kFixture =
    std::string(EDGEFORGE_TEST_DATA_DIR) + "/../report/summary-fixture.json";

json fixture() {
  std::ifstream in(kFixture);
  EXPECT_TRUE(in.good()) << kFixture;
  return json::parse(in);
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

bool any_contains(const std::vector<std::string>& items, const std::string& needle) {
  return std::any_of(items.begin(), items.end(),
                     [&](const std::string& s) { return s.find(needle) != std::string::npos; });
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += s + "\n";
  return out;
}

// A fresh folder under the system's temporary one, removed at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              ("edgeforge-report-" + name + "-" + std::to_string(getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The message of the Error that `f` throws, or "" when it throws none.
// Every string value and object key equal to `from` becomes `to`.
void rename_everywhere(json& j, const std::string& from, const std::string& to) {
  if (j.is_string() && j.get<std::string>() == from) j = to;
  if (j.is_array())
    for (json& x : j) rename_everywhere(x, from, to);
  if (j.is_object()) {
    json out = json::object();
    for (auto it = j.begin(); it != j.end(); ++it) {
      json v = it.value();
      rename_everywhere(v, from, to);
      out[it.key() == from ? to : it.key()] = v;
    }
    j = out;
  }
}

json& cell(json& summary, const std::string& model, const std::string& strategy,
           const std::string& deploy) {
  for (json& c : summary["cells"])
    if (c["model"] == model && c["strategy"] == strategy && c["deploy"] == deploy) return c;
  throw std::runtime_error("no cell " + model + " " + strategy + " " + deploy);
}

// The chart specs the HTML inlines.
json chart_specs(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"edgeforge-charts\">";
  const size_t start = html.find(open);
  EXPECT_NE(start, std::string::npos);
  const size_t end = html.find("</script>", start);
  return json::parse(html.substr(start + open.size(), end - start - open.size()));
}

// ---- Headless Chromium ----

std::string find_chromium() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');)
    for (const char* name : {"chromium", "chromium-browser"}) {
      const std::string candidate = dir + "/" + name;
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  return "";
}

// The DOM of `html` after Chromium ran its scripts; fails the test when Chromium is missing.
std::string chromium_dom(const std::string& html, const TempDir& dir) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) {
    ADD_FAILURE() << "chromium not installed: run scripts/setup";
    return "";
  }
  const std::filesystem::path page = dir.path() / "report.html";
  std::ofstream(page, std::ios::binary) << html;
  const std::filesystem::path err = dir.path() / "chromium.err";
  const std::string command = "timeout 120 '" + chromium +
                              "' --headless --no-sandbox --disable-gpu --no-first-run "
                              "--virtual-time-budget=20000 --user-data-dir='" +
                              (dir.path() / "profile").string() + "' --dump-dom 'file://" +
                              page.string() + "' 2>'" + err.string() + "'";
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr) << command;
  if (pipe == nullptr) return "";
  std::string dom;
  char buf[65536];
  for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) dom.append(buf, n);
  const int status = pclose(pipe);
  EXPECT_EQ(status, 0) << command << "\n" << read_text(err);
  return dom;
}

std::string unescape_attribute(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    bool replaced = false;
    for (const auto& [entity, c] : std::map<std::string, char>{
             {"&amp;", '&'}, {"&quot;", '"'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&#39;", '\''}})
      if (s.compare(i, entity.size(), entity) == 0) {
        out += c;
        i += entity.size() - 1;
        replaced = true;
        break;
      }
    if (!replaced) out += s[i];
  }
  return out;
}

// The attributes of the first <body> tag in a serialised DOM.
std::map<std::string, std::string> body_attributes(const std::string& dom) {
  std::map<std::string, std::string> attrs;
  size_t i = dom.find("<body");
  if (i == std::string::npos) return attrs;
  i += 5;
  while (i < dom.size() && dom[i] != '>') {
    if (std::isspace(static_cast<unsigned char>(dom[i]))) {
      ++i;
      continue;
    }
    const size_t name_end = dom.find_first_of("= \t\n>", i);
    const std::string name = dom.substr(i, name_end - i);
    i = name_end;
    std::string value;
    if (i < dom.size() && dom[i] == '=') {
      const char quote = dom[i + 1];
      const size_t close = dom.find(quote, i + 2);
      value = unescape_attribute(dom.substr(i + 2, close - i - 2));
      i = close + 1;
    }
    attrs[name] = value;
  }
  return attrs;
}

}  // namespace

// ---- The summary ----

TEST(ReportSummary, ReadsTheFixture) {
  const StudySummary s = parse_study_summary(fixture());
  EXPECT_EQ(s.study.name, "default");
  EXPECT_EQ(s.study.mode, "simulated");
  ASSERT_EQ(s.models.size(), 2u);
  ASSERT_EQ(s.strategies.size(), 4u);
  EXPECT_TRUE(s.strategies[3].extra);
  ASSERT_EQ(s.deployments.size(), 3u);
  ASSERT_EQ(s.cells.size(), 24u);
  EXPECT_EQ(std::count_if(s.cells.begin(), s.cells.end(),
                          [](const SummaryCell& c) { return !c.done(); }),
            3);
  EXPECT_EQ(s.cells[0].warm_samples_ms.size(), 20u);
  EXPECT_DOUBLE_EQ(s.cells[0].warm_median_ms, 9.954);
  EXPECT_EQ(s.study.links.size(), 2u);
  EXPECT_EQ(s.study.links[1].name(), "edge-cloud");
}

TEST(ReportSummary, FormatsNumbers) {
  EXPECT_EQ(format_ms(0.48), "0.480");
  EXPECT_EQ(format_ms(6.966), "6.97");
  EXPECT_EQ(format_ms(13.491), "13.5");
  EXPECT_EQ(format_ms(1247.287), "1247");
  EXPECT_EQ(format_p(0.5034), "0.50");
  EXPECT_EQ(format_p(0.0029), "0.003");
  EXPECT_EQ(format_p(7.2e-12), "7.2e-12");
  EXPECT_EQ(format_p(std::nan("")), "n/a");
  EXPECT_EQ(mode_mark({"simulated", "simulated"}), "(simulated)");
  EXPECT_EQ(mode_mark({"simulated", "emulated"}), "(emulated, simulated)");
}

TEST(ReportSummary, MalformedSummariesNameTheField) {
  struct Case {
    std::function<void(json&)> mutate;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j["cells"][3]["latency"]["warm"].erase("median_ms"); },
       "study summary: cells[3].latency.warm.median_ms is missing"},
      {[](json& j) { j["cells"][0]["latency"]["warm"]["samples_ms"] = "fast"; },
       "study summary: cells[0].latency.warm.samples_ms must be an array, not a string"},
      {[](json& j) { j["cells"][1]["latency"]["warm"]["median_ci95_ms"] = {1.0}; },
       "study summary: cells[1].latency.warm.median_ci95_ms must be [lo, hi], not 1 numbers"},
      {[](json& j) { j["cells"][2]["model"] = "vgg"; },
       "study summary: cells[2].model 'vgg' is not one of models (resnet, bert)"},
      {[](json& j) { j["cells"][5]["deploy"] = j["cells"][4]["deploy"]; },
       "study summary: cells[5] repeats (resnet, sptq, edge) of cells[4]"},
      {[](json& j) { j["cells"][1]["sweep"][0]["link"] = "mobile-cloud"; },
       "study summary: cells[1].sweep[0].link 'mobile-cloud' is not one of study.topology.links"},
      {[](json& j) { j["format"] = "edgeforge.study-summary/2"; },
       "study summary: format is 'edgeforge.study-summary/2', expected "
       "'edgeforge.study-summary/1'"},
      {[](json& j) { j["study"]["environment"]["cpu"] = 7; },
       "study summary: study.environment.cpu must be a string, not a number"},
      {[](json& j) { j["study"]["topology"]["links"][0].erase("rtt_ms"); },
       "study summary: study.topology.links[0].rtt_ms is missing"},
      {[](json& j) { j["study"]["topology"]["tiers"][1]["speed"] = "fast"; },
       "study summary: study.topology.tiers[1].speed must be a number, not a string"},
      {[](json& j) { j["stats"]["latency_tests"][0]["pairs"][1]["p_holm"] = true; },
       "study summary: stats.latency_tests[0].pairs[1].p_holm must be a number, not a boolean"},
      {[](json& j) { j["stats"]["latency_tests"][0]["pairs"][1].erase("p"); },
       "study summary: stats.latency_tests[0].pairs[1].p is missing"},
      {[](json& j) { j["stats"]["wilcoxon"][0]["measure"] = "speed"; },
       "study summary: stats.wilcoxon[0].measure is 'speed', expected 'latency' or 'accuracy'"},
      {[](json& j) { j["stats"]["speedups"][0]["baseline_deploy"] = "phone"; },
       "study summary: stats.speedups[0].baseline_deploy 'phone' is not one of deployments "
       "(mobile, edge, cloud)"},
      {[](json& j) { j["stats"]["mcnemar"][0]["b"] = 1.5; },
       "study summary: stats.mcnemar[0].b must be an integer, not a number"},
      {[](json& j) { j["accuracy"][1].erase("value"); },
       "study summary: accuracy[1].value is missing"},
      {[](json& j) { j["pareto"][0]["points"][2]["on_front"] = nullptr; },
       "study summary: pareto[0].points[2].on_front is missing"},
      {[](json& j) { j.erase("stats"); }, "study summary: stats is missing"},
      {[](json& j) { j = json::array(); },
       "study summary: the document must be an object, not an array"},
  };
  for (const Case& c : cases) {
    json j = fixture();
    c.mutate(j);
    EXPECT_EQ(error_of([&] { parse_study_summary(j); }).substr(0, c.message.size()), c.message);
  }
}

// The summary document has one writer and one reader: what the study writes reads back to the
// same document, and a document without the optional fields (an older version's) still reads.
TEST(ReportSummary, WritesBackWhatItReads) {
  const json j = fixture();
  const StudySummary s = parse_study_summary(j);
  EXPECT_EQ(study_summary_json(s), j);
  EXPECT_EQ(study_summary_json(parse_study_summary(study_summary_json(s))).dump(), study_summary_json(s).dump());

  json old = j;
  for (json& c : old["cells"]) {
    c.erase("placement");
    if (c.contains("latency")) c["latency"].erase("breakdown_median_ms");
  }
  for (json& t : old["study"]["topology"]["tiers"]) t.erase("reference_ms");
  for (json& l : old["study"]["topology"]["links"]) {
    l.erase("jitter_ms");
    l.erase("loss");
  }
  for (json& w : old["stats"]["wilcoxon"]) {
    w.erase("measure");
    w.erase("pairs");
    w.erase("exact");
  }
  old["study"]["environment"] = json::object();
  const StudySummary o = parse_study_summary(old);
  EXPECT_EQ(o.cells.size(), s.cells.size());
  EXPECT_EQ(o.wilcoxon.at(0).measure, "accuracy");
  EXPECT_EQ(o.wilcoxon.at(0).pairs, -1);
  EXPECT_TRUE(o.study.environment.empty());
  EXPECT_EQ(study_summary_json(o)["study"]["environment"], json::object());
  EXPECT_EQ(study_findings(o), study_findings(s)) << "the findings read none of the removed fields";
}

TEST(ReportSummary, NullStatisticsAreShownAsNotAvailable) {
  json j = fixture();
  j["stats"]["latency_tests"][0]["pairs"][0]["p"] = nullptr;
  j["stats"]["speedups"][0]["mean_ratio"] = nullptr;
  const StudySummary s = parse_study_summary(j);
  EXPECT_TRUE(std::isnan(s.latency_tests[0].pairs[0].p));
  EXPECT_NE(render_report_markdown(parse_study_summary(j)).find("| resnet | mobile | identity | sptq | 18.22 | n/a |"),
            std::string::npos);
}

// ---- Findings ----

TEST(ReportFindings, CarryTheFixturesNumbers) {
  const std::vector<std::string> f = study_findings(parse_study_summary(fixture()));
  const std::string all = joined(f);
  // Fastest deployment per model, with identity's latency on each deployment.
  EXPECT_TRUE(any_contains(f, "For resnet the fastest deployment is mobile: 6.97 ms warm median "
                              "with sptq (95% CI 6.89-7.05 ms); unmodified (identity) it takes "
                              "9.95 ms on mobile, 13.5 ms on edge and 1247 ms on cloud "
                              "(simulated)."))
      << all;
  EXPECT_TRUE(any_contains(f, "For bert the fastest deployment is edge: 8.98 ms")) << all;
  // The largest mean speedup per deployment; qat has only resnet (it failed for bert).
  EXPECT_TRUE(any_contains(f, "sptq is 1.52x faster than identity on mobile, mean over 2 models "
                              "(resnet 1.43x and bert 1.61x)"))
      << all;
  EXPECT_TRUE(any_contains(f, "sptq is 1.17x faster than identity on edge")) << all;
  EXPECT_TRUE(any_contains(f, "qat is 1.01x faster than identity on cloud, mean over 1 model "
                              "(resnet 1.01x)"))
      << all;
  // Accuracy with McNemar.
  EXPECT_TRUE(any_contains(f, "sptq changes resnet's top-1 by -0.04 pt (0.9128 to 0.9124; 12 vs "
                              "8 discordant samples, McNemar p = 0.50, not significant at the "
                              "Bonferroni threshold 0.01)."))
      << all;
  EXPECT_TRUE(any_contains(f, "qat changes resnet's top-1 by +0.07 pt")) << all;
  EXPECT_TRUE(any_contains(f, "sptq changes bert's f1 by -1.59 pt (0.9561 to 0.9402; 31 vs 11 "
                              "discordant samples, McNemar p = 0.003, significant at the "
                              "Bonferroni threshold 0.01)."))
      << all;
  // Wilcoxon on accuracy across the models, with its Bonferroni threshold.
  EXPECT_TRUE(any_contains(f, "Wilcoxon signed-rank test of sptq's accuracy against identity's "
                              "over 2 models: W = 0.0, p = 0.50, not significant at the "
                              "Bonferroni threshold 0.025 (alpha 0.05 over 2 tests)."))
      << all;
  EXPECT_TRUE(any_contains(f, "in 5 of 6 model/deployment groups; of 27 Conover pairs, 17 differ "
                              "after Holm adjustment, 16 of them with a large Cliff's delta"))
      << all;
  // Bandwidth sensitivity, both outcomes.
  EXPECT_TRUE(any_contains(f, "At 1 Mbit/s on edge-cloud, cloud takes 1235 ms for resnet (qat) "
                              "against 6.97 ms on mobile (sptq); cloud never becomes fastest "
                              "within the sweep (at 200 Mbit/s it takes 57.1 ms"))
      << all;
  EXPECT_TRUE(any_contains(f, "At 1 Mbit/s on mobile-edge, edge takes 18.2 ms for bert (sptq) "
                              "against 15.7 ms on mobile (sptq); edge becomes fastest from 10 "
                              "Mbit/s (9.86 ms against 15.7 ms on mobile (sptq))"))
      << all;
  EXPECT_TRUE(any_contains(f, "resnet's Pareto front of top-1 against warm median latency has 2 "
                              "points of 12: sptq on mobile (6.97 ms, 0.9124) and qat on mobile "
                              "(7.04 ms, 0.9135)"))
      << all;
  // Failures with their reason, latency and accuracy together.
  EXPECT_TRUE(any_contains(f, "qat failed for bert (latency on mobile, edge and cloud and "
                              "accuracy): qat: fake quantization of the attention softmax is not "
                              "supported"))
      << all;
  // Every sentence with a latency in it is marked simulated; accuracy-only ones are not.
  for (const std::string& s : f) {
    if (s.find(" ms") != std::string::npos) {
      EXPECT_NE(s.find("(simulated)"), std::string::npos) << s;
    }
    if (s.find("McNemar") != std::string::npos) {
      EXPECT_EQ(s.find("simulated"), std::string::npos) << s;
    }
  }
}

TEST(ReportFindings, FollowTheSummary) {
  json j = fixture();
  // sptq on mobile slower: qat on mobile becomes resnet's fastest.
  cell(j, "resnet", "sptq", "mobile")["latency"]["warm"]["median_ms"] = 100.0;
  // A fast cloud link for identity from 150 Mbit/s: cloud wins there.
  for (json& p : cell(j, "resnet", "identity", "cloud")["sweep"])
    if (p["link"] == "edge-cloud" && p["bandwidth_mbps"].get<double>() >= 150)
      p["warm_median_ms"] = 3.5;
  j["stats"]["mcnemar"][0]["significant"] = true;
  for (json& c : j["cells"])
    if (c["model"] == "bert") c["mode"] = "emulated";
  const std::vector<std::string> f = study_findings(parse_study_summary(j));
  const std::string all = joined(f);
  EXPECT_TRUE(any_contains(f, "For resnet the fastest deployment is mobile: 7.04 ms warm median "
                              "with qat"))
      << all;
  EXPECT_TRUE(any_contains(f, "cloud becomes fastest from 150 Mbit/s (3.50 ms against 6.97 ms on "
                              "mobile (sptq))"))
      << all;
  EXPECT_TRUE(any_contains(f, "McNemar p = 0.50, significant at the Bonferroni threshold 0.01)"))
      << all;
  // Modes: bert's sentences say emulated, mixed ones name both.
  EXPECT_TRUE(any_contains(f, "For bert the fastest deployment is edge: 8.98 ms")) << all;
  for (const std::string& s : f) {
    if (s.rfind("For bert", 0) == 0) {
      EXPECT_NE(s.find("(emulated)."), std::string::npos) << s;
    }
  }
  EXPECT_TRUE(any_contains(f, "mean over 2 models (resnet 1.43x and bert 1.61x), the largest "
                              "mean speedup there (emulated, simulated)."))
      << all;
}

TEST(ReportFindings, OptionalFieldsChangeTheSentences) {
  json j = fixture();
  // Wilcoxon on paired latencies is a simulated figure.
  j["stats"]["wilcoxon"][0]["measure"] = "latency";
  // A split's speedup is against identity on the tier where requests start.
  j["stats"]["speedups"][0]["baseline_deploy"] = "edge";
  // identity's accuracy unknown: no change to report.
  j["accuracy"][5].erase("baseline");
  j["accuracy"][5].erase("drop_pt");
  const std::vector<std::string> f = study_findings(parse_study_summary(j));
  const std::string all = joined(f);
  EXPECT_TRUE(any_contains(f, "Wilcoxon signed-rank test of sptq's warm medians against "
                              "identity's over 2 model/deployment pairs: W = 0.0, p = 0.50, not "
                              "significant at the Bonferroni threshold 0.025 (alpha 0.05 over 2 "
                              "tests) (simulated)."))
      << all;
  EXPECT_TRUE(any_contains(f, "sptq is 1.52x faster on mobile than identity on edge, mean over 2 "
                              "models (resnet 1.43x and bert 1.61x), the largest mean speedup on "
                              "mobile (simulated)."))
      << all;
  EXPECT_TRUE(any_contains(f, "sptq's f1 for bert is 0.9402 (1393 samples; identity has no value "
                              "to compare with)."))
      << all;
  EXPECT_FALSE(any_contains(f, "sptq changes bert's f1")) << all;
  // Zero differences are left out of Wilcoxon's test; the sentence says how many, or that
  // nothing was left to test.
  json k = fixture();
  k["stats"]["wilcoxon"][0]["pairs"] = 3;
  EXPECT_TRUE(any_contains(study_findings(parse_study_summary(k)), "sptq's accuracy against identity's over 2 models "
                                              "(1 with no change left out): W = 0.0"))
      << joined(study_findings(parse_study_summary(k)));
  k["stats"]["wilcoxon"][0]["n"] = 0;
  EXPECT_TRUE(any_contains(study_findings(parse_study_summary(k)), "sptq's accuracy equals identity's on all 3 models, "
                                              "so the Wilcoxon signed-rank test has nothing to test."))
      << joined(study_findings(parse_study_summary(k)));
}

// ---- HTML and Markdown ----

TEST(ReportHtml, IsSelfContainedAndMarked) {
  const std::string html = render_report_html(parse_study_summary(fixture()));
  // Nothing fetched: no external script, style or link; Vega is inlined from the package.
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("href=\"http"), std::string::npos);
  EXPECT_EQ(html.find("src='http"), std::string::npos);
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("sourceMappingURL"), std::string::npos);
  const std::string vega_view = read_text(std::string(kVegaDir) + "/vega-view.min.js");
  ASSERT_GT(vega_view.size(), 1000u) << "libjs-vega is not installed: run scripts/setup";
  EXPECT_NE(html.find(vega_view.substr(0, 400)), std::string::npos);

  // The mode banner, the findings and the simulated marks.
  EXPECT_NE(html.find("simulated: compute measured on this host and scaled by tier speed; links "
                      "computed from bandwidth and RTT"),
            std::string::npos);
  EXPECT_NE(html.find("<li>For resnet the fastest deployment is mobile"), std::string::npos);
  EXPECT_NE(html.find("<caption>Warm and cold latency per cell (simulated)</caption>"),
            std::string::npos);
  EXPECT_NE(html.find("<caption>Speedup over identity: identity&#39;s warm median over the "
                      "strategy&#39;s (simulated)</caption>"),
            std::string::npos);
  EXPECT_NE(html.find("<caption>Accuracy and McNemar tests against identity</caption>"),
            std::string::npos);

  // Charts: 2 latency, 2 Pareto, 1 heat map, 2 links x 2 models of sweeps; each title marked.
  const json specs = chart_specs(html);
  ASSERT_EQ(specs.size(), 9u);
  EXPECT_NE(html.find("data-charts-expected=\"9\""), std::string::npos);
  for (const json& c : specs) {
    const std::string title = c["spec"]["title"]["text"];
    EXPECT_EQ(title.substr(title.size() - 11), "(simulated)") << title;
    EXPECT_NE(html.find("<div id=\"" + c["id"].get<std::string>() + "\""), std::string::npos);
  }
  // Box plots from quantiles, not raw samples: one row per finished cell of the model.
  EXPECT_EQ(specs[0]["spec"]["data"][0]["values"].size(), 12u);
  EXPECT_EQ(specs[1]["spec"]["data"][0]["values"].size(), 9u);
  EXPECT_EQ(specs[4]["spec"]["data"][0]["values"].size(), 9u);  // 3 strategies x 3 deployments
  EXPECT_LT(html.size(), 1000000u);
}

TEST(ReportHtml, EscapesTheSummarysStrings) {
  json j = fixture();
  const std::string evil = "res<net>&\"x'";
  rename_everywhere(j, "resnet", evil);
  cell(j, "bert", "qat", "edge")["reason"] = "<script>alert(1)</script>";
  const std::string html = render_report_html(parse_study_summary(j));
  EXPECT_EQ(html.find("res<net>"), std::string::npos);
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_NE(html.find("res&lt;net&gt;&amp;&quot;x&#39;"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  // Inside the chart data the name is \u-escaped JSON and reads back unchanged.
  EXPECT_EQ(chart_specs(html)[0]["spec"]["title"]["text"].get<std::string>().substr(0, 12), evil);

  const std::string md = render_report_markdown(parse_study_summary(j));
  EXPECT_EQ(md.find("res<net>"), std::string::npos);
  EXPECT_NE(md.find("res\\<net>"), std::string::npos);
}

TEST(ReportHtml, ShowsEachFiguresMode) {
  json j = fixture();
  j["study"]["mode"] = "emulated";
  for (json& c : j["cells"]) c["mode"] = "emulated";
  const std::string html = render_report_html(parse_study_summary(j));
  EXPECT_EQ(html.find("(simulated)"), std::string::npos);
  EXPECT_NE(html.find("<caption>Warm and cold latency per cell (emulated)</caption>"),
            std::string::npos);
  for (const json& c : chart_specs(html))
    EXPECT_NE(c["spec"]["title"]["text"].get<std::string>().find("(emulated)"),
              std::string::npos);
}

TEST(ReportHtml, MissingVegaNamesThePackage) {
  ReportOptions o;
  o.vega_dir = "/nonexistent/vega";
  const std::string message = error_of([&] { render_report_html(parse_study_summary(fixture()), o); });
  EXPECT_NE(message.find("libjs-vega"), std::string::npos) << message;
  EXPECT_NE(message.find("/nonexistent/vega/vega-util.min.js"), std::string::npos) << message;
}

TEST(ReportAnswer, OpensTheReportWithTheRecommendationAndHowSureItIs) {
  const StudySummary s = parse_study_summary(fixture());
  const StudyAnswer a = study_answer(s);
  EXPECT_EQ(a.budget, "accuracy drop at most 1 pt, no latency budget; differences count as "
                      "practical beyond the larger of the measured noise floor and 5%");
  ASSERT_EQ(a.models.size(), 2u);
  EXPECT_EQ(a.models[0],
            "resnet: sptq on mobile, 6.97 ms warm median, accuracy -0.04 pt; the runner-up, qat on "
            "mobile, takes 7.04 ms: no practical difference (90% CI 1.00x-1.03x within the 5.0% "
            "margin), so either will do (12 of the model's cells meet the budget) (simulated).");
  EXPECT_EQ(a.models[1],
            "bert: dynamic on edge, 9.49 ms warm median, accuracy -0.13 pt; the runner-up, identity "
            "on edge, takes 11.5 ms: 1.21x slower, a practical difference (95% CI 1.18x-1.23x, "
            "margin 5.0%) (6 of the model's cells meet the budget) (simulated).");
  ASSERT_FALSE(a.compared.empty());
  EXPECT_EQ(a.compared.back(), "Noise floor (identity measured twice in the same rounds, A/A): "
                               "0.6-1.8% over 6 model/deployment pairs; a difference below the "
                               "margin is not called one.");
  // Changing the summary changes the answer: a budget nothing meets gives the Pareto front.
  json j = fixture();
  j["answers"][1] = {{"model", "bert"}, {"met", false}, {"within_budget", 0}};
  const StudyAnswer none = study_answer(parse_study_summary(j));
  EXPECT_EQ(none.models[1].rfind("bert: no cell meets the budget; the Pareto front is ", 0), 0u)
      << none.models[1];
  // Cells measured on a busy host, some unstable: the answer says so.
  j = fixture();
  j["cells"][0]["latency"]["conditions"] = {{"others_busy_pct", 50.4}, {"unstable", true}};
  j["cells"][1]["latency"]["conditions"] = {{"others_busy_pct", 12.0}, {"unstable", false}};
  const StudyAnswer busy = study_answer(parse_study_summary(j));
  ASSERT_GE(busy.compared.size(), 3u);
  EXPECT_EQ(busy.compared[busy.compared.size() - 3].rfind("Caution: other processes used up to 50% of the CPU", 0), 0u)
      << busy.compared[busy.compared.size() - 3];
  EXPECT_EQ(busy.compared[busy.compared.size() - 2].rfind("1 of 2 cells were measured while", 0), 0u);
  EXPECT_EQ(a.compared.size() + 2, busy.compared.size());
  // A latency-only study says so in its budget and has no accuracy in its sentences.
  j = fixture();
  j["study"]["latency_only"] = true;
  j["answers"][0]["accuracy_change_pt"] = nullptr;
  const StudyAnswer lo = study_answer(parse_study_summary(j));
  EXPECT_EQ(lo.budget.rfind("latency only (untrained weights)", 0), 0u);
  EXPECT_EQ(lo.models[0].find("accuracy"), std::string::npos) << lo.models[0];
}

TEST(ReportAnswer, ComesFirstInBothFormats) {
  const StudySummary s = parse_study_summary(fixture());
  const std::string html = render_report_html(s);
  const size_t answer = html.find("<section id=\"answer\">");
  ASSERT_NE(answer, std::string::npos);
  EXPECT_LT(answer, html.find("<section id=\"findings\">"));
  EXPECT_LT(html.find("resnet: sptq on mobile, 6.97 ms warm median"), html.find("<section id=\"findings\">"));
  EXPECT_NE(html.find("id=\"comparisons-table\""), std::string::npos);
  EXPECT_NE(html.find("id=\"noise-table\""), std::string::npos);
  const std::string md = render_report_markdown(s);
  EXPECT_LT(md.find("## Answer\n\nBudget: accuracy drop at most 1 pt"), md.find("## Findings"));
  EXPECT_NE(md.find("| resnet | sptq | mobile | mobile | 1.43x | 1.40x - 1.46x | 1.8% | 5.0% |"),
            std::string::npos);
  EXPECT_LT(md.find("## Tables"), md.find("## Environment"));
}

TEST(ReportMarkdown, HasFindingsAndTables) {
  const std::string md = render_report_markdown(parse_study_summary(fixture()));
  EXPECT_NE(md.find("## Findings\n\n- For resnet the fastest deployment is mobile"),
            std::string::npos);
  EXPECT_NE(md.find("**Warm and cold latency per cell (simulated)**"), std::string::npos);
  EXPECT_NE(md.find("| resnet | sptq | mobile | simulated | 20 | 6.97 | 7.08 | 7.18 | 6.89 - "
                    "7.05 | 0 (0.0%) | 30.7 |"),
            std::string::npos);
  EXPECT_NE(md.find("| bert | sptq | f1 | 0.9402 | 0.9561 | -1.59 | 1393 | 31 / 11 | 0.003 | 0.01 "
                    "| yes |"),
            std::string::npos);
  EXPECT_NE(md.find("| bert | qat | f1 | failed |"), std::string::npos);
  // Wilcoxon on accuracy: measured, not simulated.
  EXPECT_NE(md.find("**Wilcoxon signed-rank tests against identity, Bonferroni threshold**"),
            std::string::npos);
  EXPECT_NE(md.find("| sptq | accuracy | 2 | 0.0 | 0.50 | 0.05 | 0.025 | no |"), std::string::npos);
  EXPECT_NE(md.find("| bert | qat | cloud | failed | qat: fake quantization"), std::string::npos);
  EXPECT_EQ(md.find("<svg"), std::string::npos);
}

// ---- CSV exports ----

TEST(ReportExports, WriteHeadersAndRows) {
  const TempDir dir("exports");
  json j = fixture();
  cell(j, "bert", "qat", "mobile")["reason"] = "out of memory, \"4 GB\"";
  const std::filesystem::path out = dir.path() / "nested" / "study";
  write_report_exports(parse_study_summary(j), out.string());

  EXPECT_EQ(json::parse(read_text(out / "summary.json")), j);

  const auto cells = lines_of(read_text(out / "cells.csv"));
  ASSERT_EQ(cells.size(), 25u);  // header + 24 cells
  EXPECT_EQ(cells[0],
            "model,strategy,deploy,status,mode,warm_median_ms,warm_p90_ms,warm_p99_ms,"
            "warm_ci_lo_ms,warm_ci_hi_ms,cold_median_ms,accuracy,accuracy_drop_pt,"
            "breakdown_compute.cloud_ms,breakdown_compute.edge_ms,breakdown_compute.mobile_ms,"
            "breakdown_link.edge-cloud_ms,breakdown_link.mobile-edge_ms,breakdown_preprocess_ms,"
            "breakdown_serialise_ms,reason");
  EXPECT_EQ(cells[1], "resnet,identity,mobile,done,simulated,9.954,10.145,10.223,9.916,10.095,"
                      "34.069,0.9128,0.0,,,8.0,,,1.92,0.07,");
  EXPECT_NE(std::find(cells.begin(), cells.end(),
                      "bert,qat,mobile,failed,simulated,,,,,,,,,,,,,,,,"
                      "\"out of memory, \"\"4 GB\"\"\""),
            cells.end());

  const auto samples = lines_of(read_text(out / "samples.csv"));
  ASSERT_EQ(samples.size(), 1u + 21u * 20u);  // 21 finished cells of 20 samples
  EXPECT_EQ(samples[0], "model,strategy,deploy,sample,latency_ms");
  EXPECT_EQ(samples[1], "resnet,identity,mobile,0,9.954");
  EXPECT_EQ(samples[20], "resnet,identity,mobile,19,9.923");

  const auto accuracy = lines_of(read_text(out / "accuracy.csv"));
  ASSERT_EQ(accuracy.size(), 9u);
  EXPECT_EQ(accuracy[0], "model,strategy,status,metric,value,baseline,drop_pt,samples,mcnemar_b,"
                         "mcnemar_c,mcnemar_p,mcnemar_threshold,mcnemar_significant,reason");
  EXPECT_EQ(accuracy[2], "resnet,sptq,done,top-1,0.9124,0.9128,0.04,10000,12,8,0.5034,0.01,false,");

  const auto stats = lines_of(read_text(out / "stats.csv"));
  ASSERT_EQ(stats.size(), 28u);  // header + 27 pairs
  EXPECT_EQ(stats[0], "model,deploy,a,b,t,p,p_holm,cliffs_delta,magnitude,kruskal_h,kruskal_df,"
                      "kruskal_p");

  EXPECT_EQ(lines_of(read_text(out / "speedups.csv")).size(), 1u + 9u + 15u);
  const std::vector<std::string> cmp = lines_of(read_text(out / "comparisons.csv"));
  ASSERT_EQ(cmp.size(), 1u + 15u);
  EXPECT_EQ(cmp[0], "model,strategy,deploy,baseline,baseline_deploy,speedup,ci90_lo,ci90_hi,ci95_lo,"
                    "ci95_hi,noise_floor_pct,margin_pct,p_holm,verdict");
  EXPECT_EQ(cmp[1].rfind("resnet,sptq,mobile,identity,mobile,1.4289,", 0), 0u) << cmp[1];
  EXPECT_EQ(cmp[1].substr(cmp[1].rfind(',') + 1), "faster");
  EXPECT_EQ(lines_of(read_text(out / "sweep.csv")).size(), 1u + 21u * 12u);
}

TEST(ReportExports, UnwritableFolderIsAnError) {
  const TempDir dir("unwritable");
  std::ofstream(dir.path() / "file") << "x";
  const std::string message =
      error_of([&] { write_report_exports(parse_study_summary(fixture()), (dir.path() / "file").string()); });
  EXPECT_NE(message.find("report: cannot create the folder"), std::string::npos) << message;
}

// ---- Rendering in a browser ----

TEST(ReportChromium, RendersEveryChartWithoutErrors) {
  const TempDir dir("chromium");
  const std::string dom = chromium_dom(render_report_html(parse_study_summary(fixture())), dir);
  if (dom.empty()) return;  // the failure is recorded
  auto body = body_attributes(dom);
  ASSERT_TRUE(body.count("data-charts-expected")) << dom.substr(0, 2000);
  ASSERT_TRUE(body.count("data-charts-rendered")) << "the render script did not finish; errors: "
                                                   << body["data-errors"];
  const int expected = std::stoi(body["data-charts-expected"]);
  EXPECT_GE(expected, 4);
  EXPECT_EQ(body["data-charts-rendered"], body["data-charts-expected"]);
  EXPECT_EQ(body["data-errors"], "");
  EXPECT_EQ(body["data-warnings"], "");
  EXPECT_EQ(count(dom, "<svg"), static_cast<size_t>(expected));
  // The answer opens the page as rendered, and the heat map's labels and the titles are in
  // the drawn SVG.
  const size_t answer = dom.find("<section id=\"answer\">");
  ASSERT_NE(answer, std::string::npos);
  EXPECT_LT(answer, dom.find("<section id=\"findings\">"));
  EXPECT_LT(answer, dom.find("<svg"));
  EXPECT_NE(dom.find("bert: dynamic on edge, 9.49 ms warm median", answer), std::string::npos);
  EXPECT_NE(dom.find(">1.52x</text>"), std::string::npos);
  EXPECT_NE(dom.find("resnet: warm median against the bandwidth of edge-cloud (simulated)"),
            std::string::npos);
}

TEST(ReportChromium, RendersEscapedNamesAndASparseGrid) {
  const TempDir dir("chromium-escaped");
  json j = fixture();
  rename_everywhere(j, "bert", "<b>bert</b>");
  // Cells the study did not run (as partitions run on splits only) leave gaps in the panels.
  json kept = json::array();
  for (const json& c : j["cells"])
    if (!(c["model"] == "resnet" && c["strategy"] == "dynamic" && c["deploy"] == "mobile") &&
        !(c["model"] == "<b>bert</b>" && c["strategy"] == "sptq" && c["deploy"] == "cloud"))
      kept.push_back(c);
  j["cells"] = kept;
  const std::string dom = chromium_dom(render_report_html(parse_study_summary(j)), dir);
  if (dom.empty()) return;
  auto body = body_attributes(dom);
  EXPECT_EQ(body["data-charts-rendered"], body["data-charts-expected"]);
  EXPECT_EQ(body["data-errors"], "");
  EXPECT_EQ(body["data-warnings"], "");
  EXPECT_EQ(dom.find("<b>bert</b>"), std::string::npos);
  EXPECT_NE(dom.find("&lt;b&gt;bert&lt;/b&gt;"), std::string::npos);
}
