// JSONL and CSV records of the text data-set kind (text_records.h).
#include "text_records.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "edgeforge/error.h"
#include "edgeforge/util.h"

namespace edgeforge::data {
namespace {

std::string label_of(const nlohmann::json& v, const std::string& where, const std::string& column) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())))
    return std::to_string(static_cast<int64_t>(v.get<double>()));
  throw Error(where + ": '" + column + "' is " + v.dump() + "; a label is a class name or an integer");
}

}  // namespace

std::vector<TextRecord> read_jsonl(const std::string& path, const TextColumns& columns) {
  const std::string text = read_file(path);
  std::vector<TextRecord> out;
  size_t start = 0;
  int line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    EF_CHECK(!j.is_discarded() && j.is_object(), where, ": not a JSON object");
    TextRecord r;
    r.where = where;
    auto t = j.find(columns.text);
    EF_CHECK(t != j.end(), where, ": no field '", columns.text, "'");
    EF_CHECK(t->is_string(), where, ": field '", columns.text, "' is not a string");
    r.text = t->get<std::string>();
    if (!columns.text_pair.empty()) {
      auto p = j.find(columns.text_pair);
      EF_CHECK(p != j.end(), where, ": no field '", columns.text_pair, "'");
      EF_CHECK(p->is_string(), where, ": field '", columns.text_pair, "' is not a string");
      r.text_pair = p->get<std::string>();
      r.has_pair = true;
    }
    auto l = j.find(columns.label);
    if (l != j.end() && !l->is_null()) {
      r.label_text = label_of(*l, where, columns.label);
      r.has_label = true;
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::vector<std::string>> parse_csv(const std::string& text, char delimiter,
                                                const std::string& what,
                                                std::vector<int>* line_of_row) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, was_quoted = false;
  int line = 1, row_line = 1;
  size_t i = 0;
  // A UTF-8 byte order mark, as spreadsheet programs write it.
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
  auto end_row = [&] {
    row.push_back(std::move(field));
    field.clear();
    const bool blank = row.size() == 1 && row[0].empty() && !was_quoted;
    if (!blank) {
      rows.push_back(std::move(row));
      if (line_of_row != nullptr) line_of_row->push_back(row_line);
    }
    row.clear();
    was_quoted = false;
  };
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
          const char next = i + 1 < text.size() ? text[i + 1] : '\n';
          EF_CHECK(next == delimiter || next == '\n' || next == '\r', what, ":", line,
                   ": bytes after a closing quote");
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && field.empty()) {
      quoted = was_quoted = true;
    } else if (c == delimiter) {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_row();
      ++line;
      row_line = line;
    } else {
      EF_CHECK(c != '"', what, ":", line, ": a quote inside an unquoted field");
      field += c;
    }
  }
  EF_CHECK(!quoted, what, ":", row_line, ": a quoted field is not closed");
  if (!field.empty() || !row.empty() || was_quoted) end_row();
  return rows;
}

std::vector<TextRecord> read_csv(const std::string& path, const TextColumns& columns, char delimiter) {
  std::vector<int> lines;
  const std::vector<std::vector<std::string>> rows = parse_csv(read_file(path), delimiter, path, &lines);
  EF_CHECK(!rows.empty(), path, ": empty (a CSV file starts with a header row naming its columns)");
  const std::vector<std::string>& header = rows[0];
  auto column = [&](const std::string& name, bool required) -> int {
    auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) {
      std::string have;
      for (const std::string& h : header) have += (have.empty() ? "" : ", ") + h;
      EF_CHECK(!required, path, ":1: the header has no column '", name, "' (it has: ", have, ")");
      return -1;
    }
    return static_cast<int>(it - header.begin());
  };
  const int text_col = column(columns.text, true);
  const int pair_col = columns.text_pair.empty() ? -1 : column(columns.text_pair, true);
  const int label_col = column(columns.label, false);
  std::vector<TextRecord> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    const std::string where = path + ":" + std::to_string(lines[r]);
    EF_CHECK(rows[r].size() == header.size(), where, ": ", rows[r].size(), " fields, the header has ",
             header.size());
    TextRecord rec;
    rec.where = where;
    rec.text = rows[r][static_cast<size_t>(text_col)];
    if (pair_col >= 0) {
      rec.text_pair = rows[r][static_cast<size_t>(pair_col)];
      rec.has_pair = true;
    }
    if (label_col >= 0 && !rows[r][static_cast<size_t>(label_col)].empty()) {
      rec.label_text = rows[r][static_cast<size_t>(label_col)];
      rec.has_label = true;
    }
    out.push_back(std::move(rec));
  }
  return out;
}

}  // namespace edgeforge::data
