// The report's charts (report_internal.h): full Vega 5 specs with inline data.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "edgeforge/error.h"
#include "edgeforge/report.h"
#include "edgeforge/stats.h"
#include "edgeforge/util.h"
#include "report_internal.h"

namespace edgeforge::report_detail {

using nlohmann::json;

namespace {

// Log scales need positive values; a chart with a zero or a negative value falls back to symlog.
std::string positive_scale(const std::vector<double>& values) {
  for (double v : values)
    if (!(v > 0)) return "symlog";
  return "log";
}

json names_of(const std::vector<std::string>& names) { return json(names); }

// Line dashes for strategies and point shapes for deployments, reused in order when there are more.
json dashes() { return json::parse(R"([[1,0],[6,3],[2,2],[8,3,2,3],[1,4],[12,4],[4,2,1,2]])"); }
json shapes() {
  return json::parse(R"(["circle","square","triangle-up","diamond","cross","triangle-down",
                          "triangle-right","wedge"])");
}

// One panel per deployment, each with its own linear y scale: the deployments of one model
// differ by up to three orders of magnitude, which would flatten every box on a shared axis.
json latency_box_spec(const StudySummary& s, const SummaryModel& m, const std::string& title) {
  json rows = json::array();
  size_t panels = 0;
  for (size_t di = 0; di < s.deployments.size(); ++di) {
    // The grid may be sparse (partitions run on splits only): each panel shows its strategies.
    size_t in_panel = 0;
    for (const SummaryStrategy& st : s.strategies) {
      const SummaryCell* c = find_cell(s, m.name, st.name, s.deployments[di]);
      in_panel += c != nullptr && c->done() ? 1 : 0;
    }
    const int64_t panel_width = static_cast<int64_t>(std::max<size_t>(90, in_panel * 34));
    for (const SummaryStrategy& st : s.strategies) {
      const SummaryCell* c = find_cell(s, m.name, st.name, s.deployments[di]);
      if (c == nullptr || !c->done()) continue;
      std::vector<double> x = c->warm_samples_ms;
      if (x.empty()) x = {c->warm_median_ms};
      std::sort(x.begin(), x.end());
      // Tukey's whiskers: the most extreme samples within 1.5 IQR of the box; the samples
      // beyond are counted (outliers), not drawn, so a few slow requests cannot hide the box.
      const double q1 = stats::percentile(x, 0.25), q3 = stats::percentile(x, 0.75);
      const double lo_fence = q1 - 1.5 * (q3 - q1), hi_fence = q3 + 1.5 * (q3 - q1);
      double lo = x.back(), hi = x.front();
      for (double v : x)
        if (v >= lo_fence && v <= hi_fence) lo = std::min(lo, v), hi = std::max(hi, v);
      const int64_t n = static_cast<int64_t>(c->warm_samples_ms.size());
      rows.push_back({{"strategy", st.name}, {"deploy", s.deployments[di]},
                      {"order", static_cast<int64_t>(di)}, {"panel_width", panel_width},
                      {"min", lo}, {"q1", q1}, {"median", c->warm_median_ms}, {"q3", q3}, {"max", hi},
                      {"slowest", x.back()}, {"p99", c->warm_p99_ms}, {"n", n},
                      {"outliers", c->outliers},
                      {"outlier_share", n > 0 ? static_cast<double>(c->outliers) / static_cast<double>(n) : 0.0},
                      {"mode", c->mode}});
    }
    panels += in_panel > 0 ? 1 : 0;
  }
  json spec = json::parse(R"json({
    "padding": 5, "autosize": "pad",
    "title": {"anchor": "start", "fontSize": 13},
    "layout": {"padding": {"row": 20, "column": 25}, "bounds": "full", "align": "none"},
    "data": [{"name": "boxes"}],
    "scales": [{"name": "color", "type": "ordinal", "range": "category"}],
    "legends": [{"fill": "color", "title": "strategy"}],
    "marks": [{
      "type": "group",
      "from": {"facet": {"name": "panel", "data": "boxes", "groupby": "deploy",
                         "aggregate": {"fields": ["order", "panel_width"], "ops": ["min", "max"],
                                       "as": ["order", "panel_width"]}}},
      "sort": {"field": "datum.order"},
      "title": {"text": {"signal": "parent.deploy"}, "fontSize": 12, "frame": "group"},
      "signals": [{"name": "height", "value": 220}],
      "encode": {"enter": {"width": {"field": "panel_width"}, "height": {"value": 220}}},
      "scales": [
        {"name": "x", "type": "band", "domain": {"data": "panel", "field": "strategy"},
         "range": {"signal": "[0, parent.panel_width]"}, "paddingInner": 0.3, "paddingOuter": 0.2},
        {"name": "y", "type": "linear", "domain": {"data": "panel", "fields": ["min", "max"]},
         "range": "height", "nice": true, "zero": false}
      ],
      "axes": [
        {"orient": "bottom", "scale": "x", "labelAngle": -30, "labelAlign": "right"},
        {"orient": "left", "scale": "y", "title": "warm latency (ms)", "grid": true, "tickCount": 6}
      ],
      "marks": [
        {"type": "rule", "from": {"data": "panel"}, "encode": {"enter": {
          "x": {"scale": "x", "field": "strategy", "band": 0.5},
          "y": {"scale": "y", "field": "min"}, "y2": {"scale": "y", "field": "max"},
          "stroke": {"scale": "color", "field": "strategy"}, "strokeWidth": {"value": 1.5}}}},
        {"type": "rect", "from": {"data": "panel"}, "encode": {"enter": {
          "x": {"scale": "x", "field": "strategy"}, "width": {"scale": "x", "band": 1},
          "y": {"scale": "y", "field": "q3"}, "y2": {"scale": "y", "field": "q1"},
          "fill": {"scale": "color", "field": "strategy"}, "fillOpacity": {"value": 0.45},
          "stroke": {"scale": "color", "field": "strategy"},
          "tooltip": {"signal": "{'strategy': datum.strategy, 'deployment': datum.deploy, 'median (ms)': format(datum.median, '.4~r'), 'q1 - q3 (ms)': format(datum.q1, '.4~r') + ' - ' + format(datum.q3, '.4~r'), 'whiskers (ms)': format(datum.min, '.4~r') + ' - ' + format(datum.max, '.4~r'), 'p99 (ms)': format(datum.p99, '.4~r'), 'slowest (ms)': format(datum.slowest, '.4~r'), 'outliers': datum.outliers + ' (' + format(datum.outlier_share, '.1%') + ')', 'samples': datum.n, 'mode': datum.mode}"}}}},
        {"type": "rect", "from": {"data": "panel"}, "encode": {"enter": {
          "x": {"scale": "x", "field": "strategy"}, "width": {"scale": "x", "band": 1},
          "yc": {"scale": "y", "field": "median"}, "height": {"value": 2},
          "fill": {"value": "#222"}}}}
      ]
    }]})json");
  spec["title"]["text"] = title;
  spec["layout"]["columns"] = std::max<size_t>(1, panels);
  spec["data"][0]["values"] = rows;
  // Colours by every strategy of the study, so that a strategy has one colour in every chart.
  std::vector<std::string> all;
  for (const SummaryStrategy& st : s.strategies) all.push_back(st.name);
  spec["scales"][0]["domain"] = names_of(all);
  return spec;
}

json pareto_spec(const StudySummary& s, const SummaryPareto& f, const SummaryModel* m,
                 const std::string& title) {
  json points = json::array();
  std::vector<double> latencies;
  std::vector<std::string> strategies;
  for (const SummaryStrategy& st : s.strategies) strategies.push_back(st.name);
  std::vector<SummaryParetoPoint> sorted = f.points;
  std::stable_sort(sorted.begin(), sorted.end(), [](const SummaryParetoPoint& a, const SummaryParetoPoint& b) {
    return a.latency_ms < b.latency_ms;
  });
  for (const SummaryParetoPoint& p : sorted) {
    points.push_back({{"strategy", p.strategy}, {"deploy", p.deploy},
                      {"latency_ms", p.latency_ms}, {"accuracy", p.accuracy},
                      {"on_front", p.on_front}});
    latencies.push_back(p.latency_ms);
  }
  json spec = json::parse(R"json({
    "padding": 5, "autosize": "pad", "width": 440, "height": 260,
    "title": {"anchor": "start", "fontSize": 13},
    "data": [
      {"name": "points"},
      {"name": "front", "source": "points", "transform": [{"type": "filter", "expr": "datum.on_front"}]}
    ],
    "scales": [
      {"name": "x", "domain": {"data": "points", "field": "latency_ms"}, "range": "width",
       "nice": false, "zero": false, "padding": 14},
      {"name": "y", "type": "linear", "domain": {"data": "points", "field": "accuracy"},
       "range": "height", "nice": true, "zero": false, "padding": 8},
      {"name": "color", "type": "ordinal", "range": "category"},
      {"name": "shape", "type": "ordinal"}
    ],
    "axes": [
      {"orient": "bottom", "scale": "x", "title": "warm median latency (ms, log scale)", "grid": true},
      {"orient": "left", "scale": "y", "grid": true}
    ],
    "legends": [{"fill": "color", "title": "strategy"}, {"shape": "shape", "title": "deployment"}],
    "marks": [
      {"type": "line", "from": {"data": "front"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "latency_ms"}, "y": {"scale": "y", "field": "accuracy"},
        "stroke": {"value": "#555"}, "strokeDash": {"value": [5, 3]}, "strokeWidth": {"value": 1.5}}}},
      {"type": "symbol", "from": {"data": "points"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "latency_ms"}, "y": {"scale": "y", "field": "accuracy"},
        "shape": {"scale": "shape", "field": "deploy"}, "size": {"value": 80},
        "fill": {"scale": "color", "field": "strategy"}, "fillOpacity": {"value": 0.85},
        "stroke": {"signal": "datum.on_front ? '#000' : null"}, "strokeWidth": {"value": 1.5},
        "tooltip": {"signal": "{'strategy': datum.strategy, 'deployment': datum.deploy, 'warm median (ms)': format(datum.latency_ms, '.4~r'), 'accuracy': format(datum.accuracy, '.4f'), 'on the front': datum.on_front}"}}}},
      {"type": "text", "from": {"data": "front"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "latency_ms"}, "y": {"scale": "y", "field": "accuracy"},
        "dx": {"value": 7}, "dy": {"value": -7}, "fontSize": {"value": 10},
        "text": {"signal": "datum.strategy + ' on ' + datum.deploy"}}}}
    ]})json");
  spec["title"]["text"] = title;
  spec["data"][0]["values"] = points;
  spec["scales"][0]["type"] = positive_scale(latencies);
  spec["scales"][2]["domain"] = names_of(strategies);
  spec["scales"][3]["domain"] = names_of(s.deployments);
  spec["scales"][3]["range"] = shapes();
  spec["axes"][1]["title"] = m ? m->metric : "accuracy";
  if (spec["scales"][0]["type"] != "log")
    spec["axes"][0]["title"] = "warm median latency (ms, symlog scale)";
  return spec;
}

json speedup_spec(const StudySummary& s, const std::string& title) {
  json rows = json::array();
  std::vector<std::string> strategies;
  double log_max = std::log(1.1);
  for (const SummarySpeedup& sp : s.speedups)
    if (std::isfinite(sp.mean_ratio) && sp.mean_ratio > 0)
      log_max = std::max(log_max, std::fabs(std::log(sp.mean_ratio)));
  for (const SummaryStrategy& st : s.strategies)
    for (const SummarySpeedup& sp : s.speedups) {
      if (sp.strategy != st.name || !std::isfinite(sp.mean_ratio) || !(sp.mean_ratio > 0))
        continue;
      if (std::find(strategies.begin(), strategies.end(), st.name) == strategies.end())
        strategies.push_back(st.name);
      rows.push_back({{"strategy", sp.strategy}, {"deploy", sp.deploy},
                      {"ratio", sp.mean_ratio}, {"label", ratio_text(sp.mean_ratio)},
                      {"models", static_cast<int64_t>(sp.per_model.size())},
                      {"dark", std::fabs(std::log(sp.mean_ratio)) > 0.6 * log_max}});
    }
  json spec = json::parse(R"json({
    "padding": 5, "autosize": "pad",
    "title": {"anchor": "start", "fontSize": 13},
    "data": [{"name": "speedups"}],
    "scales": [
      {"name": "x", "type": "band", "range": "width", "padding": 0.04},
      {"name": "y", "type": "band", "range": "height", "padding": 0.04},
      {"name": "color", "type": "log", "range": {"scheme": "redblue"}, "clamp": true}
    ],
    "axes": [
      {"orient": "top", "scale": "x", "title": "deployment", "domain": false, "ticks": false},
      {"orient": "left", "scale": "y", "title": "strategy", "domain": false, "ticks": false}
    ],
    "legends": [{"fill": "color", "type": "gradient", "title": "speedup (x)", "format": ".2~f"}],
    "marks": [
      {"type": "rect", "from": {"data": "speedups"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "deploy"}, "width": {"scale": "x", "band": 1},
        "y": {"scale": "y", "field": "strategy"}, "height": {"scale": "y", "band": 1},
        "fill": {"scale": "color", "field": "ratio"},
        "tooltip": {"signal": "{'strategy': datum.strategy, 'deployment': datum.deploy, 'mean speedup': datum.label, 'models': datum.models}"}}}},
      {"type": "text", "from": {"data": "speedups"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "deploy", "band": 0.5},
        "y": {"scale": "y", "field": "strategy", "band": 0.5},
        "align": {"value": "center"}, "baseline": {"value": "middle"}, "fontSize": {"value": 12},
        "text": {"field": "label"},
        "fill": {"signal": "datum.dark ? 'white' : 'black'"}}}}
    ]})json");
  spec["title"]["text"] = title;
  spec["width"] = std::max<size_t>(200, s.deployments.size() * 90);
  spec["height"] = std::max<size_t>(60, strategies.size() * 30);
  spec["data"][0]["values"] = rows;
  spec["scales"][0]["domain"] = names_of(s.deployments);
  spec["scales"][1]["domain"] = names_of(strategies);
  spec["scales"][2]["domain"] = {std::exp(-log_max), std::exp(log_max)};
  return spec;
}

json sweep_spec(const StudySummary& s, const SummaryModel& m, const SummaryLink& link,
                const std::string& title) {
  json rows = json::array();
  std::vector<double> values;
  std::vector<std::string> strategies;
  for (const SummaryStrategy& st : s.strategies)
    for (const std::string& d : s.deployments) {
      const SummaryCell* c = find_cell(s, m.name, st.name, d);
      if (c == nullptr || !c->done()) continue;
      std::vector<SummarySweepPoint> pts;
      for (const SummarySweepPoint& p : c->sweep)
        if (p.link == link.name()) pts.push_back(p);
      if (pts.empty()) continue;
      std::sort(pts.begin(), pts.end(), [](const SummarySweepPoint& a, const SummarySweepPoint& b) {
        return a.bandwidth_mbps < b.bandwidth_mbps;
      });
      if (std::find(strategies.begin(), strategies.end(), st.name) == strategies.end())
        strategies.push_back(st.name);
      for (const SummarySweepPoint& p : pts) {
        rows.push_back({{"strategy", st.name}, {"deploy", d},
                        {"bandwidth_mbps", p.bandwidth_mbps},
                        {"warm_median_ms", p.warm_median_ms}});
        values.push_back(p.warm_median_ms);
      }
    }
  json spec = json::parse(R"json({
    "padding": 5, "autosize": "pad", "width": 440, "height": 260,
    "title": {"anchor": "start", "fontSize": 13},
    "data": [{"name": "sweep"}, {"name": "study"}],
    "scales": [
      {"name": "x", "type": "log", "domain": {"data": "sweep", "field": "bandwidth_mbps"},
       "range": "width", "nice": false, "zero": false},
      {"name": "y", "domain": {"data": "sweep", "field": "warm_median_ms"}, "range": "height",
       "nice": false, "zero": false, "padding": 10},
      {"name": "color", "type": "ordinal", "range": {"scheme": "dark2"}},
      {"name": "dash", "type": "ordinal"}
    ],
    "axes": [
      {"orient": "bottom", "scale": "x", "title": "bandwidth (Mbit/s, log scale)", "grid": true},
      {"orient": "left", "scale": "y", "title": "warm median (ms, log scale)", "grid": true}
    ],
    "legends": [
      {"stroke": "color", "title": "deployment", "symbolType": "stroke"},
      {"strokeDash": "dash", "title": "strategy", "symbolType": "stroke"}
    ],
    "marks": [
      {"type": "group", "from": {"facet": {"name": "series", "data": "sweep", "groupby": ["strategy", "deploy"]}},
       "marks": [{"type": "line", "from": {"data": "series"}, "encode": {"enter": {
         "x": {"scale": "x", "field": "bandwidth_mbps"}, "y": {"scale": "y", "field": "warm_median_ms"},
         "stroke": {"scale": "color", "field": "deploy"}, "strokeDash": {"scale": "dash", "field": "strategy"},
         "strokeWidth": {"value": 1.8}}}}]},
      {"type": "symbol", "from": {"data": "sweep"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "bandwidth_mbps"}, "y": {"scale": "y", "field": "warm_median_ms"},
        "fill": {"scale": "color", "field": "deploy"}, "size": {"value": 18},
        "tooltip": {"signal": "{'strategy': datum.strategy, 'deployment': datum.deploy, 'bandwidth (Mbit/s)': datum.bandwidth_mbps, 'warm median (ms)': format(datum.warm_median_ms, '.4~r')}"}}}},
      {"type": "rule", "from": {"data": "study"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "bandwidth_mbps"}, "y": {"value": 0}, "y2": {"signal": "height"},
        "stroke": {"value": "#999"}, "strokeDash": {"value": [2, 2]}}}},
      {"type": "text", "from": {"data": "study"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "bandwidth_mbps"}, "y": {"value": 0},
        "dx": {"signal": "scale('x', datum.bandwidth_mbps) > width / 2 ? -3 : 3"},
        "align": {"signal": "scale('x', datum.bandwidth_mbps) > width / 2 ? 'right' : 'left'"},
        "baseline": {"value": "top"}, "fontSize": {"value": 10}, "fill": {"value": "#666"},
        "text": {"signal": "'topology: ' + datum.bandwidth_mbps + ' Mbit/s'"}}}}
    ]})json");
  spec["title"]["text"] = title;
  spec["data"][0]["values"] = rows;
  // The topology's own bandwidth, marked when the sweep's range includes it.
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (const json& r : rows) {
    lo = std::min(lo, r["bandwidth_mbps"].get<double>());
    hi = std::max(hi, r["bandwidth_mbps"].get<double>());
  }
  spec["data"][1]["values"] = json::array();
  if (link.bandwidth_mbps >= lo && link.bandwidth_mbps <= hi)
    spec["data"][1]["values"].push_back({{"bandwidth_mbps", link.bandwidth_mbps}});
  spec["scales"][1]["type"] = positive_scale(values);
  spec["scales"][2]["domain"] = names_of(s.deployments);
  spec["scales"][3]["domain"] = names_of(strategies);
  spec["scales"][3]["range"] = dashes();
  if (spec["scales"][1]["type"] != "log") spec["axes"][1]["title"] = "warm median (ms, symlog scale)";
  return spec;
}

}  // namespace

std::vector<Chart> charts(const StudySummary& s) {
  std::vector<Chart> out;
  auto add = [&](const std::string& heading, const std::string& caption, json spec) {
    out.push_back({"chart-" + std::to_string(out.size() + 1), heading, caption, std::move(spec)});
  };
  for (const SummaryModel& m : s.models) {
    bool any = false;
    for (const SummaryCell& c : s.cells) any = any || (c.model == m.name && c.done());
    if (!any) continue;
    const std::string title = with_mark(m.name + ": warm latency per deployment and strategy",
                                        mode_mark(cell_modes(s, m.name, "", "")));
    add("latency", "Box: the middle half of the warm samples; bar: the median; whiskers: the "
        "most extreme samples within 1.5 IQR of the box. Samples beyond are outliers, counted "
        "in the tooltip and the latency table, not drawn.",
        latency_box_spec(s, m, title));
  }
  for (const SummaryPareto& f : s.pareto) {
    if (f.points.empty()) continue;
    const SummaryModel* model = nullptr;
    for (const SummaryModel& m : s.models)
      if (m.name == f.model) model = &m;
    const std::string metric = model ? model->metric : "accuracy";
    const std::string title =
        with_mark(f.model + ": " + metric + " against warm median latency, Pareto front",
                  mode_mark(cell_modes(s, f.model, "", "")));
    add("pareto", "Outlined and labelled points form the Pareto front (dashed): no other "
        "configuration is both faster and more accurate. Accuracy is measured, not simulated.",
        pareto_spec(s, f, model, title));
  }
  bool any_speedup = false;
  for (const SummarySpeedup& sp : s.speedups) any_speedup = any_speedup || std::isfinite(sp.mean_ratio);
  if (any_speedup)
    add("speedup", "Blue: faster than identity; red: slower. Each cell is the mean over models "
        "of identity's warm median over the strategy's.",
        speedup_spec(s, with_mark("Speedup over identity, strategy against deployment (mean "
                                  "over models)",
                                  mode_mark(cell_modes(s, "", "", "")))));
  for (const SummaryLink& link : s.study.links)
    for (const SummaryModel& m : s.models) {
      bool any = false;
      for (const SummaryCell& c : s.cells)
        for (const SummarySweepPoint& p : c.sweep)
          any = any || (c.model == m.name && c.done() && p.link == link.name());
      if (!any) continue;
      const std::string title =
          with_mark(m.name + ": warm median against the bandwidth of " + link.name(),
                    mode_mark(cell_modes(s, m.name, "", "")));
      add("sweep", "Only " + link.name() + " changes; the other links keep the topology's "
          "bandwidth. Colour: deployment; dash: strategy.",
          sweep_spec(s, m, link, title));
    }
  return out;
}

}  // namespace edgeforge::report_detail
