// The HTML report (edgeforge/report.h): one self-contained file with Vega inlined.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "edgeforge/error.h"
#include "edgeforge/report.h"
#include "edgeforge/util.h"
#include "report_internal.h"
#include <fstream>

namespace edgeforge {

using nlohmann::json;
using namespace report_detail;

namespace {

// The Vega modules libjs-vega installs, in an order where each follows what it requires. The
// Debian build ships no single vega.js: the umbrella module's work (registering the transforms
// with the dataflow) is done by kVegaGlue below.
const char* const kVegaModules[] = {
    "vega-util",   "vega-time",      "vega-format",     "vega-loader",          "vega-dataflow",
    "vega-statistics", "vega-scale", "vega-canvas",     "vega-scenegraph",      "vega-expression",
    "vega-selection",  "vega-functions", "vega-event-selector", "vega-parser",   "vega-runtime",
    "vega-view",   "vega-transforms", "vega-view-transforms", "vega-encode"};

// A minimal CommonJS loader: each UMD module sees `module`, `exports` and a `require` that
// returns the modules loaded before it (vega-functions asks for "vega-selections").
const char* const kVegaLoader =
    "var edgeforgeVega = {};\n"
    "function edgeforgeRequire(name) {\n"
    "  if (name === 'vega-selections') name = 'vega-selection';\n"
    "  if (!(name in edgeforgeVega)) throw new Error('Vega module ' + name + ' is not loaded');\n"
    "  return edgeforgeVega[name];\n"
    "}\n";

const char* const kVegaGlue =
    "var vega = {};\n"
    "Object.keys(edgeforgeVega).forEach(function (name) {\n"
    "  Object.assign(vega, edgeforgeVega[name]);\n"
    "});\n"
    "Object.assign(edgeforgeVega['vega-dataflow'].transforms, edgeforgeVega['vega-transforms'],\n"
    "              edgeforgeVega['vega-view-transforms'], edgeforgeVega['vega-encode']);\n";

// The file at `path`, or "" when it cannot be read (the caller names what is missing).
std::string file_or_empty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string vega_script(const std::string& dir) {
  std::string out = kVegaLoader;
  for (const char* module : kVegaModules) {
    const std::string path = dir + "/" + module + ".min.js";
    std::string js = file_or_empty(path);
    EF_CHECK(!js.empty(), "report: Vega's ", module, " is missing (", path,
             "): install the Debian package ", kVegaPackage, " (scripts/setup)");
    // The source map is a separate file: drop the reference so the page asks for nothing.
    const auto map = js.find("//# sourceMappingURL=");
    if (map != std::string::npos) js.erase(map, js.find('\n', map) - map);
    // Inside a <script> element "</script" would end it and "<!--" changes how it is parsed.
    EF_CHECK(js.find("<!--") == std::string::npos, "report: ", path,
             " contains '<!--' and cannot be inlined in a <script>");
    // Minified code has "</script" only inside strings, where "<\/script" means the same.
    for (size_t at = 0; (at = js.find("</", at)) != std::string::npos; at += 2)
      if (at + 8 <= js.size() && strncasecmp(js.c_str() + at + 2, "script", 6) == 0)
        js.replace(at, 2, "<\\/");
    out += "(function () {\nvar module = {exports: {}}, exports = module.exports, "
           "require = edgeforgeRequire;\n";
    out += js;
    out += "\n;edgeforgeVega['" + std::string(module) + "'] = module.exports;\n})();\n";
  }
  return out + kVegaGlue;
}

// JSON inside a <script> element: '<', '>' and '&' (only ever inside strings) as \u escapes, so
// that no text of the summary appears unescaped in the file.
std::string script_json(const json& value) {
  const std::string text = value.dump();
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

const char* const kStyle = R"(
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 78em; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; }
.banner { background: #fff4d6; border: 1px solid #e0b84a; padding: 0.6em 1em; margin: 1em 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 2em; }
figcaption, .note { color: #555; font-size: 0.85em; }
.findings li, .answers li, .compared li { margin: 0.3em 0; }
.answers li { font-size: 1.05em; }
.banner.note { background: #fff4d6; }
nav a { margin-right: 1em; }
.environment { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
)";

// Installed before Vega loads, so that its errors are recorded too.
const char* const kErrorHook = R"(
window.edgeforgeNote = function (key, message) {
  var body = document.body, old = body.getAttribute('data-' + key) || '';
  body.setAttribute('data-' + key, old ? old + '\n' + message : String(message));
};
window.onerror = function (message, source, line) {
  window.edgeforgeNote('errors', 'script error: ' + message + ' (line ' + line + ')');
};
window.addEventListener('unhandledrejection', function (event) {
  window.edgeforgeNote('errors', 'unhandled rejection: ' + event.reason);
});
)";

// Renders every chart; a chart counts as rendered when its view ran without an error.
const char* const kRenderScript = R"(
(function () {
  var note = window.edgeforgeNote, body = document.body, rendered = 0;
  var charts = JSON.parse(document.getElementById('edgeforge-charts').textContent);
  if (typeof vega === 'undefined' || !vega.View) {
    note('errors', 'Vega did not load');
    body.dataset.chartsRendered = '0';
    return;
  }
  Promise.all(charts.map(function (chart) {
    var failed = false;
    var logger = vega.logger(vega.Warn, undefined, function (method, level, input) {
      var text = chart.id + ': ' + Array.prototype.join.call(input, ' ');
      if (method === 'error') { failed = true; note('errors', text); } else { note('warnings', text); }
    });
    try {
      var view = new vega.View(vega.parse(chart.spec), {
        renderer: 'svg', container: '#' + chart.id, hover: true, logger: logger});
      return view.runAsync().then(function () {
        if (!failed) rendered += 1;
      }, function (error) {
        note('errors', chart.id + ': ' + error);
      });
    } catch (error) {
      note('errors', chart.id + ': ' + error);
      return Promise.resolve();
    }
  })).then(function () {
    body.dataset.chartsRendered = String(rendered);
  });
})();
)";

}  // namespace

std::string render_report_html(const StudySummary& s, const ReportOptions& options) {
  const std::string vega = vega_script(options.vega_dir);
  const std::vector<Chart> chart_list = charts(s);
  const std::vector<Table> env = environment_tables(s);
  const std::vector<Table> tables = result_tables(s);

  std::ostringstream out;
  out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      << "<meta name=\"generator\" content=\"edgeforge report (" << kStudySummaryFormat
      << ")\">\n<title>edgeforge study " << html_escape(s.study.name) << "</title>\n<style>"
      << kStyle << "</style>\n</head>\n"
      << "<body data-charts-expected=\"" << chart_list.size()
      << "\" data-errors=\"\" data-warnings=\"\">\n"
      << "<script>" << kErrorHook << "</script>\n";

  out << "<header>\n<h1>edgeforge study &#8220;" << html_escape(s.study.name)
      << "&#8221;</h1>\n<p>" << html_escape(s.study.created_utc)
      << (s.study.finished_utc.empty() ? "" : " to " + html_escape(s.study.finished_utc))
      << " &middot; " << s.models.size() << " models &times; " << s.strategies.size()
      << " strategies &times; " << s.deployments.size() << " deployments &middot; "
      << s.study.inputs << " inputs &times; " << s.study.runs << " runs"
      << (s.study.quick ? " &middot; quick study" : "") << "</p>\n";
  for (const std::string& mode : all_modes(s))
    out << "<p class=\"banner mode-" << html_escape(mode) << "\"><strong>Latency mode</strong> "
        << html_escape(mode_description(mode)) << ". Figures from this mode are marked ("
        << html_escape(mode) << ").</p>\n";
  if (!s.study.note.empty())
    out << "<p class=\"banner note\" id=\"study-note\"><strong>"
        << (s.study.latency_only ? "Latency only: untrained weights, no accuracy." : "Note")
        << "</strong> " << html_escape(s.study.note) << "</p>\n";
  out << "<nav><a href=\"#answer\">Answer</a><a href=\"#findings\">Findings</a>"
      << "<a href=\"#charts\">Charts</a><a href=\"#tables\">Tables</a>"
      << "<a href=\"#environment\">Environment</a></nav>\n</header>\n";

  const StudyAnswer answer = study_answer(s);
  out << "<section id=\"answer\">\n<h2>Answer</h2>\n<p class=\"budget\">Budget: "
      << html_escape(answer.budget) << ".</p>\n<ul class=\"answers\">\n";
  for (const std::string& a : answer.models) out << "<li>" << html_escape(a) << "</li>\n";
  if (answer.models.empty()) out << "<li>No model has a finished cell.</li>\n";
  out << "</ul>\n";
  if (!answer.compared.empty()) {
    out << "<h3>Strategies against identity</h3>\n<ul class=\"compared\">\n";
    for (const std::string& c : answer.compared) out << "<li>" << html_escape(c) << "</li>\n";
    out << "</ul>\n";
  }
  out << "</section>\n";

  out << "<section id=\"findings\">\n<h2>Findings</h2>\n<ul class=\"findings\">\n";
  for (const std::string& f : study_findings(s)) out << "<li>" << html_escape(f) << "</li>\n";
  out << "</ul>\n</section>\n";

  out << "<section id=\"charts\">\n<h2>Charts</h2>\n";
  const std::map<std::string, std::string> headings = {
      {"latency", "Latency distributions per deployment"},
      {"pareto", "Accuracy against latency"},
      {"speedup", "Speedup of each strategy on each deployment"},
      {"sweep", "Bandwidth sweep"}};
  std::string last;
  for (const Chart& c : chart_list) {
    if (c.heading != last) out << "<h3>" << html_escape(headings.at(c.heading)) << "</h3>\n";
    last = c.heading;
    out << "<figure>\n<div id=\"" << c.id << "\" class=\"chart\"></div>\n<figcaption>"
        << html_escape(c.spec["title"]["text"].get<std::string>()) << ". "
        << html_escape(c.caption) << "</figcaption>\n</figure>\n";
  }
  if (chart_list.empty()) out << "<p>No chart: no cell finished.</p>\n";
  out << "</section>\n";

  out << "<section id=\"tables\">\n<h2>Tables</h2>\n";
  for (const Table& t : tables) out << table_html(t);
  out << "</section>\n";
  out << "<section id=\"environment\">\n<h2>Environment</h2>\n<div class=\"environment\">\n";
  for (const Table& t : env) out << "<div>\n" << table_html(t) << "</div>\n";
  out << "</div>\n</section>\n";

  json specs = json::array();
  for (const Chart& c : chart_list) specs.push_back({{"id", c.id}, {"spec", c.spec}});
  out << "<script>\n" << vega << "</script>\n"
      << "<script type=\"application/json\" id=\"edgeforge-charts\">" << script_json(specs)
      << "</script>\n<script>" << kRenderScript << "</script>\n</body>\n</html>\n";
  return out.str();
}

}  // namespace edgeforge
