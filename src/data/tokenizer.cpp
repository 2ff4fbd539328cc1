// Tokenizer: the core side of the SentencePiece module (src/data/spm/spm_module.cpp).
//
// The module is opened once with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND): RTLD_LOCAL keeps
// libsentencepiece's bundled protobuf-lite symbols out of the global namespace, and DEEPBIND
// makes SentencePiece resolve its own protobuf symbols before those of the libprotobuf that
// libonnx already brought into the process. Without both, the two protobufs clash at load.
#include "edgeforge/tokenizer.h"

#include <dlfcn.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "edgeforge/build_info.h"
#include "edgeforge/error.h"

namespace edgeforge {
namespace {

constexpr int kSpmAbiVersion = 3;  // edgeforge_spm_abi_version() of a matching module
constexpr const char* kSpmModuleName = "libedgeforge_spm.so";

// The module's C functions, resolved once.
struct SpmApi {
  const char* (*last_error)();
  int (*train_strings)(const char* const*, const size_t*, size_t, const char*, char**, size_t*);
  void (*free_bytes)(char*);
  void* (*load)(const char*, size_t);
  void (*free_handle)(void*);
  int64_t (*encode)(void*, const char*, size_t, int32_t*, int64_t);
  int (*piece_to_id)(void*, const char*, size_t);
  int (*vocab_size)(void*);
  int (*model_type)(void*);
  int64_t (*id_to_piece)(void*, int, char*, int64_t);
  int (*unk_id)(void*);
};

template <typename Fn>
void resolve(void* lib, const std::string& path, const char* name, Fn* fn) {
  void* sym = dlsym(lib, name);
  EF_CHECK(sym != nullptr, "tokenizer: module '", path, "' lacks the function ", name,
           "; rebuild the target edgeforge_spm");
  *fn = reinterpret_cast<Fn>(sym);
}

// AddressSanitizer aborts the process on dlopen with RTLD_DEEPBIND (google/sanitizers#611), and
// without it SentencePiece's protobuf-lite would clash with libprotobuf: the sanitizer build
// (scripts/fuzz) has no SentencePiece tokenizers, and says so.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDGEFORGE_NO_DEEPBIND 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define EDGEFORGE_NO_DEEPBIND 1
#endif

SpmApi open_module() {
#ifdef EDGEFORGE_NO_DEEPBIND
  throw Error("tokenizer: SentencePiece is not available in the sanitizer build (it needs "
              "dlopen with RTLD_DEEPBIND, which AddressSanitizer forbids)");
#endif
  std::string path = library_dir() + "/" + kSpmModuleName;
  std::string first_error;
  void* lib = nullptr;
  if (std::filesystem::exists(path)) {
    lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (lib == nullptr) first_error = dlerror();
  } else {
    first_error = "'" + path + "' not found";
  }
  if (lib == nullptr) {
    // An installed layout may keep the module on the loader's search path instead.
    lib = dlopen(kSpmModuleName, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (lib != nullptr) path = kSpmModuleName;
  }
  EF_CHECK(lib != nullptr, "tokenizer: cannot load the SentencePiece module ", kSpmModuleName,
           " (", first_error, "); build the target edgeforge_spm, it belongs beside ",
           "libedgeforge_core");

  int (*abi_version)() = nullptr;
  resolve(lib, path, "edgeforge_spm_abi_version", &abi_version);
  EF_CHECK(abi_version() == kSpmAbiVersion, "tokenizer: module '", path, "' has ABI version ",
           abi_version(), ", expected ", kSpmAbiVersion, "; rebuild the target edgeforge_spm");
  SpmApi api{};
  resolve(lib, path, "edgeforge_spm_last_error", &api.last_error);
  resolve(lib, path, "edgeforge_spm_train_strings", &api.train_strings);
  resolve(lib, path, "edgeforge_spm_free_bytes", &api.free_bytes);
  resolve(lib, path, "edgeforge_spm_load", &api.load);
  resolve(lib, path, "edgeforge_spm_free", &api.free_handle);
  resolve(lib, path, "edgeforge_spm_encode", &api.encode);
  resolve(lib, path, "edgeforge_spm_piece_to_id", &api.piece_to_id);
  resolve(lib, path, "edgeforge_spm_vocab_size", &api.vocab_size);
  resolve(lib, path, "edgeforge_spm_model_type", &api.model_type);
  resolve(lib, path, "edgeforge_spm_id_to_piece", &api.id_to_piece);
  resolve(lib, path, "edgeforge_spm_unk_id", &api.unk_id);
  // The module stays loaded for the life of the process: handles may outlive any one caller.
  return api;
}

const SpmApi& spm() {
  // A throwing initializer leaves the static unset, so a later call retries and reports again.
  static const SpmApi api = open_module();
  return api;
}

std::string kind_name(int model_type) {
  switch (model_type) {
    case 1:
      return "unigram";
    case 2:
      return "bpe";
    case 3:
      return "word";
    case 4:
      return "char";
    default:
      return "unknown";
  }
}

}  // namespace

Tokenizer Tokenizer::train(const std::vector<std::string>& texts, const TokenizerOptions& opts) {
  EF_CHECK(opts.kind == "unigram" || opts.kind == "bpe", "tokenizer: kind '", opts.kind,
           "' is not supported; expected unigram or bpe");
  EF_CHECK(opts.vocab_size > 4, "tokenizer: vocab_size ", opts.vocab_size,
           " is too small; expected more than the 4 special pieces");
  EF_CHECK(opts.character_coverage > 0.0 && opts.character_coverage <= 1.0,
           "tokenizer: character_coverage ", opts.character_coverage, " is not in (0, 1]");

  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  size_t longest = 0;
  for (const auto& t : texts) {
    if (t.empty()) continue;
    ptrs.push_back(t.data());
    lens.push_back(t.size());
    longest = std::max(longest, t.size());
  }
  EF_CHECK(!ptrs.empty(), "tokenizer: no text to train on (", texts.size(),
           " texts, all empty)");

  std::ostringstream o;
  o << "model_type=" << opts.kind << "\n"
    << "vocab_size=" << opts.vocab_size << "\n"
    << "character_coverage=" << opts.character_coverage << "\n"
    // Determinism: one thread, every sentence used in the given order, no sampling.
    << "num_threads=1\n"
    << "input_sentence_size=0\n"
    << "shuffle_input_sentence=false\n"
    // SentencePiece silently skips sentences longer than this (default 4192 bytes).
    << "max_sentence_length=" << std::max<size_t>(longest + 1, 4192) << "\n"
    // A small corpus may not fill vocab_size; take fewer pieces rather than fail.
    << "hard_vocab_limit=false\n"
    << "pad_id=" << kTokenPadId << "\nunk_id=" << kTokenUnkId << "\n"
    << "bos_id=" << kTokenClsId << "\neos_id=" << kTokenSepId << "\n"
    << "pad_piece=[PAD]\nunk_piece=[UNK]\nbos_piece=[CLS]\neos_piece=[SEP]\n"
    // Progress logs go to stderr by the hundred; keep errors only.
    << "minloglevel=2\n";
  const std::string options = o.str();

  const SpmApi& api = spm();
  char* model = nullptr;
  size_t model_len = 0;
  EF_CHECK(api.train_strings(ptrs.data(), lens.data(), ptrs.size(), options.c_str(), &model,
                             &model_len) == 1,
           "tokenizer: training a ", opts.kind, " model on ", ptrs.size(),
           " texts failed: ", api.last_error());
  std::string bytes(model, model_len);
  api.free_bytes(model);
  return from_bytes(bytes);
}

Tokenizer Tokenizer::from_bytes(const std::string& model_bytes) {
  Tokenizer t = from_any_bytes(model_bytes, "tokenizer");
  // Every edgeforge model places the specials at fixed ids; a foreign model would silently
  // mis-pad and mis-mask, so it is refused here.
  EF_CHECK(t.piece_to_id("[PAD]") == kTokenPadId && t.piece_to_id("[CLS]") == kTokenClsId &&
               t.piece_to_id("[SEP]") == kTokenSepId,
           "tokenizer: the SentencePiece model lacks [PAD]=0, [CLS]=2, [SEP]=3; it was not ",
           "trained by edgeforge");
  return t;
}

Tokenizer Tokenizer::from_any_bytes(const std::string& model_bytes, const std::string& what) {
  EF_CHECK(!model_bytes.empty(), what, ": the bytes are empty; expected a SentencePiece model");
  const SpmApi& api = spm();
  void* handle = api.load(model_bytes.data(), model_bytes.size());
  EF_CHECK(handle != nullptr, what, ": ", model_bytes.size(),
           " bytes are not a SentencePiece model: ", api.last_error());
  Tokenizer t;
  t.handle_ = std::shared_ptr<void>(handle, api.free_handle);
  t.bytes_ = model_bytes;
  t.kind_ = kind_name(api.model_type(handle));
  return t;
}

std::string Tokenizer::to_bytes() const { return bytes_; }

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  const SpmApi& api = spm();
  std::vector<int32_t> ids(text.size() + 16);
  int64_t n = api.encode(handle_.get(), text.data(), text.size(), ids.data(),
                         static_cast<int64_t>(ids.size()));
  if (n > static_cast<int64_t>(ids.size())) {
    // More pieces than bytes is possible after normalisation; encode again with room for all.
    ids.resize(static_cast<size_t>(n));
    n = api.encode(handle_.get(), text.data(), text.size(), ids.data(), n);
  }
  EF_CHECK(n >= 0, "tokenizer: cannot encode a text of ", text.size(), " bytes: ",
           api.last_error());
  return std::vector<int64_t>(ids.begin(), ids.begin() + n);
}

Tokenizer::Batch Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                         int64_t seq_len) const {
  EF_CHECK(seq_len >= 1, "tokenizer: seq_len ", seq_len, " must be at least 1 (room for [CLS])");
  const auto n = static_cast<int64_t>(texts.size());
  Batch b;
  b.input_ids = at::full({n, seq_len}, kTokenPadId, at::kLong);
  b.attention_mask = at::zeros({n, seq_len}, at::kLong);
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto mask = b.attention_mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> pieces = encode(texts[static_cast<size_t>(i)]);
    ids[i][0] = kTokenClsId;
    mask[i][0] = 1;
    const int64_t kept = std::min<int64_t>(static_cast<int64_t>(pieces.size()), seq_len - 1);
    for (int64_t j = 0; j < kept; ++j) {
      ids[i][j + 1] = pieces[static_cast<size_t>(j)];
      mask[i][j + 1] = 1;
    }
  }
  return b;
}

int64_t Tokenizer::vocab_size() const { return spm().vocab_size(handle_.get()); }

std::string Tokenizer::kind() const { return kind_; }

int64_t Tokenizer::piece_to_id(const std::string& piece) const {
  return spm().piece_to_id(handle_.get(), piece.data(), piece.size());
}

std::string Tokenizer::id_to_piece(int64_t id) const {
  std::string piece(64, '\0');
  int64_t n = spm().id_to_piece(handle_.get(), static_cast<int>(id), piece.data(), static_cast<int64_t>(piece.size()));
  EF_CHECK(n >= 0, "tokenizer: id ", id, " is outside the vocabulary of ", vocab_size(), " pieces");
  if (n > static_cast<int64_t>(piece.size())) {
    piece.resize(static_cast<size_t>(n));
    spm().id_to_piece(handle_.get(), static_cast<int>(id), piece.data(), n);
  }
  piece.resize(static_cast<size_t>(n));
  return piece;
}

int64_t Tokenizer::unk_id() const { return spm().unk_id(handle_.get()); }

bool Tokenizer::has_piece(const std::string& piece) const {
  const int64_t id = piece_to_id(piece);
  return id != unk_id() || piece == id_to_piece(id);
}

}  // namespace edgeforge
