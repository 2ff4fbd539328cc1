// The Markdown report (edgeforge/report.h): the HTML report's findings and tables, no charts.
#include <sstream>

#include "edgeforge/report.h"
#include "report_internal.h"

namespace edgeforge {

using namespace report_detail;

std::string render_report_markdown(const StudySummary& s) {
  std::ostringstream out;
  out << "# edgeforge study \"" << markdown_escape(s.study.name) << "\"\n\n"
      << markdown_escape(s.study.created_utc)
      << (s.study.finished_utc.empty() ? "" : " to " + markdown_escape(s.study.finished_utc))
      << ": " << s.models.size() << " models x " << s.strategies.size() << " strategies x "
      << s.deployments.size() << " deployments, " << s.study.inputs << " inputs x "
      << s.study.runs << " runs" << (s.study.quick ? " (quick study)" : "") << ".\n\n";
  for (const std::string& mode : all_modes(s))
    out << "> **Latency mode** " << markdown_escape(mode_description(mode))
        << ". Figures from this mode are marked (" << markdown_escape(mode) << ").\n\n";
  if (!s.study.note.empty())
    out << "> **" << (s.study.latency_only ? "Latency only: untrained weights, no accuracy." : "Note") << "** "
        << markdown_escape(s.study.note) << "\n\n";
  const StudyAnswer answer = study_answer(s);
  out << "## Answer\n\nBudget: " << markdown_escape(answer.budget) << ".\n\n";
  for (const std::string& a : answer.models) out << "- " << markdown_escape(a) << "\n";
  if (answer.models.empty()) out << "- No model has a finished cell.\n";
  if (!answer.compared.empty()) {
    out << "\n### Strategies against identity\n\n";
    for (const std::string& c : answer.compared) out << "- " << markdown_escape(c) << "\n";
  }
  out << "\n## Findings\n\n";
  for (const std::string& f : study_findings(s)) out << "- " << markdown_escape(f) << "\n";
  out << "\n## Tables\n\n";
  for (const Table& t : result_tables(s)) out << table_markdown(t);
  out << "## Environment\n\n";
  for (const Table& t : environment_tables(s)) out << table_markdown(t);
  return out.str();
}

}  // namespace edgeforge
