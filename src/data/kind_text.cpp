// The text data-set kind: a user's JSONL or CSV file of texts (and sentence pairs) with labels,
// tokenised with a Hugging Face tokenizer.json or a BERT vocab.txt (hf_tokenizer.h), or a
// SentencePiece .model (libsentencepiece, with the special tokens of ALBERT, XLM-R or T5).
#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <set>

#include "edgeforge/dataset.h"
#include "edgeforge/error.h"
#include "edgeforge/util.h"
#include "edgeforge/tokenizer.h"
#include "hf_tokenizer.h"
#include "spec_fields.h"
#include "text_records.h"

namespace edgeforge {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kTokenInputs = {"input_ids", "attention_mask", "token_type_ids"};

void check_text(DataSpec& spec, const std::string& base_dir) {
  data::Fields f(spec, base_dir);
  const data::SplitSources src = data::SplitSources::read(f, true);
  std::string format = f.choice("format", "auto", {"auto", "jsonl", "csv", "tsv"});
  if (format == "auto") {
    const std::string any = src.hashed() ? src.path : src.paths.begin()->second;
    const std::string ext = fs::path(any).extension().string();
    format = ext == ".csv" ? "csv" : ext == ".tsv" ? "tsv" : ext == ".jsonl" || ext == ".json" ? "jsonl" : "";
    if (format.empty())
      f.fail("format", "cannot be told from '" + any + "'; set format = \"jsonl\", \"csv\" or \"tsv\"");
    spec.fields["format"] = format;
  }
  f.text("text_column", "text");
  f.text("text_pair_column", "");
  f.text("label_column", "label");
  f.texts("classes", {});
  f.path("tokenizer", true);
  f.text("tokenizer_json", "");  // the tokenizer itself, embedded when the spec is bound
  f.text("tokenizer_spm", "");   // a SentencePiece model, base64, embedded when bound
  f.choice("sentencepiece", "auto", {"auto", "albert", "xlmr", "t5", "none"});
  f.boolean("lowercase", true);
  f.integer("max_length", 0, 0, 1 << 20);
  f.choice("truncation", "longest_first", {"longest_first", "only_first", "only_second", "none"});
  f.choice("metric", "auto", {"auto", "accuracy", "f1", "f1_macro", "agreement"});
  f.done();
}

// The rows of an embedding a model looks `input` up in: the Gather (through Identity and Cast
// nodes) whose indices are the input and whose table is a constant [rows, dim]. -1 when none.
int64_t embedding_rows(const Graph& model, const std::string& input) {
  std::set<std::string> values = {input};
  for (const Node& n : model.nodes()) {
    if ((n.is("Cast") || n.is("Identity")) && values.count(n.inputs[0])) values.insert(n.outputs[0]);
    if (n.is("Gather") && n.inputs.size() >= 2 && values.count(n.inputs[1])) {
      std::string table = n.inputs[0];
      for (const Node* p = model.producer(table); p != nullptr && p->is("Identity"); p = model.producer(table))
        table = p->inputs[0];
      auto it = model.initializers().find(table);
      if (it != model.initializers().end() && it->second.dim() == 2) return it->second.size(0);
    }
  }
  return -1;
}

// The tokenizers a text data set can use, behind one call.
class TextTokenizer {
 public:
  virtual ~TextTokenizer() = default;
  virtual TextEncoding encode(const std::string& text, const std::string* pair,
                              const TextEncodeOptions& opts) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::string describe() const = 0;
};

class HfText : public TextTokenizer {
 public:
  explicit HfText(HfTokenizer t) : tok_(std::move(t)) {}
  TextEncoding encode(const std::string& text, const std::string* pair,
                      const TextEncodeOptions& opts) const override {
    return tok_.encode(text, pair, opts);
  }
  int64_t vocab_size() const override { return tok_.vocab_size(); }
  std::string describe() const override {
    return tok_.model_type() + ", " + std::to_string(tok_.vocab_size()) + " tokens";
  }
  const HfTokenizer& get() const { return tok_; }

 private:
  HfTokenizer tok_;
};

// A zoo model's own SentencePiece tokenizer (metadata kMetaTokenizer), encoding as the built-in
// spam data set does: [CLS], the pieces, padding; token types all 0.
class ZooText : public TextTokenizer {
 public:
  explicit ZooText(Tokenizer t) : tok_(std::move(t)) {}
  TextEncoding encode(const std::string& text, const std::string* pair,
                      const TextEncodeOptions& opts) const override {
    EF_CHECK(pair == nullptr, "a zoo model's tokenizer takes single texts, not pairs");
    const Tokenizer::Batch b = tok_.encode_batch({text}, opts.max_length);
    TextEncoding e;
    const at::Tensor ids = b.input_ids[0].contiguous(), mask = b.attention_mask[0].contiguous();
    e.input_ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
    e.attention_mask.assign(mask.data_ptr<int64_t>(), mask.data_ptr<int64_t>() + mask.numel());
    e.token_type_ids.assign(e.input_ids.size(), 0);
    e.tokens.assign(e.input_ids.size(), "");
    return e;
  }
  int64_t vocab_size() const override { return tok_.vocab_size(); }
  std::string describe() const override {
    return "the model's SentencePiece " + tok_.kind() + ", " + std::to_string(tok_.vocab_size()) + " pieces";
  }

 private:
  Tokenizer tok_;
};

// A SentencePiece .model of a user's model, encoded by libsentencepiece itself, with the special
// tokens of the family it comes from (transformers' slow tokenizers):
//   albert: [CLS] A [SEP] (B [SEP]), token types 0 then 1, ids as in the model;
//   xlmr:   <s> A </s> (</s> B </s>), fairseq ids: <s>=0 <pad>=1 </s>=2 <unk>=3, pieces +1;
//   t5:     A </s> (B </s>);
//   none:   the pieces alone.
class SpmText : public TextTokenizer {
 public:
  SpmText(Tokenizer t, std::string style) : tok_(std::move(t)), style_(std::move(style)) {
    if (style_ == "auto") style_ = detect(tok_);
    auto id = [&](const char* piece) {
      EF_CHECK(tok_.has_piece(piece), "SentencePiece model has no piece ", piece, " for sentencepiece = \"",
               style_, "\"");
      return tok_.piece_to_id(piece);
    };
    if (style_ == "albert") {
      bos_ = id("[CLS]");
      sep_ = id("[SEP]");
    } else if (style_ == "t5") {
      sep_ = id("</s>");
    } else if (style_ == "xlmr") {
      bos_ = 0;
      sep_ = 2;
    }
    pad_ = style_ == "xlmr" ? 1 : tok_.has_piece("<pad>") ? tok_.piece_to_id("<pad>")
                               : tok_.has_piece("[PAD]") ? tok_.piece_to_id("[PAD]") : 0;
  }

  // albert when the model has [CLS] and [SEP]; xlmr for fairseq's layout (<unk> 0, <s>, </s>);
  // t5 with </s> alone; else none.
  static std::string detect(const Tokenizer& t) {
    if (t.has_piece("[CLS]") && t.has_piece("[SEP]")) return "albert";
    if (t.has_piece("<s>") && t.has_piece("</s>") && t.unk_id() == 0) return "xlmr";
    if (t.has_piece("</s>") && !t.has_piece("<s>")) return "t5";
    return "none";
  }

  TextEncoding encode(const std::string& text, const std::string* pair,
                      const TextEncodeOptions& opts) const override {
    std::vector<std::vector<int64_t>> parts = {pieces(text)};
    if (pair != nullptr) parts.push_back(pieces(*pair));
    const size_t specials = style_ == "albert" ? (pair ? 3 : 2)
                            : style_ == "xlmr" ? (pair ? 4 : 2)
                            : style_ == "t5"   ? (pair ? 2 : 1)
                                               : 0;
    EF_CHECK(opts.max_length >= static_cast<int64_t>(specials), "max_length ", opts.max_length,
             " leaves no room for the ", specials, " special tokens");
    truncate(parts, static_cast<size_t>(opts.max_length) - specials, opts);
    TextEncoding e;
    auto put = [&](int64_t id, int64_t type, const std::string& token) {
      e.input_ids.push_back(id);
      e.token_type_ids.push_back(type);
      e.attention_mask.push_back(1);
      e.tokens.push_back(token);
    };
    auto put_all = [&](const std::vector<int64_t>& ids, int64_t type) {
      for (int64_t i : ids) put(style_ == "xlmr" ? (i == tok_.unk_id() ? 3 : i + 1) : i, type, tok_.id_to_piece(i));
    };
    const std::string open = style_ == "albert" ? "[CLS]" : "<s>", close = style_ == "albert" ? "[SEP]" : "</s>";
    if (style_ == "albert" || style_ == "xlmr") put(bos_, 0, open);
    put_all(parts[0], 0);
    if (style_ != "none") put(sep_, 0, close);
    if (pair != nullptr) {
      const int64_t type = style_ == "albert" ? 1 : 0;
      if (style_ == "xlmr") put(sep_, 0, close);
      put_all(parts[1], type);
      if (style_ != "none") put(sep_, type, close);
    }
    if (opts.pad_to_max_length)
      while (static_cast<int64_t>(e.input_ids.size()) < opts.max_length) {
        e.input_ids.push_back(pad_);
        e.token_type_ids.push_back(0);
        e.attention_mask.push_back(0);
        e.tokens.push_back("<pad>");
      }
    return e;
  }
  // Ids the model's embedding must hold: xlmr adds its offset and <mask>.
  int64_t vocab_size() const override { return tok_.vocab_size() + (style_ == "xlmr" ? 2 : 0); }
  std::string describe() const override {
    return "SentencePiece " + tok_.kind() + " (" + style_ + " special tokens), " +
           std::to_string(tok_.vocab_size()) + " pieces";
  }
  const std::string& style() const { return style_; }

 private:
  std::vector<int64_t> pieces(const std::string& text) const { return tok_.encode(text); }

  // As Hugging Face's truncate_encodings, on the pieces before special tokens are added.
  static void truncate(std::vector<std::vector<int64_t>>& parts, size_t budget, const TextEncodeOptions& opts) {
    size_t total = 0;
    for (const auto& p : parts) total += p.size();
    if (total <= budget) return;
    EF_CHECK(opts.truncation, "a text of ", total, " pieces is longer than max_length allows (", budget,
             " besides the special tokens) and truncation = \"none\"");
    if (opts.truncation_strategy == "longest_first") {
      if (parts.size() == 1) {
        parts[0].resize(budget);
        return;
      }
      const auto [n1, n2] = longest_first_lengths(parts[0].size(), parts[1].size(), budget);
      parts[0].resize(std::min(parts[0].size(), n1));
      parts[1].resize(std::min(parts[1].size(), n2));
      return;
    }
    const bool first = opts.truncation_strategy == "only_first";
    EF_CHECK(first || parts.size() == 2, "truncation only_second needs a text pair");
    std::vector<int64_t>& target = parts[first ? 0 : 1];
    const size_t remove = total - budget;
    EF_CHECK(target.size() > remove, "truncation ", opts.truncation_strategy, " must cut ", remove,
             " pieces but the ", first ? "first" : "second", " text has only ", target.size());
    target.resize(target.size() - remove);
  }

  Tokenizer tok_;
  std::string style_;
  int64_t bos_ = -1, sep_ = -1, pad_ = 0;
};

class TextFile : public Dataset {
 public:
  TextFile(const DataSpec& spec, const Graph& model, const std::string& model_path) {
    spec_ = spec;
    nlohmann::json& f = spec_.fields;
    model_ = model.name();
    // The model's text inputs, in order.
    for (const ValueInfo& v : model.inputs()) {
      if (model.has_initializer(v.name)) continue;
      EF_CHECK(std::find(kTokenInputs.begin(), kTokenInputs.end(), v.name) != kTokenInputs.end(),
               "data set ", spec_.name(), ": model '", model.name(), "' input '", v.name,
               "' is not one a tokenizer makes (input_ids, attention_mask, token_type_ids)");
      EF_CHECK(v.dtype == at::kLong || v.dtype == at::kInt, "data set ", spec_.name(),
               ": model input '", v.name, "' is ", v.dtype, "; token inputs are int64 or int32");
      inputs_.push_back(v);
    }
    const bool bound = !inputs_.empty();
    if (!bound)
      for (const std::string& name : kTokenInputs) inputs_.push_back({name, at::kLong, {Dim::symbol("N"), Dim::symbol("S")}});
    // The tokenizer: embedded in the spec already, named, the zoo model's own, or found beside
    // the model or the data.
    std::string tok_path = f.value("tokenizer", std::string());
    const std::string tok_json = f.value("tokenizer_json", std::string());
    const std::string tok_spm = f.value("tokenizer_spm", std::string());
    if (!tok_spm.empty()) {
      tokenizer_ = std::make_shared<SpmText>(
          Tokenizer::from_any_bytes(base64_decode(tok_spm, "data set " + spec_.name() + " tokenizer_spm"),
                                    "data set " + spec_.name() + " tokenizer"),
          f.value("sentencepiece", std::string("auto")));
    } else if (!tok_json.empty()) {
      tokenizer_ = std::make_shared<HfText>(HfTokenizer::from_tokenizer_json_text(
          tok_json, "data set " + spec_.name() + " tokenizer"));
    } else if ((tok_path.empty() || tok_path == "model") && model.metadata().count(kMetaTokenizer) != 0) {
      tokenizer_ = std::make_shared<ZooText>(tokenizer_from_model(model));
      f["tokenizer"] = "model";
    } else if (tok_path != "model" || !bound) {
      if (tok_path.empty() || tok_path == "model") tok_path = find_tokenizer(model_path);
      f["tokenizer"] = tok_path;
      if (fs::path(tok_path).extension() == ".model") {
        const std::string bytes = read_file(tok_path);
        auto spm = std::make_shared<SpmText>(Tokenizer::from_any_bytes(bytes, "tokenizer " + tok_path),
                                             f.value("sentencepiece", std::string("auto")));
        f["sentencepiece"] = spm->style();
        f["tokenizer_spm"] = base64_encode(bytes);
        tokenizer_ = spm;
      } else {
        const bool vocab_txt = fs::path(tok_path).extension() == ".txt";
        auto hf = std::make_shared<HfText>(
            vocab_txt ? HfTokenizer::from_vocab_txt(tok_path, f.value("lowercase", true))
                      : HfTokenizer::from_tokenizer_json(tok_path));
        f["tokenizer_json"] = hf->get().to_json();
        tokenizer_ = hf;
      }
    } else {
      throw Error("data set " + spec_.name() + ": model '" + model.name() +
                  "' has no embedded tokenizer (metadata '" + kMetaTokenizer + "')");
    }
    // Every id the tokenizer makes must index the model's embedding.
    if (bound) {
      const int64_t rows = embedding_rows(model, "input_ids");
      EF_CHECK(rows < 0 || tokenizer_->vocab_size() <= rows, "data set ", spec_.name(),
               ": the tokenizer makes ids up to ", tokenizer_->vocab_size() - 1, ", beyond model '",
               model.name(), "''s embedding of ", rows, " rows (a tokenizer of another model?)");
    }
    int64_t max_length = f.value("max_length", int64_t{0});
    int64_t fixed = -1;
    for (const ValueInfo& v : inputs_)
      if (v.has_shape && v.shape.size() == 2 && v.shape[1].is_fixed()) fixed = v.shape[1].size;
    if (max_length == 0) max_length = fixed > 0 ? fixed : model_seq_len(model);
    EF_CHECK(fixed < 0 || fixed == max_length, "data set ", spec_.name(), ": max_length ", max_length,
             " does not fit model '", model.name(), "', whose inputs take ", fixed, " tokens");
    f["max_length"] = max_length;
    encode_.max_length = max_length;
    const std::string trunc = f.value("truncation", std::string("longest_first"));
    encode_.truncation = trunc != "none";
    if (encode_.truncation) encode_.truncation_strategy = trunc;
    encode_.pad_to_max_length = true;
  }

  std::string modality() const override { return "text"; }
  std::vector<std::string> class_names() const override { return records().classes; }
  bool has_labels() const override { return records().labelled; }
  int64_t split_size(const std::string& split) const override {
    return static_cast<int64_t>(rows(split, 0).size());
  }

  TaskData load(const std::string& split, int64_t limit) const override {
    const std::vector<const data::TextRecord*> picked = rows(split, limit);
    const Records& r = records();
    const auto n = static_cast<int64_t>(picked.size());
    const int64_t len = encode_.max_length;
    std::map<std::string, at::Tensor> cols;
    for (const std::string& name : kTokenInputs) cols[name] = at::zeros({n, len}, at::kLong);
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < n; ++i) {
      const data::TextRecord& rec = *picked[static_cast<size_t>(i)];
      const TextEncoding e = encode(rec.text, rec.has_pair ? &rec.text_pair : nullptr, rec.where);
      for (const std::string& name : kTokenInputs) {
        const std::vector<int64_t>& v = name == "input_ids" ? e.input_ids
                                        : name == "attention_mask" ? e.attention_mask
                                                                   : e.token_type_ids;
        std::copy(v.begin(), v.end(), cols[name].data_ptr<int64_t>() + i * len);
      }
      labels.push_back(rec.label);
    }
    TaskData d;
    d.dataset = spec_.name();
    d.split = split;
    d.class_names = r.classes;
    d.num_classes = static_cast<int64_t>(r.classes.size());
    for (const ValueInfo& v : inputs_) d.features[v.name] = cols[v.name].to(v.dtype);
    if (r.labelled) d.labels = at::tensor(labels, at::kLong);
    return d;
  }

  std::vector<Payload> payloads(const std::string& split, int64_t limit) const override {
    std::vector<Payload> out;
    for (const data::TextRecord* rec : rows(split, limit)) {
      Payload p;
      p.kind = "text";
      p.bytes = rec->has_pair ? rec->text + kPairSeparator + rec->text_pair : rec->text;
      p.label = rec->label;
      out.push_back(std::move(p));
    }
    return out;
  }

  std::vector<at::Tensor> preprocess(const Payload& p) const override {
    EF_CHECK(p.kind == "text", "model '", model_, "' takes text, not ", p.kind);
    const auto sep = p.bytes.find(kPairSeparator);
    const std::string text = p.bytes.substr(0, sep);
    const std::string pair = sep == std::string::npos ? std::string() : p.bytes.substr(sep + 1);
    const TextEncoding e = encode(text, sep == std::string::npos ? nullptr : &pair, "payload");
    std::vector<at::Tensor> out;
    for (const ValueInfo& v : inputs_) {
      const std::vector<int64_t>& ids = v.name == "input_ids" ? e.input_ids
                                        : v.name == "attention_mask" ? e.attention_mask
                                                                     : e.token_type_ids;
      out.push_back(at::tensor(ids, at::kLong).unsqueeze(0).to(v.dtype));
    }
    return out;
  }

  nlohmann::json describe() const override {
    nlohmann::json j = {{"tokenizer", tokenizer_->describe() + ", from " +
                                          spec_.fields.value("tokenizer", std::string("the model"))},
                        {"max_length", encode_.max_length},
                        {"truncation", encode_.truncation ? encode_.truncation_strategy : "none"}};
    // The first tokens of the first sample, for a person to check the tokenisation.
    for (const char* split : {"test", "validation", "train"}) {
      std::vector<const data::TextRecord*> one;
      try {
        one = rows(split, 1);
      } catch (const Error&) {
        continue;
      }
      if (one.empty()) continue;
      const TextEncoding e = encode(one[0]->text, one[0]->has_pair ? &one[0]->text_pair : nullptr, one[0]->where);
      std::string tokens;
      for (size_t i = 0; i < e.tokens.size() && i < 16; ++i)
        if (e.attention_mask[i]) tokens += (tokens.empty() ? "" : " ") + e.tokens[i];
      j["first_tokens"] = tokens;
      break;
    }
    return j;
  }

 private:
  struct Records {
    std::map<std::string, std::vector<data::TextRecord>> by_file;
    std::vector<std::string> classes;
    bool labelled = false;
  };

  std::string find_tokenizer(const std::string& model_path) const {
    std::vector<fs::path> dirs;
    if (!model_path.empty()) dirs.push_back(fs::absolute(model_path).parent_path());
    const nlohmann::json& f = spec_.fields;
    for (const char* key : {"path", "train", "validation", "test"})
      if (f.contains(key)) dirs.push_back(fs::path(f[key].get<std::string>()).parent_path());
    std::string looked;
    for (const fs::path& d : dirs)
      for (const char* name : {"tokenizer.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model"}) {
        std::error_code ec;
        if (fs::exists(d / name, ec)) return (d / name).string();
        looked += (looked.empty() ? "" : ", ") + (d / name).string();
      }
    throw Error("data set " + spec_.name() + ": no tokenizer; give tokenizer = \"...\" (a "
                "tokenizer.json, vocab.txt or SentencePiece .model) in a data spec; looked for " + looked);
  }

  TextEncoding encode(const std::string& text, const std::string* pair, const std::string& where) const {
    try {
      return tokenizer_->encode(text, pair, encode_);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
  }

  const Records& records() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (records_) return *records_;
    auto r = std::make_unique<Records>();
    const nlohmann::json& f = spec_.fields;
    data::TextColumns cols;
    cols.text = f.value("text_column", std::string("text"));
    cols.text_pair = f.value("text_pair_column", std::string());
    cols.label = f.value("label_column", std::string("label"));
    const std::string format = f.value("format", std::string("jsonl"));
    std::vector<std::string> seen;
    bool any_label = false, all_label = true;
    for (const char* key : {"path", "train", "validation", "test"}) {
      if (!f.contains(key)) continue;
      const std::string file = f[key].get<std::string>();
      if (r->by_file.count(file)) continue;
      std::vector<data::TextRecord> recs = format == "jsonl" ? data::read_jsonl(file, cols)
                                                             : data::read_csv(file, cols, format == "tsv" ? '\t' : ',');
      EF_CHECK(!recs.empty(), "data set ", spec_.name(), ": ", file, " holds no records");
      for (const data::TextRecord& rec : recs) {
        EF_CHECK(rec.text.find(kPairSeparator) == std::string::npos &&
                     rec.text_pair.find(kPairSeparator) == std::string::npos,
                 rec.where, ": the text holds the control character 0x1f");
        any_label = any_label || rec.has_label;
        all_label = all_label && rec.has_label;
        if (rec.has_label) seen.push_back(rec.label_text);
      }
      r->by_file[file] = std::move(recs);
    }
    EF_CHECK(any_label == all_label, "data set ", spec_.name(), ": some records have a '", cols.label,
             "' and some do not; label every record or none");
    r->labelled = all_label;
    const std::vector<std::string> declared = f.value("classes", std::vector<std::string>{});
    if (r->labelled) {
      const data::LabelMap map = data::make_label_map(seen, declared, spec_.name());
      r->classes = map.classes;
      for (auto& [file, recs] : r->by_file)
        for (data::TextRecord& rec : recs) rec.label = map.index_of(rec.label_text, rec.where);
    } else {
      r->classes = declared;
    }
    records_ = std::move(r);
    return *records_;
  }

  std::vector<const data::TextRecord*> rows(const std::string& split, int64_t limit) const {
    const data::SplitSources splits = data::SplitSources::of(spec_.fields);
    const std::string& file = splits.source_for(split, spec_.name());
    std::vector<const data::TextRecord*> out;
    for (const data::TextRecord& rec : records().by_file.at(file))
      if (splits.keeps(rec.text + kPairSeparator + rec.text_pair, split)) out.push_back(&rec);
    if (limit > 0 && static_cast<int64_t>(out.size()) > limit) out.resize(static_cast<size_t>(limit));
    return out;
  }

  std::string model_;
  std::vector<ValueInfo> inputs_;
  std::shared_ptr<TextTokenizer> tokenizer_;
  TextEncodeOptions encode_;
  mutable std::mutex mutex_;
  mutable std::unique_ptr<Records> records_;
};

}  // namespace

EF_REGISTER_DATA_KIND((DataKind{
    "text",
    "a JSONL or CSV file of texts (text, optional text_pair, label columns) tokenised with a "
    "Hugging Face tokenizer.json, a BERT vocab.txt or a SentencePiece .model",
    "text", check_text,
    [](const DataSpec& s, const Graph& m, const std::string& model_path) -> std::unique_ptr<Dataset> {
      return std::make_unique<TextFile>(s, m, model_path);
    }}));

}  // namespace edgeforge
