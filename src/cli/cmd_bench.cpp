// edgeforge bench: end-to-end latency of a model deployed on a topology, measured as the study
// measured it (inputs x runs, the first run a dropped warm-up): simulated on this host, emulated
// with agents in namespaces behind shaped links, or on remote agents.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/build_info.h"
#include "edgeforge/agent.h"
#include "edgeforge/deploy.h"
#include "edgeforge/emulate.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/stats.h"
#include "edgeforge/task.h"
#include "edgeforge/tier_modes.h"

namespace edgeforge::cli {
namespace {


// The components of a timing, named for the report: "preprocess", "compute.mobile",
// "link.mobile-edge", "serialise", "load".
std::vector<std::pair<std::string, double>> components(const RequestTiming& t, const Topology& topo,
                                                       const std::vector<bool>& tier_used,
                                                       const std::vector<bool>& link_used) {
  std::vector<std::pair<std::string, double>> c{{"preprocess", t.preprocess_ms}};
  for (size_t i = 0; i < topo.tiers.size(); ++i)
    if (tier_used[i]) c.emplace_back("compute." + topo.tiers[i].name, t.compute_ms[i]);
  for (size_t i = 0; i < topo.links.size(); ++i)
    if (link_used[i]) c.emplace_back("link." + topo.links[i].from + "-" + topo.links[i].to, t.link_ms[i]);
  c.emplace_back("serialise", t.serialise_ms);
  c.emplace_back("load", t.load_ms);
  return c;
}

struct Summary {
  size_t samples = 0;
  double median = 0, p90 = 0, p99 = 0;
  std::vector<std::pair<std::string, double>> breakdown;  // median of each component
  std::vector<double> totals;
};

Summary summarise(const std::vector<RequestTiming>& ts, const Topology& topo,
                  const std::vector<bool>& tier_used, const std::vector<bool>& link_used) {
  Summary s;
  s.samples = ts.size();
  if (ts.empty()) return s;
  for (const RequestTiming& t : ts) s.totals.push_back(t.total_ms);
  s.median = stats::percentile(s.totals, 0.5);
  s.p90 = stats::percentile(s.totals, 0.9);
  s.p99 = stats::percentile(s.totals, 0.99);
  const auto names = components(ts[0], topo, tier_used, link_used);
  std::vector<std::vector<double>> values(names.size());
  for (const RequestTiming& t : ts) {
    const auto parts = components(t, topo, tier_used, link_used);
    for (size_t k = 0; k < parts.size(); ++k) values[k].push_back(parts[k].second);
  }
  for (size_t k = 0; k < names.size(); ++k)
    s.breakdown.emplace_back(names[k].first, stats::median(values[k]));
  return s;
}

nlohmann::json summary_json(const Summary& s, bool with_samples) {
  nlohmann::json j = {{"samples", s.samples}, {"median_ms", s.median}, {"p90_ms", s.p90},
                      {"p99_ms", s.p99}};
  for (const auto& [k, v] : s.breakdown) j["breakdown_median_ms"][k] = v;
  if (with_samples) j["samples_ms"] = s.totals;
  return j;
}

}  // namespace

Action add_bench(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Measure a model's end-to-end latency on a deployment, as the study did: every request\n"
      "enters at the first tier (mobile) carrying the raw input (a 224x224 RGB frame made from\n"
      "the test image, or the mail's UTF-8 text), travels to the tier that runs the model (or\n"
      "part 1 of it), is preprocessed and computed there, a split model's tensors cross to the\n"
      "tier of part 2, and the output returns the same way. --inputs test samples x --runs runs;\n"
      "the first run is a dropped warm-up. Reports warm latency (median, p90, p99) and cold\n"
      "latency (the parts loaded and prepared first, once per run), each with its breakdown.\n"
      "Simulated: compute, preprocessing and serialisation are measured on this host with each\n"
      "tier's thread count (at most this host's cores) and divided by the tier's speed; a link\n"
      "costs half its round-trip time plus bytes over bandwidth (plus jitter and loss when set).\n"
      "Emulated (--mode emulated, root on Linux): each tier an agent process in its own network\n"
      "namespace with a CPU quota and memory limit, links shaped by tc; times are measured.\n"
      "Remote (--mode remote): the agents named by the topology's `agent` addresses.");
  struct Args {
    std::string model, data, deploy, at = "study", topology, link, bandwidths, frame = "224x224";
    std::string mode = "simulated";
    double timeout_ms = 30000;
    int retries = 2;
    int64_t inputs = 100;
    int runs = 6;
    uint64_t seed = 1;
    bool json = false, csv = false, samples = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--model", args->model, "ONNX model (its data set: --data, or the one it carries)")
      ->required();
  add_data_option(cmd, args->data);
  cmd->add_option("--deploy", args->deploy,
                  "where it runs: a tier (mobile, edge, cloud), a split FIRST-SECOND (mobile-edge:\n"
                  "part 1 on mobile, part 2 on edge), or auto (the placement and cut with the\n"
                  "lowest estimated latency, from a per-node profile)")
      ->required();
  cmd->add_option("--at", args->at,
                  "cut point of a split: a value name (edgeforge partition --list), study (after\n"
                  "the third stage or the embeddings; the quantized tensor in an int8 model) or auto")
      ->capture_default_str();
  cmd->add_option("--topology", args->topology, "topology .toml file (default: the built-in, see edgeforge tiers)");
  cmd->add_option("--inputs", args->inputs, "test samples per run")->capture_default_str();
  cmd->add_option("--runs", args->runs, "runs over the inputs; the first is a dropped warm-up")
      ->capture_default_str();
  cmd->add_option("--bandwidth-mbps", args->bandwidths,
                  "sweep a link's bandwidth over these values, e.g. 1,10,50,100,150,200 (compute is\n"
                  "measured once; each value re-simulates the links)");
  cmd->add_option("--link", args->link,
                  "the link --bandwidth-mbps sets, FROM-TO (default: the last link the deployment uses)");
  cmd->add_option("--frame", args->frame, "captured frame size of a fashion-mnist model, WIDTHxHEIGHT (a user's\nimage folder sends its files as they are)")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "seed of the simulated jitter and loss")->capture_default_str();
  cmd->add_option("--mode", args->mode,
                  "simulated (on this host), emulated (agents in network namespaces with shaped\n"
                  "links and CPU quotas; needs root) or remote (the topology's agents)")
      ->check(CLI::IsMember(tier_mode_names()))
      ->capture_default_str();
  cmd->add_option("--timeout-ms", args->timeout_ms, "emulated and remote: a request's deadline")
      ->check(CLI::Range(1.0, 3600000.0))
      ->capture_default_str();
  cmd->add_option("--retries", args->retries, "emulated and remote: attempts after a failed request")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the results as JSON on stdout (with every warm sample)");
  cmd->add_flag("--csv", args->csv, "print one CSV row per request on stdout");
  return [args]() {
    EF_CHECK(!(args->json && args->csv), "--json and --csv: choose one");
    EF_CHECK(args->inputs >= 1, "--inputs ", args->inputs, ": must be at least 1");
    EF_CHECK(args->runs >= 2, "--runs ", args->runs, ": must be at least 2 (the first is a dropped warm-up)");
    PayloadOptions po;
    po.inputs = args->inputs;
    {
      const auto x = args->frame.find('x');
      size_t u1 = 0, u2 = 0;
      try {
        EF_CHECK(x != std::string::npos, "");
        po.frame_width = std::stoll(args->frame.substr(0, x), &u1);
        po.frame_height = std::stoll(args->frame.substr(x + 1), &u2);
      } catch (const std::exception&) {
        u1 = 0;
      }
      EF_CHECK(u1 == x && u2 == args->frame.size() - x - 1 && u1 > 0,
               "--frame '", args->frame, "': expected WIDTHxHEIGHT, e.g. 224x224");
    }
    Topology topo0 = args->topology.empty() ? default_topology() : load_topology(args->topology);
    resolve_speeds(topo0);
    const Graph model = load_model(args->model, args->data);
    const std::vector<Payload> payloads = make_payloads(model, po);
    const bool quiet = args->json || args->csv;
    auto say = [&](const std::string& line) {
      std::fprintf(quiet ? stderr : stdout, "%s\n", line.c_str());
    };

    // Where it runs.
    Placement where;
    std::string auto_why;
    if (args->deploy == "auto" || args->at == "auto") {
      ProgressLine line("bench: profiling for auto", false);
      line.update(0, 1, "");
      std::vector<PlacementEstimate> ranked =
          rank_placements(measure_placement_inputs(model, topo0, payloads[0]));
      if (args->deploy != "auto") {  // a given split, the cut chosen
        const Placement want = parse_placement(args->deploy, topo0);
        EF_CHECK(want.split(), "--at auto needs a split deployment (FIRST-SECOND) or --deploy auto");
        ranked.erase(std::remove_if(ranked.begin(), ranked.end(),
                                    [&](const PlacementEstimate& e) {
                                      return e.placement.first != want.first ||
                                             e.placement.second != want.second;
                                    }),
                     ranked.end());
      }
      line.finish("");
      where = ranked.at(0).placement;
      auto_why = explain_choice(ranked);
      say("auto: " + auto_why + " (estimated)");
    } else {
      where = parse_placement(args->deploy, topo0);
      if (where.split()) {
        std::string why;
        where.cut = args->at == "study" ? study_cut_point(model, model_seq_len(model), &why) : args->at;
        EF_CHECK(!where.cut.empty(), "model '", model.name(), "' has no study cut point: ", why,
                 "; name one with --at (edgeforge partition --list)");
      }
    }
    Deployment dep(model, topo0, where);  // simulated; for the others, the cut and threads
    const TierMode& mode = tier_mode(args->mode);
    const bool real = mode.real;
    std::unique_ptr<Emulation> emulation;
    std::unique_ptr<RemoteDeployment> remote;
    std::vector<AgentEndpoint> endpoints;
    if (real) {
      endpoints = tier_mode_agents(mode, topo0, EmulationOptions{}, emulation);
      if (emulation) {
        say(mode.name + ": set up " + std::to_string(topo0.tiers.size()) + " tiers");
        for (const std::string& line : emulation->describe()) say("  " + line);
      }
    }
    if (real) {
      RemoteOptions ro;
      ro.timeout_ms = args->timeout_ms;
      ro.retries = args->retries;
      remote = std::make_unique<RemoteDeployment>(model, topo0, where, endpoints, ro);
    }
    DeploymentRunner& runner = real ? static_cast<DeploymentRunner&>(*remote) : dep;

    // Which tiers compute and which links carry something.
    std::vector<bool> tier_used(topo0.tiers.size(), false), link_used(topo0.links.size(), false);
    int64_t response_bytes = 0;
    {
      std::vector<at::Tensor> outputs;
      const MeasuredRequest probe = runner.run(payloads[0], &outputs);
      response_bytes = static_cast<int64_t>(encode_tensors(outputs).size());
      for (size_t i = 0; i < topo0.tiers.size(); ++i)
        tier_used[i] = topo0.tiers[i].name == where.first || topo0.tiers[i].name == where.second;
      for (const Hop& h : probe.hops) link_used[h.link] = true;
    }

    // The swept link.
    std::vector<double> bandwidths;
    size_t swept = 0;
    if (!args->bandwidths.empty()) {
      EF_CHECK(mode.reshapable, "--bandwidth-mbps: ", mode.name, " links cannot be re-shaped; sweep in "
               "--mode simulated or emulated");
      bandwidths = parse_positive_list(args->bandwidths, "--bandwidth-mbps");
      if (args->link.empty()) {
        bool any = false;
        for (size_t i = 0; i < link_used.size(); ++i)
          if (link_used[i]) swept = i, any = true;
        EF_CHECK(any, "--bandwidth-mbps: deploy ", where.label(),
                 " sends nothing over a link, so there is nothing to sweep");
      } else {
        bool found = false;
        for (size_t i = 0; i < topo0.links.size(); ++i)
          if (topo0.links[i].from + "-" + topo0.links[i].to == args->link) swept = i, found = true;
        EF_CHECK(found, "--link '", args->link, "': no such link in topology '", topo0.name,
                 "' (links are FROM-TO, e.g. edge-cloud)");
      }
    }

    // Measure: per run one cold request (the run's first input), then every input warm. An
    // emulated sweep measures again at each bandwidth, the link re-shaped.
    auto measure = [&](const std::string& what) {
      ProgressLine progress("bench " + model.name() + " on " + where.label() + what);
      DeploymentSamples m = measure_deployment(runner, payloads, args->runs, [&](int64_t d, int64_t t) {
        progress.update(d, t, "");
      });
      progress.finish("");
      return m;
    };
    const bool measure_per_point = emulation && !bandwidths.empty();
    DeploymentSamples measured;
    if (!measure_per_point) measured = measure("");
    double wall_s = measured.seconds;

    // Simulate the links, once per swept bandwidth (or once as configured).
    struct Point {
      double bandwidth = 0;
      std::vector<RequestTiming> warm, cold;
      Summary w, c;
    };
    std::vector<Point> points;
    const std::vector<double> sweep = bandwidths.empty() ? std::vector<double>{0.0} : bandwidths;
    for (double bw : sweep) {
      Topology topo = topo0;
      if (bw > 0) topo.links[swept].bandwidth_mbps = bw;
      if (measure_per_point) {
        emulation->set_bandwidth(swept, bw);
        char what[64];
        std::snprintf(what, sizeof what, " at %g Mbit/s", bw);
        measured = measure(what);
        wall_s += measured.seconds;
      }
      Point p;
      p.bandwidth = bw > 0 ? bw : 0;
      std::mt19937_64 rng(args->seed);
      for (const MeasuredRequest& m : measured.warm) p.warm.push_back(simulate(m, topo, rng));
      for (const MeasuredRequest& m : measured.cold) p.cold.push_back(simulate(m, topo, rng));
      p.w = summarise(p.warm, topo, tier_used, link_used);
      p.c = summarise(p.cold, topo, tier_used, link_used);
      points.push_back(std::move(p));
    }

    const std::vector<MeasuredRequest>& warm = measured.warm;
    const std::vector<MeasuredRequest>& cold = measured.cold;
    const auto& warm_at = measured.warm_at;
    const int64_t payload_bytes = dep.payload_bytes(payloads[0]);
    const std::string link_name =
        bandwidths.empty() ? "" : topo0.links[swept].from + "-" + topo0.links[swept].to;
    std::string threads;
    std::vector<int> tier_threads(topo0.tiers.size(), 0);
    for (size_t i = 0; i < topo0.tiers.size(); ++i) {
      tier_threads[i] = runner.threads_of(i);
      if (tier_used[i])
        threads += (threads.empty() ? "" : ";") + topo0.tiers[i].name + ":" +
                   std::to_string(tier_threads[i]);
    }
    const std::string commit = git_commit(), cpu = cpu_model();

    if (args->json) {
      nlohmann::json j = {
          {"tool", "edgeforge bench"},
          {"mode", mode.name},
          {"environment",
           {{"commit", commit}, {"version", version()}, {"cpu", cpu},
            {"host_cores", default_threads()}, {"seed", args->seed}}},
          {"model", args->model},
          {"model_name", model.name()},
          {"deploy", where.label()},
          {"inputs", payloads.size()},
          {"runs", args->runs},
          {"payload", {{"kind", payloads[0].kind}, {"bytes", payload_bytes}}},
          {"response_bytes", response_bytes},
          {"measure_seconds", wall_s}};
      if (!auto_why.empty()) j["auto"] = auto_why;
      if (where.split()) {
        nlohmann::json c = {{"value", where.cut}, {"bytes", dep.cut().bytes}};
        for (const CrossingTensor& t : dep.cut().crossing)
          c["tensors"].push_back({{"name", t.name}, {"dtype", std::string(c10::toString(t.dtype))},
                                  {"shape", t.shape}, {"bytes", t.bytes}});
        j["cut"] = c;
      }
      for (size_t i = 0; i < topo0.tiers.size(); ++i)
        if (tier_used[i])
          j["threads"][topo0.tiers[i].name] = tier_threads[i];
      if (emulation) j["emulation"] = emulation->describe();
      nlohmann::json t = {{"name", topo0.name}};
      for (const TierProfile& p : topo0.tiers)
        t["tiers"].push_back({{"name", p.name}, {"cores", p.cores}, {"memory_gb", p.memory_gb},
                              {"speed", p.speed}});
      for (const Link& l : topo0.links)
        t["links"].push_back({{"from", l.from}, {"to", l.to}, {"bandwidth_mbps", l.bandwidth_mbps},
                              {"rtt_ms", l.rtt_ms}, {"jitter_ms", l.jitter_ms}, {"loss", l.loss}});
      j["topology"] = t;
      for (const Point& p : points) {
        nlohmann::json pj = {{"warm", summary_json(p.w, true)}, {"cold", summary_json(p.c, true)}};
        if (!link_name.empty()) pj["link"] = link_name, pj["bandwidth_mbps"] = p.bandwidth;
        j["results"].push_back(pj);
      }
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    if (args->csv) {
      std::vector<std::string> cols;
      for (const auto& [name, v] : components(points[0].warm.at(0), topo0, tier_used, link_used))
        cols.push_back(name);
      std::printf("mode,commit,cpu,threads,seed,model,deploy,cut,link,bandwidth_mbps,kind,run,input,total_ms");
      for (const std::string& c : cols) std::printf(",%s_ms", c.c_str());
      std::printf("\n");
      std::string cpu_csv = cpu;
      std::replace(cpu_csv.begin(), cpu_csv.end(), ',', ' ');
      for (const Point& p : points) {
        auto row = [&](const RequestTiming& t, const char* kind, int run, int64_t input) {
          std::printf("%s,%s,%s,%s,%llu,%s,%s,%s,%s,%g,%s,%d,%lld,%.6f", mode.name.c_str(), commit.c_str(),
                      cpu_csv.c_str(), threads.c_str(), static_cast<unsigned long long>(args->seed),
                      model.name().c_str(), where.label().c_str(), where.cut.c_str(),
                      link_name.c_str(), p.bandwidth, kind, run, static_cast<long long>(input),
                      t.total_ms);
          for (const auto& [name, v] : components(t, topo0, tier_used, link_used))
            std::printf(",%.6f", v);
          std::printf("\n");
        };
        for (size_t k = 0; k < p.cold.size(); ++k) row(p.cold[k], "cold", static_cast<int>(k + 1), 0);
        for (size_t k = 0; k < p.warm.size(); ++k)
          row(p.warm[k], "warm", warm_at[k].first, warm_at[k].second);
      }
      return 0;
    }

    // Text.
    const std::string how = mode.banner;
    std::printf("bench %s on %s, topology %s: %s (%s, %d cores)\n", model.name().c_str(),
                where.label().c_str(), topo0.name.c_str(), how.c_str(), cpu.c_str(), default_threads());
    const std::string request = payloads[0].kind == "frame"
                                    ? std::to_string(payloads[0].width) + "x" +
                                          std::to_string(payloads[0].height) + " RGB frame"
                                    : "UTF-8 text (first input)";
    std::printf("request: %s, %s from %s; response %s back\n", request.c_str(),
                human_bytes(payload_bytes).c_str(), topo0.tiers[0].name.c_str(),
                human_bytes(response_bytes).c_str());
    if (where.split()) {
      std::string what;
      for (const CrossingTensor& t : dep.cut().crossing)
        what += (what.empty() ? "" : ", ") + t.name + " " + std::string(c10::toString(t.dtype));
      std::printf("cut after %s: %s crosses (%s)\n", where.cut.c_str(),
                  human_bytes(dep.cut().bytes).c_str(), what.c_str());
    }
    std::printf("threads: %s (%s)\n", threads.c_str(),
                real ? "as the agents report" : "tier cores, at most this host's");
    std::printf("%zu inputs x %d runs, first dropped: %zu warm samples, %zu cold; measured in %.1f s\n\n",
                payloads.size(), args->runs, warm.size(), cold.size(), wall_s);
    auto table = [&](const Summary& s, const char* title) {
      std::printf("%-26s %10.3f %10.3f %10.3f   %s\n", title, s.median, s.p90, s.p99, mode.name.c_str());
      for (const auto& [name, v] : s.breakdown) {
        if (name == "load" && std::string(title).rfind("warm", 0) == 0) continue;
        std::printf("  %-24s %10.3f\n", name.c_str(), v);
      }
    };
    if (bandwidths.empty()) {
      std::printf("%-26s %10s %10s %10s   (ms; breakdown: component medians)\n", "", "median",
                  "p90", "p99");
      table(points[0].w, "warm total");
      table(points[0].c, "cold total");
      return 0;
    }
    std::printf("sweep of link %s (ms; breakdown: component medians)\n", link_name.c_str());
    for (const Point& p : points) {
      char title[64];
      std::snprintf(title, sizeof title, "%g Mbit/s warm total", p.bandwidth);
      std::printf("%-26s %10s %10s %10s\n", "", "median", "p90", "p99");
      table(p.w, title);
      std::snprintf(title, sizeof title, "%g Mbit/s cold total", p.bandwidth);
      table(p.c, title);
      std::printf("\n");
    }
    return 0;
  };
}

}  // namespace edgeforge::cli
