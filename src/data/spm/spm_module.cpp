// The SentencePiece module, libedgeforge_spm.so: the only code that links libsentencepiece.
//
// libsentencepiece bundles protobuf-lite and exports its symbols; in a process that also holds
// the libprotobuf of libonnx the two clash (a crash at load). The core therefore loads this
// module with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) (src/data/tokenizer.cpp), so SentencePiece
// binds to its own copies, and talks to it only through the plain C functions below: no C++
// types or exceptions cross the boundary. Every function that can fail returns a failure value
// and leaves a one-line reason in edgeforge_spm_last_error() (per thread).
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

thread_local std::string g_last_error;

// Seed for SentencePiece's global random generator. Training with one thread and no sentence
// sampling does not draw from it, but setting it keeps the module deterministic if that changes.
constexpr unsigned int kSpmSeed = 20240601;

// SentencePiece status texts may end in spaces or span lines; edgeforge errors are one line.
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

// "key=value" lines -> trainer kwargs. Values may hold '=', keys may not.
std::unordered_map<std::string, std::string> parse_options(const char* options) {
  std::unordered_map<std::string, std::string> kwargs;
  std::istringstream in(options == nullptr ? "" : options);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) {
      kwargs[line] = "";
    } else {
      kwargs[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  return kwargs;
}

// Feeds in-memory texts to the trainer, in order, without a temporary file.
class StringsIterator : public sentencepiece::SentenceIterator {
 public:
  StringsIterator(const char* const* texts, const size_t* lens, size_t count)
      : texts_(texts), lens_(lens), count_(count) {
    load();
  }
  bool done() const override { return index_ >= count_; }
  void Next() override {
    ++index_;
    load();
  }
  const std::string& value() const override { return current_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void load() {
    if (index_ < count_) current_.assign(texts_[index_], lens_[index_]);
  }
  const char* const* texts_;
  const size_t* lens_;
  size_t count_;
  size_t index_ = 0;
  std::string current_;
};

int train(std::unordered_map<std::string, std::string> kwargs,
          sentencepiece::SentenceIterator* iterator, char** model, size_t* model_len) {
  sentencepiece::SetRandomGeneratorSeed(kSpmSeed);
  std::string serialized;
  auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, iterator, &serialized);
  if (!status.ok()) {
    g_last_error = one_line(status.ToString());
    return 0;
  }
  *model = static_cast<char*>(std::malloc(serialized.size() == 0 ? 1 : serialized.size()));
  if (*model == nullptr) {
    g_last_error = "out of memory for the trained model";
    return 0;
  }
  std::memcpy(*model, serialized.data(), serialized.size());
  *model_len = serialized.size();
  return 1;
}

bool read_varint(const unsigned char*& p, const unsigned char* end, uint64_t* value) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    unsigned char byte = *p++;
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = v;
      return true;
    }
  }
  return false;
}

// Finds field `field` (varint or length-delimited) in a serialized protobuf message. Debian
// ships no sentencepiece_model.pb.h, so the model type is read from the wire format directly.
bool find_field(const unsigned char* p, const unsigned char* end, uint64_t field,
                uint64_t* varint, const unsigned char** sub, size_t* sub_len) {
  bool found = false;
  while (p < end) {
    uint64_t key = 0;
    if (!read_varint(p, end, &key)) return found;
    uint64_t number = key >> 3;
    switch (key & 7) {
      case 0: {
        uint64_t v = 0;
        if (!read_varint(p, end, &v)) return found;
        if (number == field && varint != nullptr) *varint = v, found = true;
        break;
      }
      case 1:
        if (end - p < 8) return found;
        p += 8;
        break;
      case 2: {
        uint64_t n = 0;
        if (!read_varint(p, end, &n) || n > static_cast<uint64_t>(end - p)) return found;
        if (number == field && sub != nullptr) *sub = p, *sub_len = n, found = true;
        p += n;
        break;
      }
      case 5:
        if (end - p < 4) return found;
        p += 4;
        break;
      default:
        return found;
    }
  }
  return found;
}

sentencepiece::SentencePieceProcessor* processor(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

}  // namespace

extern "C" {

// Bumped whenever a signature below changes; the core refuses another version.
int edgeforge_spm_abi_version() { return 3; }

const char* edgeforge_spm_last_error() { return g_last_error.c_str(); }

// Trains from a text file, one sentence a line. `options` are "key=value" lines, the
// SentencePiece trainer flags (model_type, vocab_size, ...). On success *model holds the
// serialized model (free it with edgeforge_spm_free_bytes) and 1 is returned; 0 on failure.
int edgeforge_spm_train_file(const char* input_path, const char* options, char** model,
                             size_t* model_len) {
  try {
    auto kwargs = parse_options(options);
    kwargs["input"] = input_path;
    return train(std::move(kwargs), nullptr, model, model_len);
  } catch (const std::exception& e) {
    g_last_error = one_line(e.what());
    return 0;
  }
}

// Trains from `count` in-memory texts (text i is texts[i], lens[i] bytes); otherwise as
// edgeforge_spm_train_file.
int edgeforge_spm_train_strings(const char* const* texts, const size_t* lens, size_t count,
                                const char* options, char** model, size_t* model_len) {
  try {
    StringsIterator iterator(texts, lens, count);
    return train(parse_options(options), &iterator, model, model_len);
  } catch (const std::exception& e) {
    g_last_error = one_line(e.what());
    return 0;
  }
}

void edgeforge_spm_free_bytes(char* bytes) { std::free(bytes); }

// Loads a serialized model; returns a handle for the functions below, or null on failure.
void* edgeforge_spm_load(const char* bytes, size_t len) {
  try {
    auto* p = new sentencepiece::SentencePieceProcessor();
    auto status = p->LoadFromSerializedProto(std::string(bytes, len));
    if (!status.ok()) {
      g_last_error = one_line(status.ToString());
      delete p;
      return nullptr;
    }
    return p;
  } catch (const std::exception& e) {
    g_last_error = one_line(e.what());
    return nullptr;
  }
}

void edgeforge_spm_free(void* handle) { delete processor(handle); }

// Encodes `len` bytes of text into piece ids. Writes at most `capacity` ids to `ids` and returns
// how many the text has (call again with a larger buffer when that is more), -1 on failure.
int64_t edgeforge_spm_encode(void* handle, const char* text, size_t len, int32_t* ids,
                             int64_t capacity) {
  try {
    std::vector<int> out;
    auto status = processor(handle)->Encode(std::string(text, len), &out);
    if (!status.ok()) {
      g_last_error = one_line(status.ToString());
      return -1;
    }
    auto n = static_cast<int64_t>(out.size());
    for (int64_t i = 0; i < n && i < capacity; ++i) ids[i] = out[static_cast<size_t>(i)];
    return n;
  } catch (const std::exception& e) {
    g_last_error = one_line(e.what());
    return -1;
  }
}

// The id of a piece; the unknown id when the vocabulary lacks it.
int edgeforge_spm_piece_to_id(void* handle, const char* piece, size_t len) {
  return processor(handle)->PieceToId(std::string(piece, len));
}

int edgeforge_spm_vocab_size(void* handle) { return processor(handle)->GetPieceSize(); }

// The piece of an id (copied into `piece`, at most `capacity` bytes); returns its length, or -1
// for an id outside the vocabulary.
int64_t edgeforge_spm_id_to_piece(void* handle, int id, char* piece, int64_t capacity) {
  if (id < 0 || id >= processor(handle)->GetPieceSize()) return -1;
  const std::string& s = processor(handle)->IdToPiece(id);
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()) && i < capacity; ++i) piece[i] = s[static_cast<size_t>(i)];
  return static_cast<int64_t>(s.size());
}

// The model's unknown id.
int edgeforge_spm_unk_id(void* handle) { return processor(handle)->unk_id(); }

// The trainer's model type: 1 unigram, 2 bpe, 3 word, 4 char (TrainerSpec.ModelType).
int edgeforge_spm_model_type(void* handle) {
  std::string bytes = processor(handle)->serialized_model_proto();
  const auto* begin = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned char* spec = nullptr;
  size_t spec_len = 0;
  // ModelProto.trainer_spec is field 2; TrainerSpec.model_type is field 3 (default UNIGRAM).
  if (!find_field(begin, begin + bytes.size(), 2, nullptr, &spec, &spec_len)) return 1;
  uint64_t type = 1;
  find_field(spec, spec + spec_len, 3, &type, nullptr, nullptr);
  return static_cast<int>(type);
}

}  // extern "C"
