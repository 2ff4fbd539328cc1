// Reading a user's text records: JSONL (one JSON object a line) and CSV/TSV (RFC 4180, a header
// row naming the columns). Used by the text data-set kind (kind_text.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgeforge::data {

struct TextColumns {
  std::string text = "text";
  std::string text_pair;  // "" when the records are single texts
  std::string label = "label";
};

struct TextRecord {
  std::string text, text_pair;
  bool has_pair = false;
  std::string label_text;  // as written: a name or an integer
  bool has_label = false;
  int64_t label = -1;      // set by the caller's label map
  std::string where;       // "file:line", for errors
};

// Error naming the file and line for a line that is not a JSON object, a missing or non-string
// text column, a label that is neither a string nor an integer.
std::vector<TextRecord> read_jsonl(const std::string& path, const TextColumns& columns);
// Error naming the file and line for a ragged row, an unterminated quote, a header without the
// text column, or bytes after a closing quote.
std::vector<TextRecord> read_csv(const std::string& path, const TextColumns& columns, char delimiter);
// The rows of CSV text (header included), for tests and fuzzing; `what` names it in errors.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, char delimiter,
                                                const std::string& what,
                                                std::vector<int>* line_of_row = nullptr);

}  // namespace edgeforge::data
