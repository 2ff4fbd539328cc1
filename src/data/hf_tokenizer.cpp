// HfTokenizer: Hugging Face tokenizer.json pipelines re-implemented to the letter of the Rust
// `tokenizers` crate (the reference behind transformers' fast tokenizers), so that the ids match
// the ones a model was trained with. Where the crate's behaviour is odd (RoBERTa's all-zero type
// ids, longest_first's halving, Metaspace's per-split prefix, ...) it is reproduced on purpose.
//
// Text is UTF-8 throughout. Input text is sanitised first: each ill-formed UTF-8 subsequence is
// replaced by U+FFFD, as Rust's String::from_utf8_lossy and Python's errors="replace" do, so any
// byte string encodes without error (BertNormalizer's clean_text then drops the U+FFFD).
#include "hf_tokenizer.h"

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "edgeforge/error.h"

namespace edgeforge {
namespace {

using json = nlohmann::json;

constexpr int kMaxNesting = 32;            // Sequence inside Sequence, deeper is hostile input
constexpr int kMaxJsonDepth = 256;         // nlohmann's dump recurses; real files are ~6 deep
constexpr int64_t kMaxId = 0xFFFFFFFFLL;   // ids are u32 in the reference
constexpr double kUnigramUnkPenalty = 10;  // unk score = min score - this, as SentencePiece

// ---------------------------------------------------------------------------------------------
// UTF-8 and Unicode properties

inline bool is_cont_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

inline size_t utf8_len(char lead) {
  const auto c = static_cast<unsigned char>(lead);
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

// The code point at s[i] of well-formed UTF-8 (every string here is), advancing i past it.
inline char32_t next_cp(std::string_view s, size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  const auto b = [&](size_t k) { return static_cast<char32_t>(s[i + k] & 0x3F); };
  char32_t cp;
  if (c < 0xE0) {
    cp = ((c & 0x1Fu) << 6) | b(1);
    i += 2;
  } else if (c < 0xF0) {
    cp = ((c & 0x0Fu) << 12) | (b(1) << 6) | b(2);
    i += 3;
  } else {
    cp = ((c & 0x07u) << 18) | (b(1) << 12) | (b(2) << 6) | b(3);
    i += 4;
  }
  return cp;
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Length of the well-formed sequence at s[i], or 0 with `bad` = length of its maximal ill-formed
// prefix (Unicode 3.9, "maximal subpart"), which becomes one U+FFFD.
size_t valid_seq_len(std::string_view s, size_t i, size_t& bad) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    bad = 1;
    return 0;
  }
  size_t k = 1;
  for (; k < need && i + k < s.size(); ++k) {
    const auto d = static_cast<unsigned char>(s[i + k]);
    const bool ok = k == 1 ? (d >= lo && d <= hi) : (d >= 0x80 && d <= 0xBF);
    if (!ok) break;
  }
  if (k == need) return need;
  bad = k;
  return 0;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t bad = 0;
    const size_t n = valid_seq_len(s, i, bad);
    if (n > 0) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += bad;
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t bad = 0;
    const size_t n = valid_seq_len(s, i, bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool all_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

size_t utf8_count(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += !is_cont_byte(c);
  return n;
}

inline int category(char32_t cp) { return utf8proc_category(static_cast<utf8proc_int32_t>(cp)); }

// The White_Space property (Rust's char::is_whitespace, regex \s).
bool is_white_space(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_ascii_alpha(char32_t cp) { return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z'; }
bool is_ascii_digit(char32_t cp) { return cp >= '0' && cp <= '9'; }

bool is_letter(char32_t cp) {
  if (cp < 0x80) return is_ascii_alpha(cp);
  const int c = category(cp);
  return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

// char::is_numeric, \p{N}: Nd, Nl, No.
bool is_number(char32_t cp) {
  if (cp < 0x80) return is_ascii_digit(cp);
  const int c = category(cp);
  return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

bool is_mark(char32_t cp) {
  if (cp < 0x300) return false;
  const int c = category(cp);
  return c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME;
}

// ASCII punctuation or \p{P}: BertPreTokenizer's and Punctuation's definition.
bool is_bert_punct(char32_t cp) {
  if (cp < 0x80)
    return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
           (cp >= 123 && cp <= 126);
  const int c = category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

// BertNormalizer's control test: Cc, Cf, Cn, Co except \t \n \r, which count as whitespace.
bool is_bert_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  if (cp < 0x80) return cp < 0x20 || cp == 0x7F;
  const int c = category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CN ||
         c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CS;
}

bool is_chinese_char(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// The regex crate's Unicode \w: Alphabetic, marks, Nd, Pc and Join_Control. utf8proc has no
// Alphabetic property; letters, Nl and marks cover it except the circled/squared Latin letters.
bool is_word_char(char32_t cp) {
  if (cp < 0x80) return is_ascii_alpha(cp) || is_ascii_digit(cp) || cp == '_';
  if (cp == 0x200C || cp == 0x200D) return true;
  if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) ||
      (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189))
    return true;
  const int c = category(cp);
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_ND) || c == UTF8PROC_CATEGORY_NL ||
         c == UTF8PROC_CATEGORY_PC;
}

// char::to_lowercase per code point: full mappings, of which only U+0130 has two code points.
// No Final_Sigma context, exactly like the crate's NormalizedString::lowercase.
void append_lower(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
  } else if (cp == 0x130) {
    out += "i\xCC\x87";
  } else {
    append_utf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))), out);
  }
}

std::string lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (all_ascii(s)) {
    for (char c : s) out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return out;
  }
  for (size_t i = 0; i < s.size();) append_lower(next_cp(s, i), out);
  return out;
}

std::string unicode_normalize(const std::string& s, utf8proc_option_t options) {
  if (all_ascii(s)) return s;
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                          static_cast<utf8proc_ssize_t>(s.size()), &out, options);
  if (n < 0) {
    std::free(out);
    throw Error(std::string("unicode normalisation failed: ") + utf8proc_errmsg(n));
  }
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

constexpr utf8proc_option_t kNfd =
    static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
constexpr utf8proc_option_t kNfc =
    static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
constexpr utf8proc_option_t kNfkd =
    static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
constexpr utf8proc_option_t kNfkc =
    static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);

template <typename Drop>
std::string remove_chars(std::string_view s, Drop drop) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t b = i;
    if (!drop(next_cp(s, i))) out.append(s.data() + b, i - b);
  }
  return out;
}

// A string quoted for a one-line error message: control characters escaped, long ones cut
// (file names are never cut).
std::string quote(std::string_view s, size_t max_bytes = 60) {
  std::string out = "'";
  size_t shown = 0;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (++shown > max_bytes && !is_cont_byte(c)) {
      out += "...";
      break;
    }
    if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "'";
}

// GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to U+0100 upwards.
const std::array<std::string, 256>& byte_chars() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      append_utf8(static_cast<char32_t>(printable ? b : 256 + n++), t[b]);
    }
    return t;
  }();
  return table;
}

// ---------------------------------------------------------------------------------------------
// JSON reading with one-line errors naming the file

class Reader {
 public:
  explicit Reader(std::string what) : what_(std::move(what)) {}
  const std::string& what() const { return what_; }

  [[noreturn]] void fail(const std::string& message) const {
    throw Error("tokenizer " + quote(what_, std::string::npos) + ": " + message);
  }

  const json* find(const json& obj, const char* key) const {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }

  void expect_object(const json& v, const std::string& where) const {
    if (!v.is_object()) fail(where + " must be an object (got " + v.type_name() + ")");
  }

  bool get_bool(const json& obj, const char* key, const std::string& where, bool fallback) const {
    const json* v = find(obj, key);
    if (!v) return fallback;
    if (!v->is_boolean())
      fail(field(where, key) + " must be true or false (got " + v->type_name() + ")");
    return v->get<bool>();
  }

  std::optional<bool> opt_bool(const json& obj, const char* key, const std::string& where) const {
    if (!find(obj, key)) return std::nullopt;
    return get_bool(obj, key, where, false);
  }

  std::optional<std::string> opt_string(const json& obj, const char* key,
                                        const std::string& where) const {
    const json* v = find(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_string()) fail(field(where, key) + " must be a string (got " + v->type_name() + ")");
    return v->get<std::string>();
  }

  std::string get_string(const json& obj, const char* key, const std::string& where) const {
    auto v = opt_string(obj, key, where);
    if (!v) fail(field(where, key) + " is missing");
    return *v;
  }

  std::optional<int64_t> opt_int(const json& obj, const char* key, const std::string& where,
                                 int64_t lo, int64_t hi) const {
    const json* v = find(obj, key);
    if (!v) return std::nullopt;
    return as_int(*v, field(where, key), lo, hi);
  }

  int64_t get_int(const json& obj, const char* key, const std::string& where, int64_t lo,
                  int64_t hi) const {
    auto v = opt_int(obj, key, where, lo, hi);
    if (!v) fail(field(where, key) + " is missing");
    return *v;
  }

  int64_t as_int(const json& v, const std::string& where, int64_t lo, int64_t hi) const {
    bool ok = false;
    int64_t x = 0;
    if (v.is_number_unsigned()) {
      const auto u = v.get<uint64_t>();
      ok = u <= static_cast<uint64_t>(hi);
      x = static_cast<int64_t>(u);
    } else if (v.is_number_integer()) {
      x = v.get<int64_t>();
      ok = true;
    }
    if (!ok || x < lo || x > hi)
      fail(where + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
           "] (got " + (v.is_primitive() ? v.dump() : std::string(v.type_name())) + ")");
    return x;
  }

  static std::string field(const std::string& where, const char* key) {
    return where.empty() ? key : where + "." + key;
  }

 private:
  std::string what_;
};

std::string type_of(const Reader& r, const json& v, const std::string& where) {
  r.expect_object(v, where);
  auto t = r.opt_string(v, "type", where);
  if (!t) r.fail(where + ".type is missing");
  return *t;
}

[[noreturn]] void unsupported(const Reader& r, const std::string& where, const std::string& type,
                              const char* supported) {
  r.fail(where + " type " + quote(type) + " is not supported (supported: " + supported + ")");
}

// ---------------------------------------------------------------------------------------------
// Normalizers

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};
using NormalizerPtr = std::unique_ptr<const Normalizer>;

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lower)
      : clean_(clean_text), chinese_(chinese), strip_(strip_accents), lower_(lower) {}

  void normalize(std::string& s) const override {
    if (all_ascii(s)) {
      normalize_ascii(s);
      return;
    }
    if (clean_ || chinese_) {
      std::string out;
      out.reserve(s.size() + 16);
      for (size_t i = 0; i < s.size();) {
        const size_t b = i;
        const char32_t cp = next_cp(s, i);
        if (clean_) {
          if (cp == 0 || cp == 0xFFFD || is_bert_control(cp)) continue;
          if (is_white_space(cp)) {
            out += ' ';
            continue;
          }
        }
        if (chinese_ && is_chinese_char(cp)) {
          out += ' ';
          out.append(s.data() + b, i - b);
          out += ' ';
          continue;
        }
        out.append(s.data() + b, i - b);
      }
      s.swap(out);
    }
    // Accents go before lowercasing, in the crate's order.
    if (strip_) {
      s = remove_chars(unicode_normalize(s, kNfd), [](char32_t cp) {
        return cp >= 0x300 && category(cp) == UTF8PROC_CATEGORY_MN;
      });
    }
    if (lower_) s = lowercase(s);
  }

 private:
  void normalize_ascii(std::string& s) const {
    size_t w = 0;
    for (char c : s) {
      if (clean_) {
        if (c == '\t' || c == '\n' || c == '\r') {
          c = ' ';
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          continue;
        }
      }
      if (lower_ && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      s[w++] = c;
    }
    s.resize(w);
  }

  bool clean_, chinese_, strip_, lower_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string& s) const override { s = lowercase(s); }
};

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(utf8proc_option_t options) : options_(options) {}
  void normalize(std::string& s) const override { s = unicode_normalize(s, options_); }

 private:
  utf8proc_option_t options_;
};

class StripAccentsNormalizer final : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    if (!all_ascii(s)) s = remove_chars(s, is_mark);
  }
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left_) {
      for (size_t i = 0; i < e && is_white_space(next_cp(s, i));) b = i;
    }
    if (right_) {
      while (e > b) {
        size_t at = e - 1;
        while (at > b && is_cont_byte(s[at])) --at;
        size_t i = at;
        if (!is_white_space(next_cp(s, i))) break;
        e = at;
      }
    }
    s = s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

// Replace with a literal pattern. An empty pattern matches between every two characters, as the
// crate's escaped empty regex does.
class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}

  void normalize(std::string& s) const override {
    std::string out;
    if (pattern_.empty()) {
      out = content_;
      for (size_t i = 0; i < s.size();) {
        const size_t b = i;
        next_cp(s, i);
        out.append(s.data() + b, i - b);
        out += content_;
      }
      s.swap(out);
      return;
    }
    size_t from = 0;
    for (size_t at; (at = s.find(pattern_, from)) != std::string::npos;
         from = at + pattern_.size()) {
      out.append(s, from, at - from);
      out += content_;
    }
    if (from == 0) return;
    out.append(s, from, std::string::npos);
    s.swap(out);
  }

 private:
  std::string pattern_, content_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<NormalizerPtr> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& s) const override {
    for (const auto& n : parts_) n->normalize(s);
  }

 private:
  std::vector<NormalizerPtr> parts_;
};

NormalizerPtr make_normalizer(const Reader& r, const json& v, const std::string& where, int depth) {
  if (depth > kMaxNesting) r.fail(where + " nests Sequences too deeply");
  const std::string type = type_of(r, v, where);
  if (type == "BertNormalizer") {
    const bool lower = r.get_bool(v, "lowercase", where, true);
    const auto strip = r.opt_bool(v, "strip_accents", where);
    return std::make_unique<BertNormalizer>(r.get_bool(v, "clean_text", where, true),
                                            r.get_bool(v, "handle_chinese_chars", where, true),
                                            strip.value_or(lower), lower);
  }
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(kNfd);
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(kNfc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(kNfkd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(kNfkc);
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(r.get_bool(v, "strip_left", where, true),
                                             r.get_bool(v, "strip_right", where, true));
  }
  if (type == "Replace") {
    const json* pattern = r.find(v, "pattern");
    if (!pattern) r.fail(where + ".pattern is missing");
    r.expect_object(*pattern, where + ".pattern");
    if (pattern->contains("Regex"))
      r.fail(where + ".pattern: Replace with a Regex pattern is not supported (only String)");
    return std::make_unique<ReplaceNormalizer>(r.get_string(*pattern, "String", where + ".pattern"),
                                               r.get_string(v, "content", where));
  }
  if (type == "Prepend")
    return std::make_unique<PrependNormalizer>(r.get_string(v, "prepend", where));
  if (type == "Sequence") {
    const json* list = r.find(v, "normalizers");
    if (!list || !list->is_array()) r.fail(where + ".normalizers must be an array");
    std::vector<NormalizerPtr> parts;
    for (size_t i = 0; i < list->size(); ++i)
      parts.push_back(make_normalizer(
          r, (*list)[i], where + ".normalizers[" + std::to_string(i) + "]", depth + 1));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "Precompiled")  // SentencePiece's charsmap: the .model runs it through libsentencepiece
    r.fail(where + ": normalizer type 'Precompiled' (SentencePiece's) is not read from a "
           "tokenizer.json; give the model's SentencePiece .model (spiece.model, "
           "sentencepiece.bpe.model) as the tokenizer instead");
  unsupported(r, where, type,
              "BertNormalizer, Lowercase, NFD, NFC, NFKD, NFKC, StripAccents, Strip, Replace, "
              "Prepend, Sequence");
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers

struct Piece {
  std::string text;
  bool first = false;  // starts at offset 0 of the input, for Metaspace's prepend_scheme "first"
};
using Pieces = std::vector<Piece>;

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Seg {
  size_t begin, end;
  bool match;
};

// NormalizedString::split: turns match/non-match segments into pieces as `behavior` says.
void split_piece(const Piece& p, const std::vector<Seg>& segs, Behavior behavior, Pieces& out) {
  struct Span {
    size_t b, e;
  };
  std::vector<Span> spans;
  spans.reserve(segs.size());
  bool prev = false;
  switch (behavior) {
    case Behavior::kIsolated:
      for (const Seg& s : segs) spans.push_back({s.begin, s.end});
      break;
    case Behavior::kRemoved:
      for (const Seg& s : segs)
        if (!s.match) spans.push_back({s.begin, s.end});
      break;
    case Behavior::kContiguous:
      for (const Seg& s : segs) {
        if (s.match == prev && !spans.empty()) {
          spans.back().e = s.end;
        } else {
          spans.push_back({s.begin, s.end});
        }
        prev = s.match;
      }
      break;
    case Behavior::kMergedWithPrevious:
      for (const Seg& s : segs) {
        if (s.match && !prev && !spans.empty()) {
          spans.back().e = s.end;
        } else {
          spans.push_back({s.begin, s.end});
        }
        prev = s.match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->match && !prev && !spans.empty()) {
          spans.back().b = it->begin;
        } else {
          spans.push_back({it->begin, it->end});
        }
        prev = it->match;
      }
      std::reverse(spans.begin(), spans.end());
      break;
  }
  for (const Span& s : spans)
    if (s.e > s.b) out.push_back({p.text.substr(s.b, s.e - s.b), p.first && s.b == 0});
}

template <typename Pred>
void char_segments(std::string_view s, Pred pred, std::vector<Seg>& segs) {
  segs.clear();
  size_t last = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t b = i;
    if (pred(next_cp(s, i))) {
      if (last < b) segs.push_back({last, b, false});
      segs.push_back({b, i, true});
      last = i;
    }
  }
  if (last < s.size()) segs.push_back({last, s.size(), false});
}

void literal_segments(std::string_view s, std::string_view pattern, std::vector<Seg>& segs) {
  segs.clear();
  size_t last = 0;
  if (!pattern.empty()) {
    for (size_t at; (at = s.find(pattern, last)) != std::string_view::npos;
         last = at + pattern.size()) {
      if (last < at) segs.push_back({last, at, false});
      segs.push_back({at, at + pattern.size(), true});
    }
  }
  if (last < s.size()) segs.push_back({last, s.size(), false});
}

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

CharClass char_class(char32_t cp) {
  if (is_white_space(cp)) return kSpace;
  if (is_letter(cp)) return kLetter;
  if (is_number(cp)) return kNumber;
  return kOther;
}

// The matches of kGpt2Pattern, which tile the text: at every position one alternative matches.
void gpt2_segments(std::string_view s, std::vector<Seg>& segs) {
  segs.clear();
  std::vector<char32_t> cps;
  std::vector<uint32_t> offs;
  std::vector<uint8_t> cls;
  for (size_t i = 0; i < s.size();) {
    offs.push_back(static_cast<uint32_t>(i));
    const char32_t cp = next_cp(s, i);
    cps.push_back(cp);
    cls.push_back(char_class(cp));
  }
  const size_t n = cps.size();
  offs.push_back(static_cast<uint32_t>(s.size()));
  const auto run = [&](size_t k, uint8_t c) {
    while (k < n && cls[k] == c) ++k;
    return k;
  };
  for (size_t i = 0; i < n;) {
    size_t j = 0;
    const char32_t c = cps[i];
    if (c == '\'' && i + 1 < n) {
      const char32_t c1 = cps[i + 1];
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        j = i + 2;
      } else if (i + 2 < n) {
        const char32_t c2 = cps[i + 2];
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
          j = i + 3;
      }
    }
    if (j == 0) {
      if (c == ' ' && i + 1 < n && cls[i + 1] != kSpace) {
        j = run(i + 1, cls[i + 1]);
      } else if (cls[i] != kSpace) {
        j = run(i, cls[i]);
      } else {
        // \s+(?!\S) keeps the last space for the next word; a lone space falls to \s+.
        const size_t end = run(i, kSpace);
        j = (end == n || end - 1 == i) ? end : end - 1;
      }
    }
    segs.push_back({offs[i], offs[j], true});
    i = j;
  }
}

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(Pieces& pieces) const = 0;
};
using PreTokenizerPtr = std::unique_ptr<const PreTokenizer>;

// Splits every piece by segments from `find`.
template <typename Find>
void split_all(Pieces& pieces, Behavior behavior, Find find) {
  Pieces out;
  out.reserve(pieces.size() * 2);
  std::vector<Seg> segs;
  for (const Piece& p : pieces) {
    find(std::string_view(p.text), segs);
    split_piece(p, segs, behavior, out);
  }
  pieces.swap(out);
}

class BertPreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(Pieces& pieces) const override {
    Pieces out;
    for (const Piece& p : pieces) {
      const std::string& s = p.text;
      size_t word = std::string::npos;
      const auto flush = [&](size_t end) {
        if (word != std::string::npos)
          out.push_back({s.substr(word, end - word), p.first && word == 0});
        word = std::string::npos;
      };
      for (size_t i = 0; i < s.size();) {
        const size_t b = i;
        const char32_t cp = next_cp(s, i);
        if (is_white_space(cp)) {
          flush(b);
        } else if (is_bert_punct(cp)) {
          flush(b);
          out.push_back({s.substr(b, i - b), p.first && b == 0});
        } else if (word == std::string::npos) {
          word = b;
        }
      }
      flush(s.size());
    }
    pieces.swap(out);
  }
};

// \w+|[^\w\s]+ kept, whitespace dropped: runs of word characters and runs of other characters.
class WhitespacePreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(Pieces& pieces) const override {
    split_all(pieces, Behavior::kRemoved, [](std::string_view s, std::vector<Seg>& segs) {
      const auto kind = [](char32_t cp) {
        return is_white_space(cp) ? 0 : is_word_char(cp) ? 1 : 2;
      };
      segs.clear();
      for (size_t i = 0; i < s.size();) {
        const size_t b = i;
        const int k = kind(next_cp(s, i));
        if (k == 0) {
          segs.push_back({b, i, true});
          continue;
        }
        for (size_t j = i; j < s.size() && kind(next_cp(s, j)) == k;) i = j;
        segs.push_back({b, i, false});
      }
    });
  }
};

class WhitespaceSplitPreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(Pieces& pieces) const override {
    split_all(pieces, Behavior::kRemoved, [](std::string_view s, std::vector<Seg>& segs) {
      char_segments(s, is_white_space, segs);
    });
  }
};

class PunctuationPreTokenizer final : public PreTokenizer {
 public:
  explicit PunctuationPreTokenizer(Behavior b) : behavior_(b) {}
  void pre_tokenize(Pieces& pieces) const override {
    split_all(pieces, behavior_, [](std::string_view s, std::vector<Seg>& segs) {
      char_segments(s, is_bert_punct, segs);
    });
  }

 private:
  Behavior behavior_;
};

class DigitsPreTokenizer final : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void pre_tokenize(Pieces& pieces) const override {
    split_all(
        pieces, individual_ ? Behavior::kIsolated : Behavior::kContiguous,
        [](std::string_view s, std::vector<Seg>& segs) { char_segments(s, is_number, segs); });
  }

 private:
  bool individual_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(std::optional<std::string> literal, Behavior b, bool invert)
      : literal_(std::move(literal)), behavior_(b), invert_(invert) {}
  void pre_tokenize(Pieces& pieces) const override {
    split_all(pieces, behavior_, [this](std::string_view s, std::vector<Seg>& segs) {
      if (literal_) {
        literal_segments(s, *literal_, segs);
      } else {
        gpt2_segments(s, segs);
      }
      if (invert_)
        for (Seg& seg : segs) seg.match = !seg.match;
    });
  }

 private:
  std::optional<std::string> literal_;  // nullopt: the GPT-2 regex
  Behavior behavior_;
  bool invert_;
};

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : rep_(std::move(replacement)), prepend_(prepend), split_(split) {}

  void pre_tokenize(Pieces& pieces) const override {
    Pieces out;
    std::vector<Seg> segs;
    for (Piece& p : pieces) {
      std::string s;
      s.reserve(p.text.size() + 8);
      for (char c : p.text) {
        if (c == ' ') {
          s += rep_;
        } else {
          s += c;
        }
      }
      const bool starts = s.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && p.first)))
        s.insert(0, rep_);
      Piece q{std::move(s), p.first};
      if (!split_) {
        if (!q.text.empty()) out.push_back(std::move(q));
        continue;
      }
      literal_segments(q.text, rep_, segs);
      split_piece(q, segs, Behavior::kMergedWithNext, out);
    }
    pieces.swap(out);
  }

 private:
  std::string rep_;
  Prepend prepend_;
  bool split_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}

  void pre_tokenize(Pieces& pieces) const override {
    Pieces split;
    std::vector<Seg> segs;
    for (Piece& p : pieces) {
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
      if (use_regex_) {
        gpt2_segments(p.text, segs);
        split_piece(p, segs, Behavior::kIsolated, split);
      } else if (!p.text.empty()) {
        split.push_back(std::move(p));
      }
    }
    const auto& table = byte_chars();
    for (Piece& p : split) {
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (char c : p.text) mapped += table[static_cast<unsigned char>(c)];
      p.text.swap(mapped);
    }
    pieces.swap(split);
  }

 private:
  bool add_prefix_space_, use_regex_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<PreTokenizerPtr> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(Pieces& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<PreTokenizerPtr> parts_;
};

Behavior parse_behavior(const Reader& r, const json& v, const std::string& where,
                        Behavior fallback) {
  const auto name = r.opt_string(v, "behavior", where);
  if (!name) return fallback;
  std::string n;
  for (char c : *name)
    if (c != '_') n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n == "removed") return Behavior::kRemoved;
  if (n == "isolated") return Behavior::kIsolated;
  if (n == "mergedwithprevious") return Behavior::kMergedWithPrevious;
  if (n == "mergedwithnext") return Behavior::kMergedWithNext;
  if (n == "contiguous") return Behavior::kContiguous;
  r.fail(where + ".behavior " + quote(*name) +
         " is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

PreTokenizerPtr make_pre_tokenizer(const Reader& r, const json& v, const std::string& where,
                                   int depth) {
  if (depth > kMaxNesting) r.fail(where + " nests Sequences too deeply");
  const std::string type = type_of(r, v, where);
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "Whitespace") return std::make_unique<WhitespacePreTokenizer>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
  if (type == "Punctuation")
    return std::make_unique<PunctuationPreTokenizer>(
        parse_behavior(r, v, where, Behavior::kIsolated));
  if (type == "Digits")
    return std::make_unique<DigitsPreTokenizer>(r.get_bool(v, "individual_digits", where, false));
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(r.get_bool(v, "add_prefix_space", where, true),
                                                   r.get_bool(v, "use_regex", where, true));
  }
  if (type == "Metaspace") {
    const std::string rep = r.opt_string(v, "replacement", where).value_or("\xE2\x96\x81");
    if (rep.empty() || utf8_count(rep) != 1)
      r.fail(where + ".replacement must be one character (got " + quote(rep) + ")");
    auto scheme = MetaspacePreTokenizer::Prepend::kAlways;
    const auto name = r.opt_string(v, "prepend_scheme", where);
    if (name) {
      if (*name == "always") {
        scheme = MetaspacePreTokenizer::Prepend::kAlways;
      } else if (*name == "first") {
        scheme = MetaspacePreTokenizer::Prepend::kFirst;
      } else if (*name == "never") {
        scheme = MetaspacePreTokenizer::Prepend::kNever;
      } else {
        r.fail(where + ".prepend_scheme " + quote(*name) + " is not one of always, first, never");
      }
    }
    if (r.opt_bool(v, "add_prefix_space", where) == false) {
      if (name && scheme != MetaspacePreTokenizer::Prepend::kNever)
        r.fail(where + ": add_prefix_space false contradicts prepend_scheme " + quote(*name));
      scheme = MetaspacePreTokenizer::Prepend::kNever;
    }
    return std::make_unique<MetaspacePreTokenizer>(rep, scheme,
                                                   r.get_bool(v, "split", where, true));
  }
  if (type == "Split") {
    const json* pattern = r.find(v, "pattern");
    if (!pattern) r.fail(where + ".pattern is missing");
    r.expect_object(*pattern, where + ".pattern");
    std::optional<std::string> literal;
    if (auto regex = r.opt_string(*pattern, "Regex", where + ".pattern")) {
      if (*regex != kGpt2Pattern)
        r.fail(where +
               ".pattern: Split with a Regex pattern is not supported (only String patterns "
               "and GPT-2's regex)");
    } else {
      literal = r.get_string(*pattern, "String", where + ".pattern");
    }
    if (!r.find(v, "behavior")) r.fail(where + ".behavior is missing");
    return std::make_unique<SplitPreTokenizer>(std::move(literal),
                                               parse_behavior(r, v, where, Behavior::kIsolated),
                                               r.get_bool(v, "invert", where, false));
  }
  if (type == "Sequence") {
    const json* list = r.find(v, "pretokenizers");
    if (!list || !list->is_array()) r.fail(where + ".pretokenizers must be an array");
    std::vector<PreTokenizerPtr> parts;
    for (size_t i = 0; i < list->size(); ++i)
      parts.push_back(make_pre_tokenizer(
          r, (*list)[i], where + ".pretokenizers[" + std::to_string(i) + "]", depth + 1));
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  unsupported(r, where, type,
              "BertPreTokenizer, ByteLevel, Whitespace, WhitespaceSplit, Metaspace, Punctuation, "
              "Digits, Split, Sequence");
}

// ---------------------------------------------------------------------------------------------
// Models

// Where tokens go: ids always, token strings only when someone displays them.
class TokenSink {
 public:
  TokenSink(std::vector<int64_t>& ids, std::vector<std::string>* tokens)
      : ids_(ids), tokens_(tokens) {}
  void add(int64_t id, std::string_view token) {
    ids_.push_back(id);
    if (tokens_) tokens_->emplace_back(token);
  }
  size_t size() const { return ids_.size(); }
  void truncate(size_t n) {
    ids_.resize(n);
    if (tokens_) tokens_->resize(n);
  }

 private:
  std::vector<int64_t>& ids_;
  std::vector<std::string>* tokens_;
};

uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
  }
  uint64_t w = 0;
  std::memcpy(&w, s.data() + i, s.size() - i);
  h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
  return h ^ (h >> 29);
}

// string_view -> index with open addressing: the lookups are the hot loop of every model, and a
// flat table costs one cache miss where std::unordered_map costs several. Keys must outlive it.
class StringIndex {
 public:
  void set(std::string_view key, uint32_t value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    const uint64_t h = hash_bytes(key);
    for (size_t pos = h & mask_;; pos = (pos + 1) & mask_) {
      Slot& s = slots_[pos];
      if (!s.used) {
        s = {h, key, value, true};
        ++size_;
        return;
      }
      if (s.hash == h && s.key == key) {
        s.value = value;
        return;
      }
    }
  }
  std::optional<uint32_t> find(std::string_view key) const {
    if (size_ == 0) return std::nullopt;
    const uint64_t h = hash_bytes(key);
    for (size_t pos = h & mask_;; pos = (pos + 1) & mask_) {
      const Slot& s = slots_[pos];
      if (!s.used) return std::nullopt;
      if (s.hash == h && s.key == key) return s.value;
    }
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    std::string_view key;
    uint32_t value = 0;
    bool used = false;
  };
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(std::max<size_t>(16, old.size() * 2), Slot{});
    mask_ = slots_.size() - 1;
    size_ = 0;
    for (const Slot& s : old)
      if (s.used) set(s.key, s.value);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

// Token strings with their ids. A deque keeps every string where it is, so the views in the
// index stay valid.
class Vocab {
 public:
  uint32_t add(std::string token, int64_t id) {
    const auto index = static_cast<uint32_t>(tokens_.size());
    tokens_.push_back(std::move(token));
    ids_.push_back(id);
    index_.set(tokens_.back(), index);
    max_bytes_ = std::max(max_bytes_, tokens_.back().size());
    return index;
  }
  std::optional<uint32_t> find(std::string_view token) const { return index_.find(token); }
  const std::string& token(uint32_t i) const { return tokens_[i]; }
  int64_t id(uint32_t i) const { return ids_[i]; }
  size_t size() const { return tokens_.size(); }
  size_t max_bytes() const { return max_bytes_; }
  int64_t max_id() const { return ids_.empty() ? -1 : *std::max_element(ids_.begin(), ids_.end()); }

 private:
  std::deque<std::string> tokens_;
  std::vector<int64_t> ids_;
  StringIndex index_;
  size_t max_bytes_ = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual void tokenize(std::string_view word, TokenSink& out) const = 0;
  virtual const char* type() const = 0;
  virtual const Vocab& vocab() const = 0;
};
using ModelPtr = std::unique_ptr<const Model>;

// Vocab from {"token": id, ...}.
Vocab read_vocab_object(const Reader& r, const json& v, const std::string& where) {
  if (!v.is_object())
    r.fail(where + " must be an object of token -> id (got " + v.type_name() + ")");
  Vocab vocab;
  for (auto it = v.begin(); it != v.end(); ++it)
    vocab.add(it.key(), r.as_int(it.value(), where + "[" + quote(it.key()) + "]", 0, kMaxId));
  return vocab;
}

std::array<int64_t, 256> byte_fallback_tokens(const Vocab& vocab) {
  std::array<int64_t, 256> table;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    const auto i = vocab.find(name);
    table[b] = i ? static_cast<int64_t>(*i) : -1;
  }
  return table;
}

class WordPieceModel final : public Model {
 public:
  WordPieceModel(const Reader& r, const json& v, const std::string& where) {
    const json* vocab = r.find(v, "vocab");
    if (!vocab) r.fail(where + ".vocab is missing");
    vocab_ = read_vocab_object(r, *vocab, where + ".vocab");
    const std::string unk = r.opt_string(v, "unk_token", where).value_or("[UNK]");
    const auto unk_index = vocab_.find(unk);
    if (!unk_index) r.fail(where + ".unk_token " + quote(unk) + " is not in the vocabulary");
    unk_ = *unk_index;
    prefix_ = r.opt_string(v, "continuing_subword_prefix", where).value_or("##");
    max_chars_ = static_cast<size_t>(
        r.opt_int(v, "max_input_chars_per_word", where, 0, kMaxId).value_or(100));
    for (uint32_t i = 0; i < vocab_.size(); ++i) {
      const std::string& t = vocab_.token(i);
      if (t.compare(0, prefix_.size(), prefix_) != 0) continue;
      std::string_view rest = std::string_view(t).substr(prefix_.size());
      continuation_.set(rest, i);
      max_cont_bytes_ = std::max(max_cont_bytes_, rest.size());
    }
  }

  void tokenize(std::string_view w, TokenSink& out) const override {
    if (utf8_count(w) > max_chars_) {
      out.add(vocab_.id(unk_), vocab_.token(unk_));
      return;
    }
    const size_t mark = out.size();
    for (size_t start = 0; start < w.size();) {
      const size_t limit = start == 0 ? vocab_.max_bytes() : max_cont_bytes_;
      size_t end = std::min(w.size(), start + limit);
      while (end > start && end < w.size() && is_cont_byte(w[end])) --end;
      std::optional<uint32_t> hit;
      while (end > start) {
        const std::string_view sub = w.substr(start, end - start);
        if (start == 0) {
          hit = vocab_.find(sub);
        } else {
          hit = continuation_.find(sub);
        }
        if (hit) break;
        --end;
        while (end > start && is_cont_byte(w[end])) --end;
      }
      if (!hit) {
        out.truncate(mark);
        out.add(vocab_.id(unk_), vocab_.token(unk_));
        return;
      }
      out.add(vocab_.id(*hit), vocab_.token(*hit));
      start = end;
    }
  }

  const char* type() const override { return "WordPiece"; }
  const Vocab& vocab() const override { return vocab_; }

 private:
  Vocab vocab_;
  StringIndex continuation_;  // "##ing" under "ing"
  uint32_t unk_ = 0;
  std::string prefix_;
  size_t max_chars_ = 100;
  size_t max_cont_bytes_ = 0;
};

uint64_t next_cache_id() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}

class BpeModel final : public Model {
 public:
  BpeModel(const Reader& r, const json& v, const std::string& where) {
    if (const json* d = r.find(v, "dropout")) {
      if (!d->is_number() || d->get<double>() != 0.0)
        r.fail(where + ".dropout must be null (BPE dropout is not supported)");
    }
    const json* vocab = r.find(v, "vocab");
    if (!vocab) r.fail(where + ".vocab is missing");
    vocab_ = read_vocab_object(r, *vocab, where + ".vocab");
    if (auto unk = r.opt_string(v, "unk_token", where)) {
      const auto i = vocab_.find(*unk);
      if (!i) r.fail(where + ".unk_token " + quote(*unk) + " is not in the vocabulary");
      unk_ = *i;
    }
    prefix_ = r.opt_string(v, "continuing_subword_prefix", where).value_or("");
    suffix_ = r.opt_string(v, "end_of_word_suffix", where).value_or("");
    fuse_unk_ = r.get_bool(v, "fuse_unk", where, false);
    byte_fallback_ = r.get_bool(v, "byte_fallback", where, false);
    ignore_merges_ = r.get_bool(v, "ignore_merges", where, false);
    bytes_ = byte_fallback_tokens(vocab_);
    chars_.assign(kCharTable, -1);
    for (char32_t cp = 0; cp < kCharTable; ++cp) {
      std::string c;
      append_utf8(cp, c);
      if (auto i = vocab_.find(c)) chars_[cp] = static_cast<int32_t>(*i);
    }
    read_merges(r, v, where);
  }

  void tokenize(std::string_view w, TokenSink& out) const override {
    std::vector<uint32_t>* cached = nullptr;
    WordCache& cache = word_cache();
    if (w.size() < kMaxCachedBytes) {
      auto it = cache.words.find(std::string(w));
      if (it != cache.words.end()) {
        for (uint32_t c : it->second) out.add(vocab_.id(c), vocab_.token(c));
        return;
      }
      if (cache.words.size() < kCacheWords) cached = &cache.words[std::string(w)];
    }
    const auto emit = [&](uint32_t c) {
      out.add(vocab_.id(c), vocab_.token(c));
      if (cached) cached->push_back(c);
    };
    if (ignore_merges_) {
      if (auto i = vocab_.find(w)) {
        emit(*i);
        return;
      }
    }
    // Per-thread scratch: no allocation per word, and a const model stays shareable.
    thread_local std::vector<Symbol> syms;
    syms.clear();
    const auto push = [&](uint32_t c, uint32_t len) { syms.push_back({c, 0, 0, len}); };
    bool pending = false;  // an unknown not yet pushed, so that fuse_unk can extend it
    uint32_t pending_len = 0;
    std::string buf;
    for (size_t i = 0; i < w.size();) {
      const size_t b = i;
      const char32_t cp = next_cp(w, i);
      const bool first = b == 0, last = i == w.size();
      std::string_view s = w.substr(b, i - b);
      std::optional<uint32_t> idx;
      if ((!first && !prefix_.empty()) || (last && !suffix_.empty())) {
        buf.assign(first ? "" : prefix_);
        buf.append(s);
        if (last) buf += suffix_;
        s = buf;
        idx = vocab_.find(s);
      } else if (cp < kCharTable) {
        if (chars_[cp] >= 0) idx = static_cast<uint32_t>(chars_[cp]);
      } else {
        idx = vocab_.find(s);
      }
      const auto byte_len = static_cast<uint32_t>(i - b);
      if (idx) {
        if (pending) push(*unk_, pending_len);
        pending = false;
        push(*idx, byte_len);
        continue;
      }
      if (byte_fallback_ && std::all_of(s.begin(), s.end(), [&](char c) {
            return bytes_[static_cast<unsigned char>(c)] >= 0;
          })) {
        // As the crate: a pending unknown is not flushed before the byte tokens.
        for (char c : s) push(static_cast<uint32_t>(bytes_[static_cast<unsigned char>(c)]), 1);
        continue;
      }
      if (!unk_) continue;
      if (pending && fuse_unk_) {
        pending_len += byte_len;
      } else {
        if (pending) push(*unk_, pending_len);
        pending = true;
        pending_len = byte_len;
      }
    }
    if (pending) push(*unk_, pending_len);
    if (syms.size() > 1) merge_all(syms);
    for (const Symbol& sym : syms)
      if (sym.len != 0) emit(sym.c);
  }

  const char* type() const override { return "BPE"; }
  const Vocab& vocab() const override { return vocab_; }

 private:
  struct Symbol {
    uint32_t c;
    int32_t prev, next;
    uint32_t len;  // bytes; 0 once merged into its left neighbour
  };
  struct Merge {
    uint32_t rank, merged;
  };
  static constexpr char32_t kCharTable = 0x800;  // single characters looked up without hashing
  // Like the crate, each thread caches the merges of up to kCacheWords words shorter than
  // kMaxCachedBytes, for at most kCachedModels models at a time, so memory stays bounded.
  static constexpr size_t kCacheWords = 10000, kMaxCachedBytes = 256, kCachedModels = 4;

  struct WordCache {
    uint64_t owner = 0;
    std::unordered_map<std::string, std::vector<uint32_t>> words;
  };

  WordCache& word_cache() const {
    thread_local std::array<WordCache, kCachedModels> caches;
    thread_local size_t victim = 0;
    for (WordCache& c : caches)
      if (c.owner == cache_id_) return c;
    WordCache& c = caches[victim++ % kCachedModels];
    c.owner = cache_id_;
    c.words.clear();
    return c;
  }

  // (left, right) -> merge with open addressing; the merge lookups are BPE's hot loop.
  class MergeMap {
   public:
    void reserve(size_t n) {
      size_t cap = 16;
      while (cap < n * 2) cap *= 2;
      slots_.assign(cap, Slot{});
      mask_ = cap - 1;
    }
    void set(uint64_t key, Merge m) {
      for (size_t pos = mix(key) & mask_;; pos = (pos + 1) & mask_) {
        Slot& s = slots_[pos];
        if (s.key == kEmpty || s.key == key) {
          s = {key, m};
          return;
        }
      }
    }
    const Merge* find(uint64_t key) const {
      for (size_t pos = mix(key) & mask_;; pos = (pos + 1) & mask_) {
        const Slot& s = slots_[pos];
        if (s.key == key) return &s.value;
        if (s.key == kEmpty) return nullptr;
      }
    }

   private:
    static uint64_t mix(uint64_t k) {
      k ^= k >> 33;
      k *= 0xFF51AFD7ED558CCDull;
      return k ^ (k >> 33);
    }
    static constexpr uint64_t kEmpty = ~0ull;  // no pair of u32 vocab indices is this
    struct Slot {
      uint64_t key = kEmpty;
      Merge value{};
    };
    std::vector<Slot> slots_;
    size_t mask_ = 0;
  };

  static uint64_t key(uint32_t a, uint32_t b) { return (static_cast<uint64_t>(a) << 32) | b; }

  const Merge* find_merge(uint32_t a, uint32_t b) const { return merges_.find(key(a, b)); }

  void read_merges(const Reader& r, const json& v, const std::string& where) {
    const json* merges = r.find(v, "merges");
    if (!merges) r.fail(where + ".merges is missing");
    if (!merges->is_array())
      r.fail(where + ".merges must be an array (got " + merges->type_name() + ")");
    merges_.reserve(merges->size());
    uint32_t rank = 0;
    for (size_t i = 0; i < merges->size(); ++i) {
      const json& m = (*merges)[i];
      const std::string at = where + ".merges[" + std::to_string(i) + "]";
      std::string a, b;
      if (m.is_string()) {
        const std::string line = m.get<std::string>();
        if (line.rfind("#version", 0) == 0) continue;
        const size_t sp = line.find(' ');
        if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
          r.fail(at + " " + quote(line) + " is not two tokens separated by one space");
        a = line.substr(0, sp);
        b = line.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        r.fail(at + " must be \"a b\" or [\"a\", \"b\"]");
      }
      const auto ia = vocab_.find(a), ib = vocab_.find(b);
      if (!ia) r.fail(at + " names token " + quote(a) + " that is not in the vocabulary");
      if (!ib) r.fail(at + " names token " + quote(b) + " that is not in the vocabulary");
      if (b.compare(0, prefix_.size(), prefix_) != 0)
        r.fail(at + " token " + quote(b) + " lacks the continuing_subword_prefix " +
               quote(prefix_));
      const std::string merged = a + b.substr(prefix_.size());
      const auto im = vocab_.find(merged);
      if (!im) r.fail(at + " makes token " + quote(merged) + " that is not in the vocabulary");
      merges_.set(key(*ia, *ib), Merge{rank++, *im});
    }
  }

  // Word::merge_all: lowest rank first, leftmost among equal ranks, stale entries skipped.
  void merge_all(std::vector<Symbol>& syms) const {
    const auto n = static_cast<int32_t>(syms.size());
    for (int32_t i = 0; i < n; ++i) {
      syms[i].prev = i - 1;
      syms[i].next = i + 1 < n ? i + 1 : -1;
    }
    struct Cand {
      uint32_t rank;
      int32_t pos;
      uint32_t merged;
    };
    const auto later = [](const Cand& x, const Cand& y) {
      return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
    };
    thread_local std::vector<Cand> heap;
    heap.clear();
    const auto push = [&](const Merge* m, int32_t pos) {
      heap.push_back({m->rank, pos, m->merged});
      std::push_heap(heap.begin(), heap.end(), later);
    };
    for (int32_t i = 0; i + 1 < n; ++i)
      if (const Merge* m = find_merge(syms[i].c, syms[i + 1].c)) push(m, i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const Cand top = heap.back();
      heap.pop_back();
      Symbol& cur = syms[top.pos];
      if (cur.len == 0 || cur.next == -1) continue;
      const int32_t next_pos = cur.next;
      const Symbol right = syms[next_pos];
      const Merge* m = find_merge(cur.c, right.c);
      if (!m || m->merged != top.merged) continue;
      cur.c = top.merged;
      cur.len += right.len;
      cur.next = right.next;
      syms[next_pos].len = 0;
      if (right.next > -1 && right.next < n) syms[right.next].prev = top.pos;
      if (cur.prev >= 0) {
        if (const Merge* pm = find_merge(syms[cur.prev].c, cur.c)) push(pm, cur.prev);
      }
      if (cur.next >= 0 && cur.next < n) {
        if (const Merge* nm = find_merge(cur.c, syms[cur.next].c)) push(nm, top.pos);
      }
    }
  }

  uint64_t cache_id_ = next_cache_id();
  Vocab vocab_;
  MergeMap merges_;
  std::vector<int32_t>
      chars_;  // code point < kCharTable -> vocab index of that one-character token
  std::optional<uint32_t> unk_;
  std::string prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::array<int64_t, 256> bytes_{};
};

class UnigramModel final : public Model {
 public:
  UnigramModel(const Reader& r, const json& v, const std::string& where) : what_(r.what()) {
    const json* vocab = r.find(v, "vocab");
    if (!vocab) r.fail(where + ".vocab is missing");
    if (!vocab->is_array() || vocab->empty())
      r.fail(where + ".vocab must be a non-empty array of [piece, score]");
    for (size_t i = 0; i < vocab->size(); ++i) {
      const json& e = (*vocab)[i];
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
        r.fail(where + ".vocab[" + std::to_string(i) + "] must be [piece, score]");
      vocab_.add(e[0].get<std::string>(), static_cast<int64_t>(i));
      scores_.push_back(e[1].get<double>());
    }
    if (auto unk = r.opt_int(v, "unk_id", where, 0, static_cast<int64_t>(scores_.size()) - 1))
      unk_ = static_cast<uint32_t>(*unk);
    byte_fallback_ = r.get_bool(v, "byte_fallback", where, false);
    unk_score_ = *std::min_element(scores_.begin(), scores_.end()) - kUnigramUnkPenalty;
    bytes_ = byte_fallback_tokens(vocab_);
  }

  // Unigram::encode_optimized (Viterbi), then ids with unknowns fused as the crate does.
  void tokenize(std::string_view w, TokenSink& out) const override {
    struct Best {
      double score = 0;
      int64_t start = -1;
      uint32_t index = 0;
    };
    const size_t n = w.size();
    std::vector<Best> best(n + 1);
    for (size_t s = 0; s < n;) {
      const size_t mblen = utf8_len(w[s]);
      const double base = best[s].score;
      bool single = false;
      const size_t limit = std::min(n, s + vocab_.max_bytes());
      for (size_t e = s + mblen; e <= limit;) {
        if (auto idx = vocab_.find(w.substr(s, e - s))) {
          const double cand = scores_[*idx] + base;
          Best& t = best[e];
          if (t.start < 0 || cand > t.score) t = {cand, static_cast<int64_t>(s), *idx};
          single = single || e - s == mblen;
        }
        if (e == n) break;
        e += utf8_len(w[e]);
      }
      if (!single) {
        if (!unk_)
          throw Error("tokenizer " + quote(what_, std::string::npos) +
                      ": Unigram model has no unk_id to encode " + quote(w.substr(s, mblen)));
        const double cand = unk_score_ + base;
        Best& t = best[s + mblen];
        if (t.start < 0 || cand > t.score) t = {cand, static_cast<int64_t>(s), *unk_};
      }
      s += mblen;
    }
    std::vector<std::pair<size_t, size_t>> spans;  // reversed
    size_t fused_end = 0;
    bool fusing = false;
    for (size_t end = n; end > 0;) {
      const Best& node = best[end];
      const auto start = static_cast<size_t>(node.start);
      if (unk_ && node.index == *unk_) {
        if (!fusing) fused_end = end;
        fusing = true;
      } else {
        if (fusing) spans.emplace_back(end, fused_end);
        fusing = false;
        spans.emplace_back(start, end);
      }
      end = start;
    }
    if (fusing) spans.emplace_back(0, fused_end);
    for (auto it = spans.rbegin(); it != spans.rend(); ++it)
      emit(w.substr(it->first, it->second - it->first), out);
  }

  const char* type() const override { return "Unigram"; }
  const Vocab& vocab() const override { return vocab_; }

 private:
  void emit(std::string_view piece, TokenSink& out) const {
    if (auto idx = vocab_.find(piece)) {
      out.add(vocab_.id(*idx), piece);
      return;
    }
    if (byte_fallback_ && std::all_of(piece.begin(), piece.end(), [&](char c) {
          return bytes_[static_cast<unsigned char>(c)] >= 0;
        })) {
      for (char c : piece) {
        const auto i = static_cast<uint32_t>(bytes_[static_cast<unsigned char>(c)]);
        out.add(vocab_.id(i), vocab_.token(i));
      }
      return;
    }
    if (!unk_)
      throw Error("tokenizer " + quote(what_, std::string::npos) +
                  ": Unigram model has no unk_id to encode " + quote(piece));
    out.add(vocab_.id(*unk_), piece);
  }

  std::string what_;
  Vocab vocab_;
  std::vector<double> scores_;
  std::optional<uint32_t> unk_;
  bool byte_fallback_ = false;
  double unk_score_ = 0;
  std::array<int64_t, 256> bytes_{};
};

ModelPtr make_model(const Reader& r, const json& v) {
  const std::string where = "model";
  r.expect_object(v, where);
  std::string type;
  if (auto t = r.opt_string(v, "type", where)) {
    type = *t;
  } else if (r.find(v, "merges")) {
    type = "BPE";
  } else if (const json* vocab = r.find(v, "vocab"); vocab && vocab->is_array()) {
    type = "Unigram";
  } else if (r.find(v, "continuing_subword_prefix")) {
    type = "WordPiece";
  } else {
    r.fail("model.type is missing and the model is not recognisably BPE, WordPiece or Unigram");
  }
  if (type == "WordPiece") return std::make_unique<WordPieceModel>(r, v, where);
  if (type == "BPE") return std::make_unique<BpeModel>(r, v, where);
  if (type == "Unigram") return std::make_unique<UnigramModel>(r, v, where);
  unsupported(r, where, type, "WordPiece, BPE, Unigram");
}

// ---------------------------------------------------------------------------------------------
// Post-processors

struct Enc {
  std::vector<int64_t> ids, type_ids;
  std::vector<std::string> tokens;

  size_t size() const { return ids.size(); }
  void append(int64_t id, int64_t type, const std::string& token) {
    ids.push_back(id);
    type_ids.push_back(type);
    tokens.push_back(token);
  }
  void append(const Enc& o) {
    ids.insert(ids.end(), o.ids.begin(), o.ids.end());
    type_ids.insert(type_ids.end(), o.type_ids.begin(), o.type_ids.end());
    tokens.insert(tokens.end(), o.tokens.begin(), o.tokens.end());
  }
  void truncate(size_t n) {
    if (n >= ids.size()) return;
    ids.resize(n);
    type_ids.resize(n);
    tokens.resize(n);
  }
};

struct SpecialToken {
  std::string token;
  int64_t id;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual size_t added_tokens(bool pair) const = 0;
  // PostProcessor::process_encodings: may add special tokens and change type ids.
  virtual void process(std::vector<Enc>& encs, bool add_special) const = 0;
};
using PostProcessorPtr = std::unique_ptr<const PostProcessor>;

class BertProcessing final : public PostProcessor {
 public:
  BertProcessing(SpecialToken cls, SpecialToken sep) : cls_(std::move(cls)), sep_(std::move(sep)) {}
  size_t added_tokens(bool pair) const override { return pair ? 3 : 2; }
  void process(std::vector<Enc>& encs, bool add_special) const override {
    if (!add_special) return;
    for (size_t i = 0; i < encs.size(); ++i) {
      Enc out;
      if (i == 0) out.append(cls_.id, 0, cls_.token);
      out.append(encs[i]);
      out.append(sep_.id, i == 0 ? 0 : 1, sep_.token);
      encs[i] = std::move(out);
    }
  }

 private:
  SpecialToken cls_, sep_;
};

class RobertaProcessing final : public PostProcessor {
 public:
  RobertaProcessing(SpecialToken cls, SpecialToken sep)
      : cls_(std::move(cls)), sep_(std::move(sep)) {}
  size_t added_tokens(bool pair) const override { return pair ? 4 : 2; }
  void process(std::vector<Enc>& encs, bool add_special) const override {
    for (Enc& e : encs) std::fill(e.type_ids.begin(), e.type_ids.end(), 0);  // as the crate: all 0
    if (!add_special) return;
    for (size_t i = 0; i < encs.size(); ++i) {
      Enc out;
      out.append(i == 0 ? cls_.id : sep_.id, 0, i == 0 ? cls_.token : sep_.token);
      out.append(encs[i]);
      out.append(sep_.id, 0, sep_.token);
      encs[i] = std::move(out);
    }
  }

 private:
  SpecialToken cls_, sep_;
};

class TemplateProcessing final : public PostProcessor {
 public:
  struct Item {
    int sequence;  // 0 = A, 1 = B, -1 = a special token
    std::string special;
    int64_t type_id;
  };
  struct Special {
    std::vector<int64_t> ids;
    std::vector<std::string> tokens;
  };

  TemplateProcessing(std::vector<Item> single, std::vector<Item> pair,
                     std::unordered_map<std::string, Special> specials)
      : single_(std::move(single)), pair_(std::move(pair)), specials_(std::move(specials)) {}

  size_t added_tokens(bool pair) const override {
    size_t n = 0;
    for (const Item& it : pair ? pair_ : single_)
      if (it.sequence < 0) n += specials_.at(it.special).ids.size();
    return n;
  }

  void process(std::vector<Enc>& encs, bool add_special) const override {
    std::vector<Enc> out;
    for (const Item& it : encs.size() == 2 ? pair_ : single_) {
      if (it.sequence >= 0) {
        Enc e = encs[static_cast<size_t>(it.sequence)];
        std::fill(e.type_ids.begin(), e.type_ids.end(), it.type_id);
        out.push_back(std::move(e));
      } else if (add_special) {
        const Special& sp = specials_.at(it.special);
        Enc e;
        for (size_t k = 0; k < sp.ids.size(); ++k) e.append(sp.ids[k], it.type_id, sp.tokens[k]);
        out.push_back(std::move(e));
      }
    }
    encs = std::move(out);
  }

 private:
  std::vector<Item> single_, pair_;
  std::unordered_map<std::string, Special> specials_;
};

class ByteLevelProcessing final : public PostProcessor {
 public:
  size_t added_tokens(bool) const override { return 0; }
  void process(std::vector<Enc>&, bool) const override {}
};

class SequenceProcessing final : public PostProcessor {
 public:
  explicit SequenceProcessing(std::vector<PostProcessorPtr> parts) : parts_(std::move(parts)) {}
  size_t added_tokens(bool pair) const override {
    size_t n = 0;
    for (const auto& p : parts_) n += p->added_tokens(pair);
    return n;
  }
  void process(std::vector<Enc>& encs, bool add_special) const override {
    for (const auto& p : parts_) p->process(encs, add_special);
  }

 private:
  std::vector<PostProcessorPtr> parts_;
};

SpecialToken read_special_pair(const Reader& r, const json& v, const char* key,
                               const std::string& where) {
  const json* p = r.find(v, key);
  const std::string at = Reader::field(where, key);
  if (!p) r.fail(at + " is missing");
  if (!p->is_array() || p->size() != 2 || !(*p)[0].is_string()) r.fail(at + " must be [token, id]");
  return {(*p)[0].get<std::string>(), r.as_int((*p)[1], at + "[1]", 0, kMaxId)};
}

std::vector<TemplateProcessing::Item> read_template(const Reader& r, const json& v, const char* key,
                                                    const std::string& where) {
  const json* list = r.find(v, key);
  const std::string at = Reader::field(where, key);
  if (!list || !list->is_array())
    r.fail(at + " must be an array of {\"Sequence\"|\"SpecialToken\": ...}");
  std::vector<TemplateProcessing::Item> items;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& e = (*list)[i];
    const std::string ei = at + "[" + std::to_string(i) + "]";
    r.expect_object(e, ei);
    if (const json* s = r.find(e, "Sequence")) {
      r.expect_object(*s, ei + ".Sequence");
      const std::string id = r.get_string(*s, "id", ei + ".Sequence");
      if (id != "A" && id != "B")
        r.fail(ei + ".Sequence.id must be A or B (got " + quote(id) + ")");
      items.push_back({id == "A" ? 0 : 1, "",
                       r.opt_int(*s, "type_id", ei + ".Sequence", 0, kMaxId).value_or(0)});
    } else if (const json* t = r.find(e, "SpecialToken")) {
      r.expect_object(*t, ei + ".SpecialToken");
      items.push_back({-1, r.get_string(*t, "id", ei + ".SpecialToken"),
                       r.opt_int(*t, "type_id", ei + ".SpecialToken", 0, kMaxId).value_or(0)});
    } else {
      r.fail(ei + " must hold \"Sequence\" or \"SpecialToken\"");
    }
  }
  return items;
}

PostProcessorPtr make_post_processor(const Reader& r, const json& v, const std::string& where,
                                     int depth) {
  if (depth > kMaxNesting) r.fail(where + " nests Sequences too deeply");
  const std::string type = type_of(r, v, where);
  if (type == "BertProcessing")
    return std::make_unique<BertProcessing>(read_special_pair(r, v, "cls", where),
                                            read_special_pair(r, v, "sep", where));
  if (type == "RobertaProcessing")
    return std::make_unique<RobertaProcessing>(read_special_pair(r, v, "cls", where),
                                               read_special_pair(r, v, "sep", where));
  if (type == "ByteLevel") return std::make_unique<ByteLevelProcessing>();
  if (type == "TemplateProcessing") {
    auto single = read_template(r, v, "single", where);
    auto pair = read_template(r, v, "pair", where);
    std::unordered_map<std::string, TemplateProcessing::Special> specials;
    if (const json* st = r.find(v, "special_tokens")) {
      r.expect_object(*st, where + ".special_tokens");
      for (auto it = st->begin(); it != st->end(); ++it) {
        const std::string at = where + ".special_tokens[" + quote(it.key()) + "]";
        r.expect_object(it.value(), at);
        const json* ids = r.find(it.value(), "ids");
        const json* tokens = r.find(it.value(), "tokens");
        if (!ids || !ids->is_array() || !tokens || !tokens->is_array() ||
            ids->size() != tokens->size())
          r.fail(at + " must have arrays ids and tokens of equal length");
        TemplateProcessing::Special sp;
        for (size_t k = 0; k < ids->size(); ++k) {
          sp.ids.push_back(r.as_int((*ids)[k], at + ".ids", 0, kMaxId));
          if (!(*tokens)[k].is_string()) r.fail(at + ".tokens must be strings");
          sp.tokens.push_back((*tokens)[k].get<std::string>());
        }
        specials.emplace(it.key(), std::move(sp));
      }
    }
    bool has_a = false, has_b = false;
    for (const auto& it : pair) (it.sequence == 0 ? has_a : has_b) |= it.sequence >= 0;
    if (!has_a || !has_b) r.fail(where + ".pair must use both sequences A and B");
    for (const auto& it : single)
      if (it.sequence == 1) r.fail(where + ".single must not use sequence B");
    for (const auto* list : {&single, &pair})
      for (const auto& it : *list)
        if (it.sequence < 0 && !specials.count(it.special))
          r.fail(where + " uses special token " + quote(it.special) +
                 " missing from special_tokens");
    return std::make_unique<TemplateProcessing>(std::move(single), std::move(pair),
                                                std::move(specials));
  }
  if (type == "Sequence") {
    const json* list = r.find(v, "processors");
    if (!list || !list->is_array()) r.fail(where + ".processors must be an array");
    std::vector<PostProcessorPtr> parts;
    for (size_t i = 0; i < list->size(); ++i)
      parts.push_back(make_post_processor(
          r, (*list)[i], where + ".processors[" + std::to_string(i) + "]", depth + 1));
    return std::make_unique<SequenceProcessing>(std::move(parts));
  }
  unsupported(r, where, type,
              "BertProcessing, RobertaProcessing, TemplateProcessing, ByteLevel, Sequence");
}

// ---------------------------------------------------------------------------------------------
// Added tokens

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// Leftmost-longest matching of the added tokens' texts, as the crate's Aho-Corasick automaton.
class TokenTrie {
 public:
  void insert(std::string_view pattern, uint32_t value) {
    uint32_t node = 0;
    for (char ch : pattern) {
      const auto c = static_cast<unsigned char>(ch);
      uint32_t child = 0;
      for (const auto& [k, n] : nodes_[node].next)
        if (k == c) child = n;
      if (child == 0) {
        child = static_cast<uint32_t>(nodes_.size());
        nodes_[node].next.emplace_back(c, child);
        nodes_.emplace_back();
      }
      node = child;
    }
    nodes_[node].value = value;
    first_[static_cast<unsigned char>(pattern[0])] = true;
    empty_ = false;
  }
  bool empty() const { return empty_; }

  // Length of the longest pattern at s[pos] (0 if none) and its value.
  size_t longest_at(std::string_view s, size_t pos, uint32_t& value) const {
    if (!first_[static_cast<unsigned char>(s[pos])]) return 0;
    uint32_t node = 0;
    size_t best = 0;
    for (size_t i = pos; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      uint32_t child = 0;
      for (const auto& [k, n] : nodes_[node].next)
        if (k == c) child = n;
      if (child == 0) break;
      node = child;
      if (nodes_[node].value >= 0) {
        best = i + 1 - pos;
        value = static_cast<uint32_t>(nodes_[node].value);
      }
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, uint32_t>> next;
    int64_t value = -1;
  };
  std::vector<Node> nodes_{1};
  std::array<bool, 256> first_{};
  bool empty_ = true;
};

struct TextSplit {
  size_t begin, end;
  int64_t token;  // index into the added tokens, -1 for text
};

char32_t cp_before(std::string_view s, size_t end) {
  size_t b = end - 1;
  while (b > 0 && is_cont_byte(s[b])) --b;
  return next_cp(s, b);
}

// AddedVocabulary::find_matches, with single_word, lstrip and rstrip.
std::vector<TextSplit> find_added(std::string_view s, const TokenTrie& trie,
                                  const std::vector<AddedToken>& added) {
  std::vector<TextSplit> out;
  size_t start_offset = 0;
  if (!trie.empty()) {
    for (size_t pos = 0; pos < s.size();) {
      uint32_t index = 0;
      const size_t len = trie.longest_at(s, pos, index);
      if (len == 0) {
        ++pos;
        continue;
      }
      const AddedToken& t = added[index];
      size_t start = pos, stop = pos + len;
      pos = stop;
      if (start < start_offset) continue;
      if (t.single_word) {
        const bool start_space = start == 0 || !is_word_char(cp_before(s, start));
        size_t k = stop;
        const bool stop_space = stop == s.size() || !is_word_char(next_cp(s, k));
        if (!start_space || !stop_space) continue;
      }
      if (t.lstrip) {
        size_t b = start;
        while (b > start_offset) {
          size_t at = b - 1;
          while (at > 0 && is_cont_byte(s[at])) --at;
          size_t k = at;
          if (!is_white_space(next_cp(s, k))) break;
          b = at;
        }
        start = b;
      }
      if (t.rstrip) {
        while (stop < s.size()) {
          size_t k = stop;
          if (!is_white_space(next_cp(s, k))) break;
          stop = k;
        }
      }
      if (start_offset < start) out.push_back({start_offset, start, -1});
      out.push_back({start, stop, static_cast<int64_t>(index)});
      start_offset = stop;
      pos = std::max(pos, stop);
    }
  }
  if (start_offset < s.size()) out.push_back({start_offset, s.size(), -1});
  return out;
}

int64_t checked_length(const std::string& what, int64_t max_length) {
  if (max_length < 0)
    throw Error("tokenizer " + quote(what, std::string::npos) + ": max_length must be >= 0 (got " +
                std::to_string(max_length) + ")");
  return max_length;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error("tokenizer " + quote(path, std::string::npos) + ": cannot open the file (" +
                std::strerror(errno) + ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad())
    throw Error("tokenizer " + quote(path, std::string::npos) + ": cannot read the file");
  return ss.str();
}

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct HfTokenizer::Impl {
  std::string what;
  std::string json_text;  // canonical tokenizer.json, for to_json
  NormalizerPtr normalizer;
  PreTokenizerPtr pre_tokenizer;
  ModelPtr model;
  PostProcessorPtr post_processor;
  std::vector<AddedToken> added;
  std::unordered_map<std::string, int64_t> added_ids;
  TokenTrie raw_trie, normalized_trie;
  std::optional<int64_t> pad_id;
  int64_t pad_type_id = 0;
  std::string pad_token;
  int64_t vocab_size = 0;

  static std::shared_ptr<const Impl> build(const json& root, const std::string& what);

  std::optional<int64_t> token_to_id(const std::string& token) const {
    auto it = added_ids.find(token);
    if (it != added_ids.end()) return it->second;
    if (auto i = model->vocab().find(token)) return model->vocab().id(*i);
    return std::nullopt;
  }

  [[noreturn]] void fail(const std::string& message) const {
    throw Error("tokenizer " + quote(what, std::string::npos) + ": " + message);
  }

  // One text through added tokens, normalizer, pre-tokenizer and model.
  void encode_sequence(const std::string& raw, std::vector<int64_t>& ids,
                       std::vector<std::string>* tokens) const {
    const std::string fixed = is_valid_utf8(raw) ? std::string() : sanitize_utf8(raw);
    const std::string& text = fixed.empty() ? raw : fixed;
    TokenSink out(ids, tokens);
    Pieces pieces;
    for (const TextSplit& seg : find_added(text, raw_trie, added)) {
      if (seg.token >= 0) {
        const AddedToken& t = added[static_cast<size_t>(seg.token)];
        out.add(t.id, t.content);
        continue;
      }
      std::string normalized = text.substr(seg.begin, seg.end - seg.begin);
      if (normalizer) normalizer->normalize(normalized);
      for (const TextSplit& sub : find_added(normalized, normalized_trie, added)) {
        if (sub.token >= 0) {
          const AddedToken& t = added[static_cast<size_t>(sub.token)];
          out.add(t.id, t.content);
          continue;
        }
        if (sub.end == sub.begin) continue;
        pieces.clear();
        pieces.push_back(
            {normalized.substr(sub.begin, sub.end - sub.begin), seg.begin == 0 && sub.begin == 0});
        if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces);
        for (const Piece& p : pieces)
          if (!p.text.empty()) model->tokenize(p.text, out);
      }
    }
  }

  Enc encode_enc(const std::string& text, int64_t type) const {
    Enc e;
    encode_sequence(text, e.ids, &e.tokens);
    e.type_ids.assign(e.ids.size(), type);
    return e;
  }

  // truncate_encodings from the crate, on the model tokens before special tokens are added.
  void truncate(std::vector<Enc>& encs, size_t max_length, const std::string& strategy) const {
    if (max_length == 0) {
      for (Enc& e : encs) e.truncate(0);
      return;
    }
    size_t total = 0;
    for (const Enc& e : encs) total += e.size();
    if (total <= max_length) return;
    const size_t to_remove = total - max_length;
    if (strategy == "longest_first") {
      if (encs.size() == 1) {
        encs[0].truncate(max_length);
        return;
      }
      const auto [n1, n2] = longest_first_lengths(encs[0].size(), encs[1].size(), max_length);
      encs[0].truncate(n1);
      encs[1].truncate(n2);
      return;
    }
    const bool first = strategy == "only_first";
    if (!first && encs.size() < 2)
      fail("truncation_strategy only_second needs a text pair (the sample has " +
           std::to_string(total) + " tokens, more than " + std::to_string(max_length) + ")");
    Enc& target = encs[first ? 0 : 1];
    if (target.size() <= to_remove)
      fail("truncation_strategy " + strategy + " must cut " + std::to_string(to_remove) +
           " tokens but the " + (first ? "first" : "second") + " text has only " +
           std::to_string(target.size()));
    target.truncate(target.size() - to_remove);
  }
};

std::pair<size_t, size_t> longest_first_lengths(size_t n1, size_t n2, size_t budget) {
  const bool swap = n1 > n2;
  if (swap) std::swap(n1, n2);
  n2 = n1 > budget ? n1 : std::max(n1, budget - n1);
  if (n1 + n2 > budget) {
    n1 = budget / 2;
    n2 = n1 + budget % 2;
  }
  if (swap) std::swap(n1, n2);
  return {n1, n2};
}

std::shared_ptr<const HfTokenizer::Impl> HfTokenizer::Impl::build(const json& root,
                                                                  const std::string& what) {
  const Reader r(what);
  r.expect_object(root, "the top level");
  std::vector<std::pair<const json*, int>> stack{{&root, 0}};
  while (!stack.empty()) {
    const auto [v, depth] = stack.back();
    stack.pop_back();
    if (depth > kMaxJsonDepth)
      r.fail("JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    if (v->is_structured())
      for (const json& child : *v) stack.emplace_back(&child, depth + 1);
  }
  auto impl = std::make_shared<Impl>();
  impl->what = what;
  const json* model = r.find(root, "model");
  if (!model) r.fail("model is missing");
  impl->model = make_model(r, *model);
  if (const json* n = r.find(root, "normalizer"))
    impl->normalizer = make_normalizer(r, *n, "normalizer", 0);
  if (const json* p = r.find(root, "pre_tokenizer"))
    impl->pre_tokenizer = make_pre_tokenizer(r, *p, "pre_tokenizer", 0);
  if (const json* p = r.find(root, "post_processor"))
    impl->post_processor = make_post_processor(r, *p, "post_processor", 0);

  impl->vocab_size = impl->model->vocab().max_id() + 1;
  if (const json* list = r.find(root, "added_tokens")) {
    if (!list->is_array()) r.fail("added_tokens must be an array");
    for (size_t i = 0; i < list->size(); ++i) {
      const json& e = (*list)[i];
      const std::string at = "added_tokens[" + std::to_string(i) + "]";
      r.expect_object(e, at);
      AddedToken t;
      t.content = r.get_string(e, "content", at);
      t.id = r.get_int(e, "id", at, 0, kMaxId);
      t.special = r.get_bool(e, "special", at, false);
      t.single_word = r.get_bool(e, "single_word", at, false);
      t.lstrip = r.get_bool(e, "lstrip", at, false);
      t.rstrip = r.get_bool(e, "rstrip", at, false);
      t.normalized = r.get_bool(e, "normalized", at, !t.special);
      if (t.content.empty()) continue;
      impl->vocab_size = std::max(impl->vocab_size, t.id + 1);
      impl->added_ids[t.content] = t.id;
      const auto index = static_cast<uint32_t>(impl->added.size());
      if (t.normalized) {
        std::string pattern = t.content;
        if (impl->normalizer) impl->normalizer->normalize(pattern);
        if (!pattern.empty()) impl->normalized_trie.insert(pattern, index);
      } else {
        impl->raw_trie.insert(t.content, index);
      }
      impl->added.push_back(std::move(t));
    }
  }

  if (const json* pad = r.find(root, "padding")) {
    r.expect_object(*pad, "padding");
    impl->pad_id = r.opt_int(*pad, "pad_id", "padding", 0, kMaxId).value_or(0);
    impl->pad_type_id = r.opt_int(*pad, "pad_type_id", "padding", 0, kMaxId).value_or(0);
    impl->pad_token = r.opt_string(*pad, "pad_token", "padding").value_or("[PAD]");
  } else {
    for (const char* name : {"[PAD]", "<pad>"}) {
      if (auto id = impl->token_to_id(name)) {
        impl->pad_id = id;
        impl->pad_token = name;
        break;
      }
    }
  }
  impl->json_text = root.dump();
  return impl;
}

HfTokenizer HfTokenizer::from_tokenizer_json(const std::string& path) {
  return from_tokenizer_json_text(read_file(path), path);
}

HfTokenizer HfTokenizer::from_tokenizer_json_text(const std::string& json_text,
                                                  const std::string& what) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error("tokenizer " + quote(what, std::string::npos) + ": not valid JSON (" +
                one_line(e.what()) + ")");
  }
  try {
    return HfTokenizer(Impl::build(root, what));
  } catch (const json::exception& e) {
    throw Error("tokenizer " + quote(what, std::string::npos) + ": unexpected content (" +
                one_line(e.what()) + ")");
  }
}

// The tokenizer.json that transformers' BertConverter makes from a vocab.txt.
HfTokenizer HfTokenizer::from_vocab_txt(const std::string& path, bool lowercase) {
  const std::string text = read_file(path);
  json vocab = json::object();
  int64_t id = 0;
  for (size_t pos = 0; pos < text.size(); ++id) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string token = sanitize_utf8(std::string_view(text).substr(pos, end - pos));
    if (!token.empty() && token.back() == '\r') token.pop_back();  // a vocab.txt saved on Windows
    vocab[token] = id;
    pos = end + 1;
  }
  const auto has = [&](const char* t) { return vocab.contains(t); };
  for (const char* t : {"[UNK]", "[CLS]", "[SEP]"})
    if (!has(t))
      throw Error("tokenizer " + quote(path, std::string::npos) + ": vocab.txt has no " + t +
                  " token");
  json added = json::array();
  std::vector<std::pair<int64_t, std::string>> specials;
  for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
    if (has(t)) specials.emplace_back(vocab[t].get<int64_t>(), t);
  std::sort(specials.begin(), specials.end());
  for (const auto& [sid, content] : specials)
    added.push_back({{"id", sid},
                     {"content", content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  const auto special = [](const char* t, int64_t type) {
    return json{{"SpecialToken", {{"id", t}, {"type_id", type}}}};
  };
  const auto sequence = [](const char* s, int64_t type) {
    return json{{"Sequence", {{"id", s}, {"type_id", type}}}};
  };
  const auto special_entry = [&](const char* t) {
    return json{{"id", t}, {"ids", {vocab[t]}}, {"tokens", {t}}};
  };
  json root = {{"version", "1.0"},
               {"truncation", nullptr},
               {"padding", nullptr},
               {"added_tokens", added},
               {"normalizer",
                {{"type", "BertNormalizer"},
                 {"clean_text", true},
                 {"handle_chinese_chars", true},
                 {"strip_accents", nullptr},
                 {"lowercase", lowercase}}},
               {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
               {"post_processor",
                {{"type", "TemplateProcessing"},
                 {"single", {special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0)}},
                 {"pair",
                  {special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0), sequence("B", 1),
                   special("[SEP]", 1)}},
                 {"special_tokens",
                  {{"[CLS]", special_entry("[CLS]")}, {"[SEP]", special_entry("[SEP]")}}}}},
               {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
               {"model",
                {{"type", "WordPiece"},
                 {"unk_token", "[UNK]"},
                 {"continuing_subword_prefix", "##"},
                 {"max_input_chars_per_word", 100},
                 {"vocab", std::move(vocab)}}}};
  return HfTokenizer(Impl::build(root, path));
}

TextEncoding HfTokenizer::encode(const std::string& text, const std::string* text_pair,
                                 const TextEncodeOptions& opts) const {
  const Impl& m = *impl_;
  const auto max_length = static_cast<size_t>(checked_length(m.what, opts.max_length));
  const std::string& strategy = opts.truncation_strategy;
  if (strategy != "longest_first" && strategy != "only_first" && strategy != "only_second")
    m.fail("truncation_strategy " + quote(strategy) +
           " is not one of longest_first, only_first, only_second");

  std::vector<Enc> encs;
  encs.push_back(m.encode_enc(text, 0));
  if (text_pair) encs.push_back(m.encode_enc(*text_pair, 1));
  const size_t added = m.post_processor ? m.post_processor->added_tokens(text_pair != nullptr) : 0;
  if (opts.truncation) {
    if (max_length < added)
      m.fail("max_length " + std::to_string(max_length) + " is smaller than the " +
             std::to_string(added) + " special tokens every sample needs");
    m.truncate(encs, max_length - added, strategy);
  }
  if (m.post_processor) m.post_processor->process(encs, true);
  Enc all;
  for (const Enc& e : encs) all.append(e);
  if (!opts.truncation && all.size() > max_length)
    m.fail("a sample has " + std::to_string(all.size()) + " tokens, more than max_length " +
           std::to_string(max_length) + ", and truncation is off");

  TextEncoding out;
  out.attention_mask.assign(all.size(), 1);
  if (opts.pad_to_max_length && all.size() < max_length) {
    const int64_t pad = pad_id();
    const size_t n = max_length - all.size();
    all.ids.insert(all.ids.end(), n, pad);
    all.type_ids.insert(all.type_ids.end(), n, m.pad_type_id);
    all.tokens.insert(all.tokens.end(), n, m.pad_token);
    out.attention_mask.insert(out.attention_mask.end(), n, 0);
  }
  out.input_ids = std::move(all.ids);
  out.token_type_ids = std::move(all.type_ids);
  out.tokens = std::move(all.tokens);
  return out;
}

std::vector<int64_t> HfTokenizer::encode_plain(const std::string& text) const {
  std::vector<int64_t> ids;
  impl_->encode_sequence(text, ids, nullptr);
  return ids;
}

int64_t HfTokenizer::vocab_size() const { return impl_->vocab_size; }

std::string HfTokenizer::model_type() const { return impl_->model->type(); }

int64_t HfTokenizer::pad_id() const {
  if (!impl_->pad_id)
    impl_->fail(
        "has no pad token ([PAD] or <pad>) and no padding section; encode with pad_to_max_length "
        "false");
  return *impl_->pad_id;
}

std::optional<int64_t> HfTokenizer::token_to_id(const std::string& token) const {
  return impl_->token_to_id(token);
}

std::string HfTokenizer::to_json() const { return impl_->json_text; }

}  // namespace edgeforge
